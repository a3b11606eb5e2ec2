/*
 * ENVELOPE, BODY and BODYSTRUCTURE as Dovecot 2.3.19 (Debian 12's
 * dovecot-imapd) returns them, for test_mime.c. Recorded by delivering each
 * message (with CRLF line ends) into a fresh Maildir and running
 *   printf 'a SELECT INBOX\r\nb FETCH 1 (ENVELOPE BODY BODYSTRUCTURE)\r\n' |
 *     USER=nobody /usr/lib/dovecot/imap -c dovecot.conf
 * (mail_location = maildir:DIR, mail_uid = nobody, PREAUTH on stdin),
 * then taking the FETCH response between "* 1 FETCH (" and ")\r\n".
 * Each string is Dovecot's output byte for byte; none was written by hand.
 */
static const struct dovecot_case dovecot_cases[] = {
    {"addr",
     MSG("From: \"Doe, John\" <john@x.org> (comment), plain@y.org (Plain "
	 "Name), <angle@z.org>, =?utf-8?q?Enc?= <enc@q.org>\r\n"
	 "To: undisclosed-recipients:;\r\n"
	 "Cc: a@b, , c@d\r\n"
	 "Bcc: <@route1,@route2:user@dom>\r\n"
	 "Sender: bad address here\r\n"
	 "Reply-To: \"quoted \\\" str\" <q@r>, @broken\r\n"
	 "In-Reply-To: <x@y>  <z@w>\r\n"
	 "Message-ID: <id@host>\r\n"
	 "Subject: \x09"
	 " lots   of   space\x09"
	 " \r\n"
	 "Date:\r\n"
	 "  folded date\r\n"
	 "\r\n"
	 "body\r\n"),
     "ENVELOPE (\"  folded date\" {13}\r\n"
     "lots of space ((\"Doe, John\" NIL \"john\" \"x.org\")(\"Plain Name\" NIL "
     "\"plain\" \"y.org\")(NIL NIL \"angle\" \"z.org\")(\"=?utf-8?q?Enc?=\" "
     "NIL \"enc\" \"q.org\")) ((\"bad address here\" NIL \"MISSING_MAILBOX\" "
     "\"MISSING_DOMAIN\")) (({12}\r\n"
     "quoted \" str NIL \"q\" \"r\")(NIL NIL \"MISSING_MAILBOX\" \"broken\")) "
     "((NIL NIL \"undisclosed-recipients\" NIL)(NIL NIL NIL NIL)) ((NIL NIL "
     "\"a\" \"b\")(NIL NIL \"MISSING_MAILBOX\" \"MISSING_DOMAIN\")(NIL NIL "
     "\"c\" \"d\")) ((NIL \"@route1,@route2\" \"user\" \"dom\")) \"<x@y>  "
     "<z@w>\" \"<id@host>\") BODY (\"text\" \"plain\" (\"charset\" "
     "\"us-ascii\") NIL NIL \"7bit\" 6 1) BODYSTRUCTURE (\"text\" \"plain\" "
     "(\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 1 NIL NIL NIL NIL)"},
    {"alt",
     MSG("From: a@b.c\r\n"
	 "Subject: alt\r\n"
	 "MIME-Version: 1.0\r\n"
	 "Content-Type: multipart/alternative; boundary=\"XX\"\r\n"
	 "\r\n"
	 "preamble\r\n"
	 "--XX\r\n"
	 "Content-Type: text/plain; charset=utf-8\r\n"
	 "Content-Transfer-Encoding: quoted-printable\r\n"
	 "\r\n"
	 "Caf=C3=A9\r\n"
	 "--XX\r\n"
	 "Content-Type: text/html; charset=\"utf-8\"\r\n"
	 "\r\n"
	 "<p>Caf\xe9"
	 "</p>\r\n"
	 "--XX--\r\n"
	 "epilogue\r\n"),
     "ENVELOPE (NIL \"alt\" ((NIL NIL \"a\" \"b.c\")) ((NIL NIL \"a\" "
     "\"b.c\")) ((NIL NIL \"a\" \"b.c\")) NIL NIL NIL NIL NIL) BODY ((\"text\" "
     "\"plain\" (\"charset\" \"utf-8\") NIL NIL \"quoted-printable\" 9 "
     "0)(\"text\" \"html\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 11 0) "
     "\"alternative\") BODYSTRUCTURE ((\"text\" \"plain\" (\"charset\" "
     "\"utf-8\") NIL NIL \"quoted-printable\" 9 0 NIL NIL NIL NIL)(\"text\" "
     "\"html\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 11 0 NIL NIL NIL NIL) "
     "\"alternative\" (\"boundary\" \"XX\") NIL NIL NIL)"},
    {"badct1",
     MSG("From: a@b.c\r\n"
	 "Content-Type: text\r\n"
	 "\r\n"
	 "body\r\n"),
     "ENVELOPE (NIL NIL ((NIL NIL \"a\" \"b.c\")) ((NIL NIL \"a\" \"b.c\")) "
     "((NIL NIL \"a\" \"b.c\")) NIL NIL NIL NIL NIL) BODY (\"text\" \"\" "
     "(\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 1) BODYSTRUCTURE (\"text\" "
     "\"\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 1 NIL NIL NIL NIL)"},
    {"badct2",
     MSG("From: a@b.c\r\n"
	 "Content-Type: foo\r\n"
	 "\r\n"
	 "body\r\n"),
     "ENVELOPE (NIL NIL ((NIL NIL \"a\" \"b.c\")) ((NIL NIL \"a\" \"b.c\")) "
     "((NIL NIL \"a\" \"b.c\")) NIL NIL NIL NIL NIL) BODY (\"foo\" \"\" NIL "
     "NIL NIL \"7bit\" 6) BODYSTRUCTURE (\"foo\" \"\" NIL NIL NIL \"7bit\" 6 "
     "NIL NIL NIL NIL)"},
    {"badct3",
     MSG("From: a@b.c\r\n"
	 "Content-Type: ;charset=x\r\n"
	 "\r\n"
	 "body\r\n"),
     "ENVELOPE (NIL NIL ((NIL NIL \"a\" \"b.c\")) ((NIL NIL \"a\" \"b.c\")) "
     "((NIL NIL \"a\" \"b.c\")) NIL NIL NIL NIL NIL) BODY (\"\" \"\" NIL NIL "
     "NIL \"7bit\" 6) BODYSTRUCTURE (\"\" \"\" NIL NIL NIL \"7bit\" 6 NIL NIL "
     "NIL NIL)"},
    {"badct4",
     MSG("From: a@b.c\r\n"
	 "Content-Type: text/plain; charset\r\n"
	 "\r\n"
	 "body\r\n"),
     "ENVELOPE (NIL NIL ((NIL NIL \"a\" \"b.c\")) ((NIL NIL \"a\" \"b.c\")) "
     "((NIL NIL \"a\" \"b.c\")) NIL NIL NIL NIL NIL) BODY (\"text\" \"plain\" "
     "(\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 1) BODYSTRUCTURE (\"text\" "
     "\"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 1 NIL NIL NIL "
     "NIL)"},
    {"bndhdr",
     MSG("Content-Type: multipart/mixed; boundary=\"b\"\r\n"
	 "\r\n"
	 "--b\r\n"
	 "Content-Type: text/plain\r\n"
	 "--b\r\n"
	 "\r\n"
	 "body2\r\n"
	 "--b--\r\n"),
     "ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) BODY ((\"text\" "
     "\"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)(\"text\" "
     "\"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 5 0) \"mixed\") "
     "BODYSTRUCTURE ((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
     "\"7bit\" 0 0 NIL NIL NIL NIL)(\"text\" \"plain\" (\"charset\" "
     "\"us-ascii\") NIL NIL \"7bit\" 5 0 NIL NIL NIL NIL) \"mixed\" "
     "(\"boundary\" \"b\") NIL NIL NIL)"},
    {"bndspace",
     MSG("Content-Type: multipart/mixed; boundary=\"b\"\r\n"
	 "\r\n"
	 "--b   \r\n"
	 "Content-Type: text/plain\r\n"
	 "\r\n"
	 "A\r\n"
	 "--b--  \r\n"),
     "ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) BODY ((\"text\" "
     "\"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 1 0) \"mixed\") "
     "BODYSTRUCTURE ((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
     "\"7bit\" 1 0 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"b\") NIL NIL "
     "NIL)"},
    {"comments",
     MSG("Content-Type: (c1) text (c2) / (c3) plain (c4) ; (c5) charset (c6) = "
	 "(c7) \"utf-8\" (c8)\r\n"
	 "MIME-Version: 1.0\r\n"
	 "\r\n"
	 "x\r\n"),
     "ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) BODY (\"text\" "
     "\"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 3 1) BODYSTRUCTURE "
     "(\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 3 1 NIL NIL "
     "NIL NIL)"},
    {"crlfend",
     MSG("Subject: x\r\n"
	 "\r\n"
	 "no final newline"),
     "ENVELOPE (NIL \"x\" NIL NIL NIL NIL NIL NIL NIL NIL) BODY (\"text\" "
     "\"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 16 0) "
     "BODYSTRUCTURE (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
     "\"7bit\" 16 0 NIL NIL NIL NIL)"},
    {"cte",
     MSG("Content-Type: text/plain\r\n"
	 "Content-Transfer-Encoding: BASE64 junk\r\n"
	 "Content-ID:  <x>  \r\n"
	 "MIME-Version: 1.0\r\n"
	 "\r\n"
	 "aGk=\r\n"),
     "ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) BODY (\"text\" "
     "\"plain\" (\"charset\" \"us-ascii\") \"<x>  \" NIL \"7bit\" 6 1) "
     "BODYSTRUCTURE (\"text\" \"plain\" (\"charset\" \"us-ascii\") \"<x>  \" "
     "NIL \"7bit\" 6 1 NIL NIL NIL NIL)"},
    {"cte2",
     MSG("Content-Transfer-Encoding: base64\r\n"
	 "\r\n"
	 "aGk=\r\n"),
     "ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) BODY (\"text\" "
     "\"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 1) BODYSTRUCTURE "
     "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 1 NIL "
     "NIL NIL NIL)"},
    {"digest",
     MSG("Content-Type: multipart/digest; boundary=\"d\"\r\n"
	 "\r\n"
	 "--d\r\n"
	 "\r\n"
	 "Subject: d1\r\n"
	 "From: q@w\r\n"
	 "\r\n"
	 "one\r\n"
	 "--d\r\n"
	 "Content-Type: text/plain\r\n"
	 "\r\n"
	 "two\r\n"
	 "--d--\r\n"),
     "ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) BODY ((\"message\" "
     "\"rfc822\" NIL NIL NIL \"7bit\" 29 (NIL \"d1\" ((NIL NIL \"q\" \"w\")) "
     "((NIL NIL \"q\" \"w\")) ((NIL NIL \"q\" \"w\")) NIL NIL NIL NIL NIL) "
     "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 0) "
     "3)(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 0) "
     "\"digest\") BODYSTRUCTURE ((\"message\" \"rfc822\" NIL NIL NIL \"7bit\" "
     "29 (NIL \"d1\" ((NIL NIL \"q\" \"w\")) ((NIL NIL \"q\" \"w\")) ((NIL NIL "
     "\"q\" \"w\")) NIL NIL NIL NIL NIL) (\"text\" \"plain\" (\"charset\" "
     "\"us-ascii\") NIL NIL \"7bit\" 3 0 NIL NIL NIL NIL) 3 NIL NIL NIL "
     "NIL)(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 0 "
     "NIL NIL NIL NIL) \"digest\" (\"boundary\" \"d\") NIL NIL NIL)"},
    {"empty", MSG(""),

     "ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) BODY (\"text\" "
     "\"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0) BODYSTRUCTURE "
     "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL "
     "NIL NIL NIL)"},
    {"emptyparts",
     MSG("Content-Type: multipart/mixed; boundary=b\r\n"
	 "\r\n"
	 "--b\r\n"
	 "--b\r\n"
	 "\r\n"
	 "--b--\r\n"),
     "ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) BODY ((\"text\" "
     "\"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)(\"text\" "
     "\"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0) \"mixed\") "
     "BODYSTRUCTURE ((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
     "\"7bit\" 0 0 NIL NIL NIL NIL)(\"text\" \"plain\" (\"charset\" "
     "\"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL) \"mixed\" "
     "(\"boundary\" \"b\") NIL NIL NIL)"},
    {"epi",
     MSG("Content-Type: multipart/mixed; boundary=\"o\"\r\n"
	 "\r\n"
	 "--o\r\n"
	 "Content-Type: multipart/mixed; boundary=\"i\"\r\n"
	 "\r\n"
	 "--i\r\n"
	 "\r\n"
	 "A\r\n"
	 "--i--\r\n"
	 "epi\r\n"
	 "--o\r\n"
	 "\r\n"
	 "B\r\n"
	 "--o--\r\n"),
     "ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) BODY (((\"text\" "
     "\"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 1 0) "
     "\"mixed\")(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
     "\"7bit\" 1 0) \"mixed\") BODYSTRUCTURE (((\"text\" \"plain\" "
     "(\"charset\" \"us-ascii\") NIL NIL \"7bit\" 1 0 NIL NIL NIL NIL) "
     "\"mixed\" (\"boundary\" \"i\") NIL NIL NIL)(\"text\" \"plain\" "
     "(\"charset\" \"us-ascii\") NIL NIL \"7bit\" 1 0 NIL NIL NIL NIL) "
     "\"mixed\" (\"boundary\" \"o\") NIL NIL NIL)"},
    {"folded",
     MSG("Subject: this is\r\n"
	 " a folded\r\n"
	 "\x09"
	 "subject\r\n"
	 "From: A\r\n"
	 " <a@b>\r\n"
	 "Content-Type: text/plain;\r\n"
	 " charset=\"utf-8\"\r\n"
	 "\r\n"
	 "x\r\n"),
     "ENVELOPE (NIL {24}\r\n"
     "this is a folded subject ((\"A\" NIL \"a\" \"b\")) ((\"A\" NIL \"a\" "
     "\"b\")) ((\"A\" NIL \"a\" \"b\")) NIL NIL NIL NIL NIL) BODY (\"text\" "
     "\"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 3 1) BODYSTRUCTURE "
     "(\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 3 1 NIL NIL "
     "NIL NIL)"},
    {"groups",
     MSG("From: A Group:a@b.c,<d@e.f>;, solo@x, Empty:;\r\n"
	 "To: \"q\":;\r\n"
	 "\r\n"
	 "x\r\n"),
     "ENVELOPE (NIL NIL ((NIL NIL \"A Group\" NIL)(NIL NIL \"a\" \"b.c\")(NIL "
     "NIL \"d\" \"e.f\")(NIL NIL NIL NIL)(NIL NIL \"solo\" \"x\")(NIL NIL "
     "\"Empty\" NIL)(NIL NIL NIL NIL)) ((NIL NIL \"A Group\" NIL)(NIL NIL "
     "\"a\" \"b.c\")(NIL NIL \"d\" \"e.f\")(NIL NIL NIL NIL)(NIL NIL \"solo\" "
     "\"x\")(NIL NIL \"Empty\" NIL)(NIL NIL NIL NIL)) ((NIL NIL \"A Group\" "
     "NIL)(NIL NIL \"a\" \"b.c\")(NIL NIL \"d\" \"e.f\")(NIL NIL NIL NIL)(NIL "
     "NIL \"solo\" \"x\")(NIL NIL \"Empty\" NIL)(NIL NIL NIL NIL)) ((NIL NIL "
     "\"q\" NIL)(NIL NIL NIL NIL)) NIL NIL NIL NIL) BODY (\"text\" \"plain\" "
     "(\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 1) BODYSTRUCTURE (\"text\" "
     "\"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 1 NIL NIL NIL "
     "NIL)"},
    {"hdrcase",
     MSG("SUBJECT: upper\r\n"
	 "from: low@x\r\n"
	 "TO : spaced@x\r\n"
	 "\r\n"
	 "x\r\n"),
     "ENVELOPE (NIL \"upper\" ((NIL NIL \"low\" \"x\")) ((NIL NIL \"low\" "
     "\"x\")) ((NIL NIL \"low\" \"x\")) ((NIL NIL \"spaced\" \"x\")) NIL NIL "
     "NIL NIL) BODY (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
     "\"7bit\" 3 1) BODYSTRUCTURE (\"text\" \"plain\" (\"charset\" "
     "\"us-ascii\") NIL NIL \"7bit\" 3 1 NIL NIL NIL NIL)"},
    {"iso",
     MSG("Subject: =?ISO-8859-1?Q?Andr=E9?= Pirard\r\n"
	 "From: =?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?= <keld@dkuug.dk>\r\n"
	 "Content-Type: text/plain; charset=ISO-8859-1\r\n"
	 "Content-Transfer-Encoding: 8bit\r\n"
	 "\r\n"
	 "Andr\xe9"
	 "\r\n"),
     "ENVELOPE (NIL \"=?ISO-8859-1?Q?Andr=E9?= Pirard\" "
     "((\"=?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?=\" NIL \"keld\" \"dkuug.dk\")) "
     "((\"=?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?=\" NIL \"keld\" \"dkuug.dk\")) "
     "((\"=?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?=\" NIL \"keld\" \"dkuug.dk\")) "
     "NIL NIL NIL NIL NIL) BODY (\"text\" \"plain\" (\"charset\" "
     "\"ISO-8859-1\") NIL NIL \"8bit\" 7 1) BODYSTRUCTURE (\"text\" \"plain\" "
     "(\"charset\" \"ISO-8859-1\") NIL NIL \"8bit\" 7 1 NIL NIL NIL NIL)"},
    {"lang",
     MSG("MIME-Version: 1.0\r\n"
	 "Content-Language: en (english), fr\r\n"
	 "Content-Disposition: INLINE\r\n"
	 "Content-Type: Text/Plain; FORMAT=flowed\r\n"
	 "\r\n"
	 "x\r\n"),
     "ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) BODY (\"Text\" "
     "\"Plain\" (\"FORMAT\" \"flowed\" \"charset\" \"us-ascii\") NIL NIL "
     "\"7bit\" 3 1) BODYSTRUCTURE (\"Text\" \"Plain\" (\"FORMAT\" \"flowed\" "
     "\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 1 NIL (\"INLINE\" NIL) "
     "(\"en\" \"fr\") NIL)"},
    {"longbnd",
     MSG("Content-Type: multipart/mixed; "
	 "boundary="
	 "\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"\r\n"
	 "\r\n"
	 "--"
	 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n"
	 "hi\r\n"
	 "--"
	 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx--\r\n"),
     "ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) BODY ((\"text\" "
     "\"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)(\"text\" "
     "\"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0) \"mixed\") "
     "BODYSTRUCTURE ((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
     "\"7bit\" 0 0 NIL NIL NIL NIL)(\"text\" \"plain\" (\"charset\" "
     "\"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL) \"mixed\" "
     "(\"boundary\" "
     "\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\") NIL NIL NIL)"},
    {"mimenoct",
     MSG("MIME-Version: 1.0\r\n"
	 "Content-Transfer-Encoding: base64\r\n"
	 "Content-Description: desc\r\n"
	 "\r\n"
	 "aGk=\r\n"),
     "ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) BODY (\"text\" "
     "\"plain\" (\"charset\" \"us-ascii\") NIL \"desc\" \"base64\" 6 1) "
     "BODYSTRUCTURE (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL "
     "\"desc\" \"base64\" 6 1 NIL NIL NIL NIL)"},
    {"missing",
     MSG("Subject: no from\r\n"
	 "\r\n"
	 "x\r\n"),
     "ENVELOPE (NIL \"no from\" NIL NIL NIL NIL NIL NIL NIL NIL) BODY "
     "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 1) "
     "BODYSTRUCTURE (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
     "\"7bit\" 3 1 NIL NIL NIL NIL)"},
    {"missingclose",
     MSG("Content-Type: multipart/mixed; boundary=\"zz\"\r\n"
	 "\r\n"
	 "--zz\r\n"
	 "Content-Type: text/plain\r\n"
	 "\r\n"
	 "one\r\n"
	 "--zz\r\n"
	 "two\r\n"),
     "ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) BODY ((\"text\" "
     "\"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 0)(\"text\" "
     "\"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0) \"mixed\") "
     "BODYSTRUCTURE ((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
     "\"7bit\" 3 0 NIL NIL NIL NIL)(\"text\" \"plain\" (\"charset\" "
     "\"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL) \"mixed\" "
     "(\"boundary\" \"zz\") NIL NIL NIL)"},
    {"mixed",
     MSG("From: a@b.c\r\n"
	 "Subject: mixed\r\n"
	 "MIME-Version: 1.0\r\n"
	 "Content-Type: multipart/mixed; boundary=outer\r\n"
	 "\r\n"
	 "--outer\r\n"
	 "Content-Type: multipart/alternative; boundary=inner\r\n"
	 "\r\n"
	 "--inner\r\n"
	 "Content-Type: text/plain\r\n"
	 "\r\n"
	 "plain\r\n"
	 "--inner\r\n"
	 "Content-Type: text/html\r\n"
	 "\r\n"
	 "<b>html</b>\r\n"
	 "--inner--\r\n"
	 "--outer\r\n"
	 "Content-Type: application/pdf; name=\"doc.pdf\"\r\n"
	 "Content-Disposition: attachment; filename=\"doc.pdf\"; size=12\r\n"
	 "Content-Transfer-Encoding: base64\r\n"
	 "Content-ID: <id1@x>\r\n"
	 "Content-Description: A document\r\n"
	 "Content-Language: en, de-CH\r\n"
	 "Content-Location: http://x/doc.pdf\r\n"
	 "Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\r\n"
	 "\r\n"
	 "SGVsbG8gV29ybGQh\r\n"
	 "--outer--\r\n"),
     "ENVELOPE (NIL \"mixed\" ((NIL NIL \"a\" \"b.c\")) ((NIL NIL \"a\" "
     "\"b.c\")) ((NIL NIL \"a\" \"b.c\")) NIL NIL NIL NIL NIL) BODY "
     "(((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 5 "
     "0)(\"text\" \"html\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 11 0) "
     "\"alternative\")(\"application\" \"pdf\" (\"name\" \"doc.pdf\") "
     "\"<id1@x>\" \"A document\" \"base64\" 16) \"mixed\") BODYSTRUCTURE "
     "(((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 5 0 "
     "NIL NIL NIL NIL)(\"text\" \"html\" (\"charset\" \"us-ascii\") NIL NIL "
     "\"7bit\" 11 0 NIL NIL NIL NIL) \"alternative\" (\"boundary\" \"inner\") "
     "NIL NIL NIL)(\"application\" \"pdf\" (\"name\" \"doc.pdf\") \"<id1@x>\" "
     "\"A document\" \"base64\" 16 \"Q2hlY2sgSW50ZWdyaXR5IQ==\" "
     "(\"attachment\" (\"filename\" \"doc.pdf\" \"size\" \"12\")) (\"en\" "
     "\"de-CH\") \"http://x/doc.pdf\") \"mixed\" (\"boundary\" \"outer\") NIL "
     "NIL NIL)"},
    {"multictype",
     MSG("Content-Type: text/html\r\n"
	 "Content-Type: multipart/mixed; boundary=b\r\n"
	 "MIME-Version: 1.0\r\n"
	 "\r\n"
	 "--b\r\n"
	 "x\r\n"
	 "--b--\r\n"),
     "ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) BODY (\"text\" "
     "\"html\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 15 3) BODYSTRUCTURE "
     "(\"text\" \"html\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 15 3 NIL "
     "NIL NIL NIL)"},
    {"nest3",
     MSG("Content-Type: multipart/mixed; boundary=\"ab\"\r\n"
	 "\r\n"
	 "--ab\r\n"
	 "Content-Type: multipart/mixed; boundary=\"abc\"\r\n"
	 "\r\n"
	 "--abc\r\n"
	 "Content-Type: multipart/mixed; boundary=\"abcd\"\r\n"
	 "\r\n"
	 "--abcd\r\n"
	 "\r\n"
	 "leaf\r\n"
	 "--ab\r\n"
	 "Z\r\n"
	 "--ab--\r\n"),
     "ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) BODY ((((\"text\" "
     "\"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 4 0) \"mixed\") "
     "\"mixed\")(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
     "\"7bit\" 0 0) \"mixed\") BODYSTRUCTURE ((((\"text\" \"plain\" "
     "(\"charset\" \"us-ascii\") NIL NIL \"7bit\" 4 0 NIL NIL NIL NIL) "
     "\"mixed\" (\"boundary\" \"abcd\") NIL NIL NIL) \"mixed\" (\"boundary\" "
     "\"abc\") NIL NIL NIL)(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL "
     "NIL \"7bit\" 0 0 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"ab\") NIL "
     "NIL NIL)"},
    {"nobody",
     MSG("Subject: x\r\n"
	 "From: y@z"),
     "ENVELOPE (NIL \"x\" ((NIL NIL \"y\" \"z\")) ((NIL NIL \"y\" \"z\")) "
     "((NIL NIL \"y\" \"z\")) NIL NIL NIL NIL NIL) BODY (\"text\" \"plain\" "
     "(\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0) BODYSTRUCTURE (\"text\" "
     "\"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL "
     "NIL)"},
    {"nobound",
     MSG("From: a@b.c\r\n"
	 "Content-Type: multipart/mixed\r\n"
	 "\r\n"
	 "body\r\n"),
     "ENVELOPE (NIL NIL ((NIL NIL \"a\" \"b.c\")) ((NIL NIL \"a\" \"b.c\")) "
     "((NIL NIL \"a\" \"b.c\")) NIL NIL NIL NIL NIL) BODY ((\"text\" \"plain\" "
     "(\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0) \"mixed\") "
     "BODYSTRUCTURE ((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
     "\"7bit\" 0 0 NIL NIL NIL NIL) \"mixed\" NIL NIL NIL NIL)"},
    {"noheader",
     MSG("\r\n"
	 "body only\r\n"),
     "ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) BODY (\"text\" "
     "\"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 11 1) "
     "BODYSTRUCTURE (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
     "\"7bit\" 11 1 NIL NIL NIL NIL)"},
    {"nomime",
     MSG("Content-Transfer-Encoding: base64\r\n"
	 "Content-Description: desc\r\n"
	 "Subject: x\r\n"
	 "\r\n"
	 "aGk=\r\n"),
     "ENVELOPE (NIL \"x\" NIL NIL NIL NIL NIL NIL NIL NIL) BODY (\"text\" "
     "\"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 1) BODYSTRUCTURE "
     "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 1 NIL "
     "NIL NIL NIL)"},
    {"noparts",
     MSG("Content-Type: multipart/mixed; boundary=\"zz\"\r\n"
	 "\r\n"
	 "nothing here\r\n"),
     "ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) BODY ((\"text\" "
     "\"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0) \"mixed\") "
     "BODYSTRUCTURE ((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
     "\"7bit\" 0 0 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"zz\") NIL NIL "
     "NIL)"},
    {"nul",
     MSG("Subject: a\x00"
	 "b\r\n"
	 "From: a@b\r\n"
	 "\r\n"
	 "x\x00"
	 "y\r\n"),
     "ENVELOPE (NIL {5}\r\n"
     "a\xef"
     "\xbf"
     "\xbd"
     "b ((NIL NIL \"a\" \"b\")) ((NIL NIL \"a\" \"b\")) ((NIL NIL \"a\" "
     "\"b\")) NIL NIL NIL NIL NIL) BODY (\"text\" \"plain\" (\"charset\" "
     "\"us-ascii\") NIL NIL \"7bit\" 5 1) BODYSTRUCTURE (\"text\" \"plain\" "
     "(\"charset\" \"us-ascii\") NIL NIL \"7bit\" 5 1 NIL NIL NIL NIL)"},
    {"prefix",
     MSG("Content-Type: multipart/mixed; boundary=\"ab\"\r\n"
	 "\r\n"
	 "--ab\r\n"
	 "Content-Type: multipart/mixed; boundary=\"abc\"\r\n"
	 "\r\n"
	 "--abc\r\n"
	 "x\r\n"
	 "--ab\r\n"
	 "y\r\n"
	 "--ab--\r\n"),
     "ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) BODY (((\"text\" "
     "\"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0) "
     "\"mixed\")(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
     "\"7bit\" 0 0) \"mixed\") BODYSTRUCTURE (((\"text\" \"plain\" "
     "(\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL) "
     "\"mixed\" (\"boundary\" \"abc\") NIL NIL NIL)(\"text\" \"plain\" "
     "(\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL) "
     "\"mixed\" (\"boundary\" \"ab\") NIL NIL NIL)"},
    {"q1",
     MSG("Date: a\"b\r\n"
	 "From: \"x\\\\y\" <a@b>, \"p\" <c@d>\r\n"
	 "To: \"a\\\"b\" <e@f>\r\n"
	 "Message-ID: a\\\\b\"c\r\n"
	 "MIME-Version: 1.0\r\n"
	 "Content-Type: text/plain; name=\"a\\\"b\"\r\n"
	 "Content-Description: x\"y\r\n"
	 "Content-ID: 1\r\n"
	 " 2\r\n"
	 "\r\n"
	 "x\r\n"),
     "ENVELOPE (\"a\\\"b\" NIL (({3}\r\n"
     "x\\y NIL \"a\" \"b\")(\"p\" NIL \"c\" \"d\")) (({3}\r\n"
     "x\\y NIL \"a\" \"b\")(\"p\" NIL \"c\" \"d\")) (({3}\r\n"
     "x\\y NIL \"a\" \"b\")(\"p\" NIL \"c\" \"d\")) (({3}\r\n"
     "a\"b NIL \"e\" \"f\")) NIL NIL NIL \"a\\\\\\\\b\\\"c\") BODY (\"text\" "
     "\"plain\" (\"name\" \"a\\\"b\" \"charset\" \"us-ascii\") \"1 2\" "
     "\"x\\\"y\" \"7bit\" 3 1) BODYSTRUCTURE (\"text\" \"plain\" (\"name\" "
     "\"a\\\"b\" \"charset\" \"us-ascii\") \"1 2\" \"x\\\"y\" \"7bit\" 3 1 NIL "
     "NIL NIL NIL)"},
    {"q2",
     MSG("From: \"a   b \" <\"q\\\"x\"@b>, \"caf\xc3"
	 "\xa9"
	 "\" <c@d>\r\n"
	 "To: \"\" <e@f>, \" \" <g@h>\r\n"
	 "Cc: \"\x09"
	 "\" <i@j>\r\n"
	 "\r\n"
	 "x\r\n"),
     "ENVELOPE (NIL NIL (({3}\r\n"
     "a b NIL \"q\\\"x\" \"b\")({5}\r\n"
     "caf\xc3"
     "\xa9"
     " NIL \"c\" \"d\")) (({3}\r\n"
     "a b NIL \"q\\\"x\" \"b\")({5}\r\n"
     "caf\xc3"
     "\xa9"
     " NIL \"c\" \"d\")) (({3}\r\n"
     "a b NIL \"q\\\"x\" \"b\")({5}\r\n"
     "caf\xc3"
     "\xa9"
     " NIL \"c\" \"d\")) ((NIL NIL \"e\" \"f\")(\"\" NIL \"g\" \"h\")) ((\"\" "
     "NIL \"i\" \"j\")) NIL NIL NIL) BODY (\"text\" \"plain\" (\"charset\" "
     "\"us-ascii\") NIL NIL \"7bit\" 3 1) BODYSTRUCTURE (\"text\" \"plain\" "
     "(\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 1 NIL NIL NIL NIL)"},
    {"qpsubject",
     MSG("Subject: =?utf-8?b?w6nDqQ==?= and more\r\n"
	 "From: a@b\r\n"
	 "\r\n"
	 "x\r\n"),
     "ENVELOPE (NIL \"=?utf-8?b?w6nDqQ==?= and more\" ((NIL NIL \"a\" \"b\")) "
     "((NIL NIL \"a\" \"b\")) ((NIL NIL \"a\" \"b\")) NIL NIL NIL NIL NIL) "
     "BODY (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 "
     "1) BODYSTRUCTURE (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
     "\"7bit\" 3 1 NIL NIL NIL NIL)"},
    {"rfc2231",
     MSG("MIME-Version: 1.0\r\n"
	 "Content-Type: application/x-stuff; "
	 "title*0*=us-ascii'en'This%20is%20even%20more%20; "
	 "title*1*=%2A%2A%2Afun%2A%2A%2A%20; title*2=\"isn't it!\"; "
	 "name*=utf-8''a%20b; Other=1\r\n"
	 "Content-Disposition: inline; filename*0=\"a\"; filename*2=\"c\"\r\n"
	 "\r\n"
	 "x\r\n"),
     "ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) BODY (\"application\" "
     "\"x-stuff\" (\"Other\" \"1\" \"name*2*\" \"utf-8''a%20b\" \"title*\" "
     "\"us-ascii'en'This%20is%20even%20more%20%2A%2A%2Afun%2A%2A%2A%20isn't "
     "it!\") NIL NIL \"7bit\" 3) BODYSTRUCTURE (\"application\" \"x-stuff\" "
     "(\"Other\" \"1\" \"name*2*\" \"utf-8''a%20b\" \"title*\" "
     "\"us-ascii'en'This%20is%20even%20more%20%2A%2A%2Afun%2A%2A%2A%20isn't "
     "it!\") NIL NIL \"7bit\" 3 NIL (\"inline\" (\"filename*0\" \"a\" "
     "\"filename*2\" \"c\")) NIL NIL)"},
    {"rfc822",
     MSG("From: a@b.c\r\n"
	 "Subject: fwd\r\n"
	 "MIME-Version: 1.0\r\n"
	 "Content-Type: multipart/mixed; boundary=b1\r\n"
	 "\r\n"
	 "--b1\r\n"
	 "Content-Type: text/plain\r\n"
	 "\r\n"
	 "see attached\r\n"
	 "--b1\r\n"
	 "Content-Type: message/rfc822\r\n"
	 "\r\n"
	 "From: Inner <inner@x.org>\r\n"
	 "To: \"Group\" : a@b.c, d@e.f;\r\n"
	 "Subject: =?utf-8?q?inner_subj?=\r\n"
	 "Date: Tue, 1 Dec 2026 00:00:00 +0000\r\n"
	 "MIME-Version: 1.0\r\n"
	 "Content-Type: multipart/alternative; boundary=b2\r\n"
	 "\r\n"
	 "--b2\r\n"
	 "Content-Type: text/plain\r\n"
	 "\r\n"
	 "inner plain\r\n"
	 "--b2--\r\n"
	 "\r\n"
	 "--b1--\r\n"),
     "ENVELOPE (NIL \"fwd\" ((NIL NIL \"a\" \"b.c\")) ((NIL NIL \"a\" "
     "\"b.c\")) ((NIL NIL \"a\" \"b.c\")) NIL NIL NIL NIL NIL) BODY ((\"text\" "
     "\"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 12 0)(\"message\" "
     "\"rfc822\" NIL NIL NIL \"7bit\" 253 (\"Tue, 1 Dec 2026 00:00:00 +0000\" "
     "\"=?utf-8?q?inner_subj?=\" ((\"Inner\" NIL \"inner\" \"x.org\")) "
     "((\"Inner\" NIL \"inner\" \"x.org\")) ((\"Inner\" NIL \"inner\" "
     "\"x.org\")) ((NIL NIL \"Group\" NIL)(NIL NIL \"a\" \"b.c\")(NIL NIL "
     "\"d\" \"e.f\")(NIL NIL NIL NIL)) NIL NIL NIL NIL) ((\"text\" \"plain\" "
     "(\"charset\" \"us-ascii\") NIL NIL \"7bit\" 11 0) \"alternative\") 12) "
     "\"mixed\") BODYSTRUCTURE ((\"text\" \"plain\" (\"charset\" \"us-ascii\") "
     "NIL NIL \"7bit\" 12 0 NIL NIL NIL NIL)(\"message\" \"rfc822\" NIL NIL "
     "NIL \"7bit\" 253 (\"Tue, 1 Dec 2026 00:00:00 +0000\" "
     "\"=?utf-8?q?inner_subj?=\" ((\"Inner\" NIL \"inner\" \"x.org\")) "
     "((\"Inner\" NIL \"inner\" \"x.org\")) ((\"Inner\" NIL \"inner\" "
     "\"x.org\")) ((NIL NIL \"Group\" NIL)(NIL NIL \"a\" \"b.c\")(NIL NIL "
     "\"d\" \"e.f\")(NIL NIL NIL NIL)) NIL NIL NIL NIL) ((\"text\" \"plain\" "
     "(\"charset\" \"us-ascii\") NIL NIL \"7bit\" 11 0 NIL NIL NIL NIL) "
     "\"alternative\" (\"boundary\" \"b2\") NIL NIL NIL) 12 NIL NIL NIL NIL) "
     "\"mixed\" (\"boundary\" \"b1\") NIL NIL NIL)"},
    {"rfc822leaf",
     MSG("From: a@b.c\r\n"
	 "Content-Type: message/rfc822\r\n"
	 "\r\n"
	 "Subject: only header\r\n"
	 "From: z@y\r\n"
	 "\r\n"
	 "body here\r\n"),
     "ENVELOPE (NIL NIL ((NIL NIL \"a\" \"b.c\")) ((NIL NIL \"a\" \"b.c\")) "
     "((NIL NIL \"a\" \"b.c\")) NIL NIL NIL NIL NIL) BODY (\"message\" "
     "\"rfc822\" NIL NIL NIL \"7bit\" 46 (NIL \"only header\" ((NIL NIL \"z\" "
     "\"y\")) ((NIL NIL \"z\" \"y\")) ((NIL NIL \"z\" \"y\")) NIL NIL NIL NIL "
     "NIL) (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 11 "
     "1) 4) BODYSTRUCTURE (\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 46 (NIL "
     "\"only header\" ((NIL NIL \"z\" \"y\")) ((NIL NIL \"z\" \"y\")) ((NIL "
     "NIL \"z\" \"y\")) NIL NIL NIL NIL NIL) (\"text\" \"plain\" (\"charset\" "
     "\"us-ascii\") NIL NIL \"7bit\" 11 1 NIL NIL NIL NIL) 4 NIL NIL NIL NIL)"},
    {"rfc822nested",
     MSG("Content-Type: message/rfc822\r\n"
	 "\r\n"
	 "Content-Type: message/rfc822\r\n"
	 "\r\n"
	 "Subject: deep\r\n"
	 "\r\n"
	 "text\r\n"),
     "ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) BODY (\"message\" "
     "\"rfc822\" NIL NIL NIL \"7bit\" 55 (NIL NIL NIL NIL NIL NIL NIL NIL NIL "
     "NIL) (\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 23 (NIL \"deep\" NIL "
     "NIL NIL NIL NIL NIL NIL NIL) (\"text\" \"plain\" (\"charset\" "
     "\"us-ascii\") NIL NIL \"7bit\" 6 1) 3) 5) BODYSTRUCTURE (\"message\" "
     "\"rfc822\" NIL NIL NIL \"7bit\" 55 (NIL NIL NIL NIL NIL NIL NIL NIL NIL "
     "NIL) (\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 23 (NIL \"deep\" NIL "
     "NIL NIL NIL NIL NIL NIL NIL) (\"text\" \"plain\" (\"charset\" "
     "\"us-ascii\") NIL NIL \"7bit\" 6 1 NIL NIL NIL NIL) 3 NIL NIL NIL NIL) 5 "
     "NIL NIL NIL NIL)"},
    {"rfcend",
     MSG("Content-Type: multipart/mixed; boundary=\"o\"\r\n"
	 "\r\n"
	 "--o\r\n"
	 "Content-Type: message/rfc822\r\n"
	 "\r\n"
	 "Subject: s\r\n"
	 "\r\n"
	 "body\r\n"
	 "--o--\r\n"),
     "ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) BODY ((\"message\" "
     "\"rfc822\" NIL NIL NIL \"7bit\" 18 (NIL \"s\" NIL NIL NIL NIL NIL NIL "
     "NIL NIL) (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" "
     "4 0) 2) \"mixed\") BODYSTRUCTURE ((\"message\" \"rfc822\" NIL NIL NIL "
     "\"7bit\" 18 (NIL \"s\" NIL NIL NIL NIL NIL NIL NIL NIL) (\"text\" "
     "\"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 4 0 NIL NIL NIL "
     "NIL) 2 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"o\") NIL NIL NIL)"},
    {"samebnd",
     MSG("Content-Type: multipart/mixed; boundary=\"a\"\r\n"
	 "\r\n"
	 "--a\r\n"
	 "Content-Type: multipart/mixed; boundary=\"a\"\r\n"
	 "\r\n"
	 "--a\r\n"
	 "inner1\r\n"
	 "--a--\r\n"
	 "outer tail\r\n"
	 "--a\r\n"
	 "second\r\n"
	 "--a--\r\n"),
     "ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) BODY (((\"text\" "
     "\"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0) "
     "\"mixed\")(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
     "\"7bit\" 0 0) \"mixed\") BODYSTRUCTURE (((\"text\" \"plain\" "
     "(\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL) "
     "\"mixed\" (\"boundary\" \"a\") NIL NIL NIL)(\"text\" \"plain\" "
     "(\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL) "
     "\"mixed\" (\"boundary\" \"a\") NIL NIL NIL)"},
    {"simple",
     MSG("From: Alice <alice@example.org>\r\n"
	 "To: bob@example.net\r\n"
	 "Subject: Hello\r\n"
	 "Date: Mon, 7 Dec 2026 10:00:00 +0100\r\n"
	 "Message-ID: <abc@example.org>\r\n"
	 "\r\n"
	 "Hi Bob.\r\n"
	 "Bye.\r\n"),
     "ENVELOPE (\"Mon, 7 Dec 2026 10:00:00 +0100\" \"Hello\" ((\"Alice\" NIL "
     "\"alice\" \"example.org\")) ((\"Alice\" NIL \"alice\" \"example.org\")) "
     "((\"Alice\" NIL \"alice\" \"example.org\")) ((NIL NIL \"bob\" "
     "\"example.net\")) NIL NIL NIL \"<abc@example.org>\") BODY (\"text\" "
     "\"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 15 2) "
     "BODYSTRUCTURE (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
     "\"7bit\" 15 2 NIL NIL NIL NIL)"},
    {"subj8",
     MSG("Subject: Caf\xc3"
	 "\xa9"
	 " \"q\" and \\ back\r\n"
	 "From: a@b\r\n"
	 "\r\n"
	 "x\r\n"),
     "ENVELOPE (NIL {20}\r\n"
     "Caf\xc3"
     "\xa9"
     " \"q\" and \\ back ((NIL NIL \"a\" \"b\")) ((NIL NIL \"a\" \"b\")) ((NIL "
     "NIL \"a\" \"b\")) NIL NIL NIL NIL NIL) BODY (\"text\" \"plain\" "
     "(\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 1) BODYSTRUCTURE (\"text\" "
     "\"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 1 NIL NIL NIL "
     "NIL)"},
    {"subjesc",
     MSG("Subject: a\"b\"c\"d\"e\"f\r\n"
	 "From: a@b\r\n"
	 "\r\n"
	 "x\r\n"),
     "ENVELOPE (NIL {11}\r\n"
     "a\"b\"c\"d\"e\"f ((NIL NIL \"a\" \"b\")) ((NIL NIL \"a\" \"b\")) ((NIL "
     "NIL \"a\" \"b\")) NIL NIL NIL NIL NIL) BODY (\"text\" \"plain\" "
     "(\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 1) BODYSTRUCTURE (\"text\" "
     "\"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 1 NIL NIL NIL "
     "NIL)"},
    {"weirdaddr",
     MSG("From: <>\r\n"
	 "To: @\r\n"
	 "Cc: a@\r\n"
	 "Bcc: \"unterminated\r\n"
	 "\r\n"
	 "x\r\n"),
     "ENVELOPE (NIL NIL ((NIL NIL \"MISSING_MAILBOX\" \"MISSING_DOMAIN\")) "
     "((NIL NIL \"MISSING_MAILBOX\" \"MISSING_DOMAIN\")) ((NIL NIL "
     "\"MISSING_MAILBOX\" \"MISSING_DOMAIN\")) ((NIL NIL \"MISSING_MAILBOX\" "
     "\"MISSING_DOMAIN\")) ((NIL NIL \"a\" \"MISSING_DOMAIN\")) ((NIL NIL "
     "\"MISSING_MAILBOX\" \"MISSING_DOMAIN\")) NIL NIL) BODY (\"text\" "
     "\"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 1) BODYSTRUCTURE "
     "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 1 NIL "
     "NIL NIL NIL)"},
};
