"""The IMAP server (RFC 9051 / RFC 3501) with Python's imaplib, curl and raw
sockets: greeting and capabilities (STARTTLS, imaps, LOGINDISABLED),
logins and their refusals, the command collector's literal caps, and
STARTTLS discarding pipelined plaintext (INV-S1)."""

import imaplib
import os
import re
import socket
import ssl

import pytest

from conftest import ALICE, ALICE_PW


def imap(srv, tls=False):
    if tls:
        return imaplib.IMAP4_SSL("127.0.0.1", srv.imaps_port,
                                 ssl_context=srv.ctx(), timeout=10)
    return imaplib.IMAP4("127.0.0.1", srv.imap_port, timeout=10)


def login(srv, user=ALICE, pw=None, tls=False):
    c = imap(srv, tls)
    c.login(user, pw if pw is not None else srv.users[user])
    return c


class Raw:
    """A line-level IMAP connection for what imaplib cannot send."""

    def __init__(self, port, tls_ctx=None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        if tls_ctx is not None:
            self.sock = tls_ctx.wrap_socket(self.sock,
                                            server_hostname="localhost")
        self.buf = b""
        self.greeting = self.line()

    def line(self):
        while b"\r\n" not in self.buf:
            d = self.sock.recv(65536)
            if not d:
                raise EOFError("closed; buffered %r" % self.buf)
            self.buf += d
        ln, self.buf = self.buf.split(b"\r\n", 1)
        return ln.decode("utf-8", "replace")

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

    def cmd(self, tag, text):
        """Sends one command; returns (untagged lines, tagged line)."""
        self.send("%s %s\r\n" % (tag, text))
        return self.until(tag)

    def until(self, tag):
        lines = []
        while True:
            ln = self.line()
            if ln.startswith(tag + " "):
                return lines, ln
            lines.append(ln)

    def starttls(self, ctx):
        self.sock = ctx.wrap_socket(self.sock, server_hostname="localhost")

    def close(self):
        self.sock.close()


def caps_of(text):
    m = re.search(r"\[CAPABILITY ([^\]]*)\]", text)
    assert m, text
    return m.group(1).split()


# -- greeting and capabilities ----------------------------------------------

def test_greeting_and_capability_before_and_after_starttls(shared_server):
    srv = shared_server
    r = Raw(srv.imap_port)
    assert r.greeting.startswith("* OK [CAPABILITY "), r.greeting
    caps = caps_of(r.greeting)
    assert "IMAP4rev1" in caps and "STARTTLS" in caps, caps
    assert "LITERAL-" in caps and "SASL-IR" in caps, caps
    # the loopback default (plaintext_auth = loopback) lets passwords in
    assert "AUTH=PLAIN" in caps and "LOGINDISABLED" not in caps, caps
    lines, tagged = r.cmd("a1", "CAPABILITY")
    assert tagged.startswith("a1 OK"), tagged
    assert lines and lines[0].startswith("* CAPABILITY "), lines
    assert lines[0].split()[2:] == caps
    lines, tagged = r.cmd("a2", "STARTTLS")
    assert tagged.startswith("a2 OK"), tagged
    r.starttls(srv.ctx())
    lines, tagged = r.cmd("a3", "CAPABILITY")
    caps2 = lines[0].split()[2:]
    assert "STARTTLS" not in caps2 and "AUTH=PLAIN" in caps2, caps2
    # STARTTLS twice is refused
    lines, tagged = r.cmd("a4", "STARTTLS")
    assert tagged.startswith("a4 BAD"), tagged
    lines, tagged = r.cmd("a5", "LOGOUT")
    assert lines[0].startswith("* BYE"), lines
    assert tagged.startswith("a5 OK"), tagged
    r.close()


def test_imaps_greeting_and_login(shared_server):
    srv = shared_server
    c = imap(srv, tls=True)
    assert "STARTTLS" not in c.capabilities, c.capabilities
    assert "AUTH=PLAIN" in c.capabilities, c.capabilities
    typ, data = c.login(ALICE, ALICE_PW)
    assert typ == "OK", data
    caps = caps_of(data[0].decode())
    assert "LITERAL+" in caps and "LITERAL-" not in caps, caps
    assert "AUTH=PLAIN" not in caps, caps
    c.logout()


def test_inv_a1_imap_logindisabled_before_tls(make_server):
    srv = make_server(overrides={"plaintext_auth.imap": "no"})
    mark = srv.log_mark()
    r = Raw(srv.imap_port)
    caps = caps_of(r.greeting)
    assert "LOGINDISABLED" in caps and "AUTH=PLAIN" not in caps, caps
    lines, tagged = r.cmd("a1", "LOGIN %s %s" % (ALICE, ALICE_PW))
    assert tagged.startswith("a1 NO [PRIVACYREQUIRED]"), tagged
    lines, tagged = r.cmd("a2", "AUTHENTICATE PLAIN AGFsaWNlAHg=")
    assert tagged.startswith("a2 NO [PRIVACYREQUIRED]"), tagged
    lines, tagged = r.cmd("a3", "SELECT INBOX")
    assert tagged.startswith("a3 BAD"), tagged
    srv.wait_log(r"refused peer=127\.0\.0\.1 session=\S+ proto=imap "
                 r"user=- cause=plaintext login without TLS", since=mark)
    # after STARTTLS the same login works
    lines, tagged = r.cmd("a4", "STARTTLS")
    r.starttls(srv.ctx())
    lines, tagged = r.cmd("a5", "CAPABILITY")
    assert "LOGINDISABLED" not in lines[0], lines
    lines, tagged = r.cmd("a6", "LOGIN %s %s" % (ALICE, ALICE_PW))
    assert tagged.startswith("a6 OK"), tagged
    r.cmd("a7", "LOGOUT")
    r.close()
    # the imaps listener takes passwords (TLS from the first byte)
    c = imap(srv, tls=True)
    assert c.login(ALICE, ALICE_PW)[0] == "OK"
    c.logout()


# -- logins ------------------------------------------------------------------

def test_inv_a1_imap_same_reply_unknown_user_and_wrong_password(shared_server):
    srv = shared_server
    mark = srv.log_mark()
    c = imap(srv)
    with pytest.raises(imaplib.IMAP4.error) as e:
        c.login(ALICE, "wrong-password")
    assert "[AUTHENTICATIONFAILED]" in str(e.value), e.value
    with pytest.raises(imaplib.IMAP4.error) as e2:
        c.login("nobody-here@example.org", "wrong-password")
    # INV-A1: the same reply for an unknown user
    assert str(e2.value) == str(e.value)
    c.logout()
    srv.wait_log(r"auth failed user=alice@example\.org peer=127\.0\.0\.1 "
                 r"session=\S+ proto=imap cause=\S+", since=mark)


def test_login_and_authenticate_plain_and_login(shared_server):
    srv = shared_server
    mark = srv.log_mark()
    c = imap(srv)
    typ, data = c.authenticate(
        "PLAIN", lambda _: ("\0%s\0%s" % (ALICE, ALICE_PW)).encode())
    assert typ == "OK", data
    c.logout()
    # SASL-IR
    r = Raw(srv.imap_port)
    import base64
    ir = base64.b64encode(("\0%s\0%s" % (ALICE, ALICE_PW)).encode()).decode()
    lines, tagged = r.cmd("a1", "AUTHENTICATE PLAIN " + ir)
    assert tagged.startswith("a1 OK"), tagged
    r.cmd("a2", "LOGOUT")
    r.close()
    # AUTH=LOGIN with its two challenges
    r = Raw(srv.imap_port)
    r.send("b1 AUTHENTICATE LOGIN\r\n")
    assert r.line() == "+ VXNlcm5hbWU6"
    r.send(base64.b64encode(ALICE.encode()) + b"\r\n")
    assert r.line() == "+ UGFzc3dvcmQ6"
    r.send(base64.b64encode(ALICE_PW.encode()) + b"\r\n")
    lines, tagged = r.until("b1")
    assert tagged.startswith("b1 OK"), tagged
    r.cmd("b2", "LOGOUT")
    r.close()
    srv.wait_log(r"login user=alice@example\.org peer=127\.0\.0\.1 "
                 r"session=\S+ proto=imap mech=LOGIN", since=mark)


def test_login_with_literals(shared_server):
    """A synchronising literal gets "+", a non-synchronising one (LITERAL-,
    at most 4096 octets before login) does not."""
    srv = shared_server
    r = Raw(srv.imap_port)
    r.send("a1 LOGIN {%d}\r\n" % len(ALICE))
    assert r.line().startswith("+ "), "no continuation for {N}"
    r.send("%s {%d+}\r\n%s\r\n" % (ALICE, len(ALICE_PW), ALICE_PW))
    lines, tagged = r.until("a1")
    assert tagged.startswith("a1 OK"), tagged
    r.cmd("a2", "LOGOUT")
    r.close()


# -- the collector's caps ------------------------------------------------------

def test_inv_s3_imap_literal_over_the_cap_refused_cleanly(shared_server):
    srv = shared_server
    mark = srv.log_mark()
    r = Raw(srv.imap_port)
    # a synchronising literal over the cap: no "+", a tagged BAD, and the
    # session goes on
    r.send("a1 LOGIN {100000000}\r\n")
    ln = r.line()
    assert ln.startswith("a1 BAD [LIMIT]"), ln
    lines, tagged = r.cmd("a2", "NOOP")
    assert tagged.startswith("a2 OK"), tagged
    # an overlong line is dropped through its end: its tail is no command
    r.send("a3 LOGIN " + "x" * 20000 + " a4 LOGOUT\r\n")
    ln = r.line()
    assert "BAD" in ln and "a4" not in ln, ln
    lines, tagged = r.cmd("a5", "NOOP")
    assert tagged.startswith("a5 OK"), tagged
    # a non-synchronising literal over 4096 before login (LITERAL-) ends
    # the connection: its bytes cannot be told apart from commands
    # (sent alone: unread data at close would turn the FIN into a RST)
    r.send("a6 LOGIN {5000+}\r\n")
    rest = []
    with pytest.raises(EOFError):
        while True:
            rest.append(r.line())
    assert any(ln.startswith("a6 BAD [LIMIT]") for ln in rest), rest
    assert any(ln.startswith("* BYE") for ln in rest), rest
    r.close()
    srv.wait_log(r"refused peer=127\.0\.0\.1 session=\S+ proto=imap user=- "
                 r"cause=literal of 100000000 octets over the command cap",
                 since=mark)


def test_inv_s1_imap_starttls_discards_pipelined_plaintext(shared_server):
    """INV-S1: what the client sent after STARTTLS before the handshake is
    dropped, never run as a command inside TLS."""
    srv = shared_server
    r = Raw(srv.imap_port)
    r.send("a1 STARTTLS\r\na2 LOGIN %s %s\r\na3 CAPABILITY\r\n"
           % (ALICE, ALICE_PW))
    ln = r.line()
    assert ln.startswith("a1 OK"), ln
    assert r.buf == b"", r.buf
    r.starttls(srv.ctx())
    lines, tagged = r.cmd("a4", "NOOP")
    assert tagged.startswith("a4 OK"), (lines, tagged)
    assert not any(ln.startswith(("a2", "a3")) for ln in lines), lines
    # still not logged in: the pipelined LOGIN never ran
    lines, tagged = r.cmd("a5", "SELECT INBOX")
    assert tagged.startswith("a5 BAD"), tagged
    r.cmd("a6", "LOGOUT")
    r.close()


def test_unknown_and_out_of_state_commands(shared_server):
    srv = shared_server
    r = Raw(srv.imap_port)
    lines, tagged = r.cmd("a1", "FROBNICATE")
    assert tagged.startswith("a1 BAD"), tagged
    lines, tagged = r.cmd("a2", "ENABLE IMAP4rev2")
    assert tagged.startswith("a2 BAD"), tagged
    lines, tagged = r.cmd("a3", 'ID ("name" "pytest")')
    assert tagged.startswith("a3 OK"), tagged
    assert lines[0].startswith("* ID ("), lines
    lines, tagged = r.cmd("a4", "LOGIN %s %s" % (ALICE, ALICE_PW))
    lines, tagged = r.cmd("a5", "NAMESPACE")
    assert lines == ['* NAMESPACE (("" "/")) NIL NIL'], lines
    lines, tagged = r.cmd("a6", "LOGIN %s %s" % (ALICE, ALICE_PW))
    assert tagged.startswith("a6 BAD"), tagged
    r.cmd("a7", "LOGOUT")
    r.close()


# -- folders -------------------------------------------------------------------

def list_lines(c, *args):
    typ, data = c.list(*args)
    assert typ == "OK", data
    return [d.decode() for d in data if d is not None]


def test_list_shows_special_folders_with_attributes(shared_server):
    srv = shared_server
    c = login(srv)
    lines = list_lines(c)
    byname = {ln.rsplit(" ", 1)[1].strip('"'): ln for ln in lines}
    assert "INBOX" in byname, lines
    for name, attr in (("Drafts", "\\Drafts"), ("Sent", "\\Sent"),
                       ("Trash", "\\Trash"), ("Junk", "\\Junk"),
                       ("Archive", "\\Archive")):
        assert name in byname, lines
        assert attr in byname[name], byname[name]
    # LIST "" "": the separator
    typ, data = c.list('""', '""')
    assert data[0].decode() == '(\\Noselect) "/" ""', data
    # RFC 6154 selection option
    typ, data = c._simple_command("LIST", "(SPECIAL-USE)", '""', "*")
    typ, data = c._untagged_response(typ, data, "LIST")
    names = [d.decode().rsplit(" ", 1)[1].strip('"') for d in data]
    assert "INBOX" not in names and "Sent" in names, names
    # LSUB: the defaults are subscribed
    typ, data = c.lsub()
    assert any(b'"Sent"' in d for d in data), data
    c.logout()


def test_create_rename_delete_subscribe(shared_server):
    srv = shared_server
    c = login(srv)
    assert c.create("Projects/2026")[0] == "OK"
    lines = list_lines(c, '""', "Projects*")
    assert any(ln.endswith('"Projects"') and "\\HasChildren" in ln
               for ln in lines), lines
    assert any(ln.endswith('"Projects/2026"') for ln in lines), lines
    typ, data = c.create("Projects/2026")
    assert typ == "NO" and b"[ALREADYEXISTS]" in data[0], data
    assert c.rename("Projects/2026", "Projects/Old")[0] == "OK"
    assert c.subscribe("Projects/Old")[0] == "OK"
    typ, data = c.lsub('""', "Projects/*")
    assert any(b"Projects/Old" in d for d in data), data
    assert c.delete("Projects/Old")[0] == "OK"
    typ, data = c.delete("Projects/Old")
    assert typ == "NO" and b"[NONEXISTENT]" in data[0], data
    # non-ASCII names travel in modified UTF-7 (RFC 3501 5.1.3)
    assert c.create("Entw&APw-rfe")[0] == "OK"
    lines = list_lines(c, '""', "Entw*")
    assert any(ln.endswith('"Entw&APw-rfe"') for ln in lines), lines
    assert os.path.isdir(os.path.join(srv.maildir(), ".Entw&APw-rfe"))
    assert c.delete("Entw&APw-rfe")[0] == "OK"
    # CREATE-SPECIAL-USE
    typ, data = c._simple_command("CREATE", "Later", "(USE (\\Flagged))")
    assert typ == "OK", data
    lines = list_lines(c, '""', "Later")
    assert "\\Flagged" in lines[0], lines
    assert c.delete("Later")[0] == "OK"
    c.logout()


@pytest.mark.parametrize("name", ["../bob", "/etc", "..", "a/../b",
                                  ".hidden", "a//b", "~bob",
                                  "bad&name"])
def test_inv_s2_imap_hostile_folder_names_refused(shared_server, name):
    srv = shared_server
    mark = srv.log_mark()
    c = login(srv)
    typ, data = c.create('"%s"' % name)
    assert typ == "NO", (name, data)
    assert b"[CANNOT]" in data[0], data
    typ, data = c.rename("Archive", '"%s"' % name)
    assert typ == "NO", (name, data)
    c.logout()
    srv.wait_log(r"refused peer=127\.0\.0\.1 session=\S+ proto=imap "
                 r"user=alice@example\.org cause=(invalid mailbox name|"
                 r"mailbox name not modified UTF-7)", since=mark)
    # nothing was made outside the Maildir
    assert not os.path.exists(os.path.join(srv.data_dir, "mail",
                                           "example.org", "bob", ".."))


def test_curl_imaps_login(shared_server):
    """curl lists the mailboxes over imaps and over imap with STARTTLS."""
    import shutil
    import subprocess
    if shutil.which("curl") is None:
        pytest.skip("curl not installed")
    srv = shared_server
    for url, extra in (("imaps://127.0.0.1:%d/" % srv.imaps_port, []),
                       ("imap://127.0.0.1:%d/" % srv.imap_port,
                        ["--ssl-reqd"])):
        p = subprocess.run(
            ["curl", "-sS", "--cacert", srv.ca, "-k", "--max-time", "20",
             "-u", "%s:%s" % (ALICE, ALICE_PW), url] + extra,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        assert p.returncode == 0, (url, p.stderr)
        assert b"INBOX" in p.stdout, p.stdout


# -- the selected state ----------------------------------------------------------

def message(subject, body="Hello over IMAP.\n", sender="bob@example.org"):
    return ("From: %s\nTo: %s\nSubject: %s\n"
            "Date: Sun, 06 Dec 2026 12:00:00 +0000\n"
            "Message-ID: <%s@example.org>\n\n%s"
            % (sender, ALICE, subject, subject.replace(" ", "."), body)
            ).encode()


def select(c, name="INBOX", readonly=False):
    typ, data = c.select(name, readonly=readonly)
    assert typ == "OK", data
    return int(data[0])


def fresh(srv, user=ALICE):
    """A shared daemon's mailbox, emptied (messages and index)."""
    srv.clear_mailbox(user)
    md = srv.maildir(user)
    if os.path.isdir(md):
        for n in os.listdir(md):
            if n.startswith("postd-imap"):
                os.unlink(os.path.join(md, n))


def test_select_and_fetch_body_equals_delivered(shared_server):
    srv = shared_server
    fresh(srv)
    raw = message("first one", "line 1\nline 2\n")
    srv.deliver(ALICE, raw)
    c = login(srv)
    assert select(c) == 1
    typ, data = c.fetch("1", "(UID RFC822.SIZE FLAGS BODY.PEEK[])")
    assert typ == "OK", data
    meta, body = data[0]
    assert body == raw.replace(b"\n", b"\r\n"), body
    m = re.search(rb"RFC822\.SIZE (\d+)", meta)
    assert m and int(m.group(1)) == len(body), meta
    assert b"\\Seen" not in meta, meta
    # UIDVALIDITY and UIDNEXT came with SELECT
    assert c.untagged_responses.get("UIDVALIDITY"), c.untagged_responses
    # a body fetch without PEEK sets \Seen
    typ, data = c.fetch("1", "(BODY[TEXT])")
    assert data[0][1] == b"line 1\r\nline 2\r\n", data
    typ, data = c.fetch("1", "(FLAGS)")
    assert b"\\Seen" in data[0], data
    # header fields, partial
    typ, data = c.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert data[0][1] == b"Subject: first one\r\n\r\n", data
    typ, data = c.fetch("1", "(BODY.PEEK[]<0.4>)")
    assert data[0][1] == b"From", data
    typ, data = c.fetch("1", "(ENVELOPE BODYSTRUCTURE INTERNALDATE)")
    assert b'"first one"' in data[0] and b'"TEXT" "PLAIN"' in data[0].upper(), data
    c.logout()


def test_flags_stored_and_seen_in_second_session(shared_server):
    srv = shared_server
    fresh(srv)
    srv.deliver(ALICE, message("flag me"))
    a = login(srv)
    b = login(srv)
    select(a)
    select(b)
    typ, data = a.store("1", "+FLAGS", "(\\Flagged $Important)")
    assert typ == "OK" and b"\\Flagged" in data[0], data
    typ, data = b.fetch("1", "(FLAGS)")
    assert b"\\Flagged" in data[0] and b"$Important" in data[0], data
    # the system flag is in the Maildir file name, as Maildir readers expect
    assert any(n.split(":2,")[-1].find("F") >= 0
               for n in srv.stored_messages()), srv.stored_messages()
    typ, data = a.store("1", "-FLAGS.SILENT", "(\\Flagged)")
    assert typ == "OK" and data == [None], data
    typ, data = b.noop()
    typ, data = b.fetch("1", "(FLAGS)")
    assert b"\\Flagged" not in data[0], data
    # EXAMINE is read-only
    typ, data = b.select("INBOX", readonly=True)
    typ, data = b.store("1", "+FLAGS", "(\\Seen)")
    assert typ == "NO", data
    a.logout()
    b.logout()


def test_append_then_fetch(shared_server):
    srv = shared_server
    fresh(srv)
    raw = message("appended").replace(b"\n", b"\r\n")
    c = login(srv)
    typ, data = c.append("INBOX", "(\\Seen $Work)",
                         imaplib.Time2Internaldate(1767225600), raw)
    assert typ == "OK", data
    m = re.search(rb"\[APPENDUID (\d+) (\d+)\]", data[0])
    assert m, data
    uid = int(m.group(2))
    assert select(c) == 1
    typ, data = c.uid("FETCH", str(uid), "(FLAGS INTERNALDATE BODY.PEEK[])")
    assert data[0][1] == raw, data
    assert b"\\Seen" in data[0][0] and b"$Work" in data[0][0], data
    assert b"01-Jan-2026" in data[0][0], data
    # to a folder that does not exist: TRYCREATE
    typ, data = c.append("Nowhere", None, None, raw)
    assert typ == "NO" and b"[TRYCREATE]" in data[0], data
    # to another folder, seen by STATUS
    typ, data = c.append("Drafts", "(\\Draft)", None, raw)
    assert typ == "OK", data
    typ, data = c.status("Drafts", "(MESSAGES UIDNEXT SIZE)")
    assert b"MESSAGES 1" in data[0] or b"MESSAGES" in data[0], data
    c.logout()


def test_copy_and_move_to_archive_seen_by_other_session(shared_server):
    srv = shared_server
    fresh(srv)
    for i in range(3):
        srv.deliver(ALICE, message("move %d" % i))
    a = login(srv)
    b = login(srv)
    assert select(a) == 3
    assert select(b) == 3
    typ, data = a.copy("1", "Archive")
    assert typ == "OK" and b"[COPYUID " in data[0], data
    typ, data = a._simple_command("MOVE", "2", "Archive")
    assert typ == "OK", data
    assert any(b"COPYUID" in (d or b"") for d in
               a.untagged_responses.get("OK", [])), a.untagged_responses
    assert a.untagged_responses.get("EXPUNGE") == [b"2"], \
        a.untagged_responses
    # the other session is told of the expunge at its next command
    typ, data = b.noop()
    assert b"2" in b.untagged_responses.get("EXPUNGE", []), \
        b.untagged_responses
    typ, data = b.status("Archive", "(MESSAGES)")
    assert b"MESSAGES 2" in data[0], data
    typ, data = a.copy("1", "NoSuchFolder")
    assert typ == "NO" and b"[TRYCREATE]" in data[0], data
    a.logout()
    b.logout()


def test_idle_sees_a_new_delivery_within_a_second(shared_server):
    import time
    srv = shared_server
    fresh(srv)
    srv.deliver(ALICE, message("before idle"))
    r = Raw(srv.imap_port)
    r.cmd("a1", "LOGIN %s %s" % (ALICE, ALICE_PW))
    lines, tagged = r.cmd("a2", "SELECT INBOX")
    assert "* 1 EXISTS" in lines, lines
    r.send("a3 IDLE\r\n")
    assert r.line().startswith("+ "), "no IDLE continuation"
    srv.deliver(ALICE, message("during idle"))
    t0 = time.monotonic()
    r.sock.settimeout(5)
    ln = r.line()
    while not ln.endswith("EXISTS"):
        ln = r.line()
    assert ln == "* 2 EXISTS", ln
    assert time.monotonic() - t0 < 1.5
    r.send("DONE\r\n")
    lines, tagged = r.until("a3")
    assert tagged.startswith("a3 OK"), tagged
    r.cmd("a4", "LOGOUT")
    r.close()


def test_uid_search(shared_server):
    srv = shared_server
    fresh(srv)
    srv.deliver(ALICE, message("apples", "red fruit\n"))
    srv.deliver(ALICE, message("pears", "green fruit\n"))
    srv.deliver(ALICE, message("plums", "purple\n", sender="carol@example.org"))
    c = login(srv)
    select(c)
    typ, data = c.uid("SEARCH", None, "ALL")
    uids = [int(x) for x in data[0].split()]
    assert len(uids) == 3 and uids == sorted(uids), data
    typ, data = c.uid("SEARCH", None, "SUBJECT", "pears")
    assert [int(x) for x in data[0].split()] == [uids[1]], data
    typ, data = c.search(None, "BODY", "fruit")
    assert data[0].split() == [b"1", b"2"], data
    typ, data = c.search(None, "FROM", "carol")
    assert data[0].split() == [b"3"], data
    typ, data = c.search(None, "NOT", "FROM", "carol", "UNSEEN")
    assert data[0].split() == [b"1", b"2"], data
    typ, data = c.search("UTF-8", "OR", "SUBJECT", "apples",
                         "SUBJECT", "plums")
    assert data[0].split() == [b"1", b"3"], data
    # ESEARCH with RETURN, SEARCHRES
    typ, data = c.uid("SEARCH", "RETURN", "(MIN MAX COUNT)", "ALL")
    es = c.untagged_responses.pop("ESEARCH", [b""])[0]
    assert b"MIN %d" % uids[0] in es and b"COUNT 3" in es, es
    typ, data = c._simple_command("SEARCH", "RETURN", "(SAVE)", "SUBJECT",
                                  "plums")
    typ, data = c.fetch("$", "(UID)")
    assert b"UID %d" % uids[2] in data[0], data
    typ, data = c.search("KOI8-R", "ALL")
    assert typ == "NO", data
    c.logout()


@pytest.mark.parametrize("name", ["../bob@example.org", "bob@example.org",
                                  "../../example.org/bob", "/bob", "~bob",
                                  "..", "../bob", "INBOX/../../bob",
                                  "&Li4-/bob"])
def test_inv_u1_imap_cannot_reach_another_users_mailbox(shared_server, name):
    srv = shared_server
    srv.deliver("bob@example.org", message("for bob only"))
    c = login(srv)
    typ, data = c.select('"%s"' % name)
    assert typ == "NO", (name, data)
    typ, data = c.status('"%s"' % name, "(MESSAGES)")
    assert typ == "NO", (name, data)
    typ, data = c.append('"%s"' % name, None, None, b"Subject: x\r\n\r\nx\r\n")
    assert typ == "NO", (name, data)
    c.logout()


def test_enable_imap4rev2(shared_server):
    """ENABLE IMAP4rev2 switches to RFC 9051 rules: SELECT sends LIST and no
    RECENT, SEARCH answers ESEARCH, names are UTF-8."""
    srv = shared_server
    fresh(srv)
    srv.deliver(ALICE, message("rev2"))
    r = Raw(srv.imap_port)
    assert "IMAP4rev2" in caps_of(r.greeting)
    r.cmd("a1", "LOGIN %s %s" % (ALICE, ALICE_PW))
    lines, tagged = r.cmd("a2", "ENABLE IMAP4rev2")
    assert lines == ["* ENABLED IMAP4rev2"], lines
    lines, tagged = r.cmd("a3", "SELECT INBOX")
    assert tagged.startswith("a3 OK [READ-WRITE]"), tagged
    assert '* LIST () "/" "INBOX"' in lines, lines
    assert not any(ln.endswith("RECENT") for ln in lines), lines
    lines, tagged = r.cmd("a4", "SEARCH ALL")
    assert lines == ['* ESEARCH (TAG "a4") ALL 1'], lines
    lines, tagged = r.cmd("a5", 'CREATE "Entwürfe"')
    assert tagged.startswith("a5 OK"), tagged
    lines, tagged = r.cmd("a6", 'LIST "" "Entw*"')
    assert lines == ['* LIST (\\HasNoChildren) "/" "Entwürfe"'], lines
    assert os.path.isdir(os.path.join(srv.maildir(), ".Entw&APw-rfe"))
    r.cmd("a7", 'DELETE "Entwürfe"')
    r.cmd("a8", "LOGOUT")
    r.close()


def test_append_with_literal_name_and_non_synchronising_message(shared_server):
    """The mailbox name may itself be a literal; LITERAL+ after login lets
    the message follow without waiting for "+"."""
    srv = shared_server
    fresh(srv)
    msg = message("literal plus").replace(b"\n", b"\r\n")
    r = Raw(srv.imap_port)
    r.cmd("a1", "LOGIN %s %s" % (ALICE, ALICE_PW))
    r.send("a2 APPEND {5}\r\n")
    assert r.line().startswith("+ ")
    r.send(b"INBOX (\\Flagged) {%d+}\r\n" % len(msg) + msg + b"\r\n")
    lines, tagged = r.until("a2")
    assert re.match(r"a2 OK \[APPENDUID \d+ \d+\]", tagged), tagged
    # refused (no such folder) with a non-synchronising literal: the
    # message is read and dropped, never taken for commands
    r.send(b"a3 APPEND Nowhere {%d+}\r\n" % len(msg) + msg + b"\r\n")
    lines, tagged = r.until("a3")
    assert tagged.startswith("a3 NO [TRYCREATE]"), tagged
    lines, tagged = r.cmd("a4", "SELECT INBOX")
    assert "* 1 EXISTS" in lines, lines
    lines, tagged = r.cmd("a5", "FETCH 1 (FLAGS BODY.PEEK[])")
    assert "\\Flagged" in lines[0], lines
    r.cmd("a6", "LOGOUT")
    r.close()


def test_fetch_of_many_large_messages_streams_complete(shared_server):
    """FETCH 1:* of more than the output high-water mark pauses and
    resumes (on drain) without losing or reordering a byte."""
    srv = shared_server
    fresh(srv)
    bodies = []
    for i in range(12):
        body = "".join("message %d line %d %s\n" % (i, n, "x" * 60)
                       for n in range(1500))
        raw = message("big %d" % i, body)
        bodies.append(raw.replace(b"\n", b"\r\n"))
        srv.deliver(ALICE, raw)
    c = login(srv)
    assert select(c) == 12
    typ, data = c.fetch("1:*", "(BODY.PEEK[])")
    got = [d[1] for d in data if isinstance(d, tuple)]
    assert len(got) == 12
    assert got == bodies
    c.logout()


def test_curl_imap_fetch_by_uid(shared_server):
    """curl logs in (imaps, and imap with STARTTLS) and fetches a message
    by UID: what the first-start hint tells users to try."""
    import shutil
    import subprocess
    if shutil.which("curl") is None:
        pytest.skip("curl not installed")
    srv = shared_server
    fresh(srv)
    raw = message("fetched by curl", "curl was here\n")
    srv.deliver(ALICE, raw)
    c = login(srv)
    select(c)
    typ, data = c.uid("SEARCH", None, "ALL")
    uid = int(data[0].split()[-1])
    c.logout()
    for url, extra in (("imaps://127.0.0.1:%d/INBOX;UID=%d"
                        % (srv.imaps_port, uid), []),
                       ("imap://127.0.0.1:%d/INBOX;UID=%d"
                        % (srv.imap_port, uid), ["--ssl-reqd"])):
        p = subprocess.run(
            ["curl", "-sS", "-k", "--max-time", "20",
             "-u", "%s:%s" % (ALICE, ALICE_PW), url] + extra,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        assert p.returncode == 0, (url, p.stderr)
        assert p.stdout.replace(b"\r\n", b"\n") == raw, p.stdout


def test_rfc822_size_is_what_body_sends(shared_server):
    """RFC822.SIZE from the index (no text read) equals the octets that
    BODY[] sends, also for a message whose last line has no end."""
    srv = shared_server
    fresh(srv)
    srv.deliver(ALICE, b"Subject: no end\n\nlast line without newline")
    srv.deliver(ALICE, message("normal"))
    c = login(srv)
    select(c)
    for n in ("1", "2"):
        typ, data = c.fetch(n, "(RFC822.SIZE)")
        size = int(re.search(rb"RFC822\.SIZE (\d+)", data[0]).group(1))
        typ, data = c.fetch(n, "(BODY.PEEK[])")
        assert len(data[0][1]) == size, (n, size, data)
    c.logout()


def test_pop3_and_imap_on_one_mailbox(shared_server):
    """The POP3 lock does not block IMAP; what POP3 deletes at QUIT is an
    EXPUNGE for an IMAP session; what IMAP appends POP3 sees next login."""
    srv = shared_server
    fresh(srv)
    srv.deliver(ALICE, message("pop and imap 1"))
    srv.deliver(ALICE, message("pop and imap 2"))
    p = srv.login()                      # POP3 TRANSACTION: mailbox locked
    c = login(srv)
    assert select(c) == 2                # not blocked by the POP3 lock
    assert p.cmd("DELE 1").startswith("+OK")
    assert p.cmd("QUIT").startswith("+OK")
    p.close()
    typ, data = c.noop()
    assert c.untagged_responses.get("EXPUNGE") == [b"1"], \
        c.untagged_responses
    typ, data = c.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert b"pop and imap 2" in data[0][1], data
    typ, data = c.append("INBOX", None, None,
                         message("from imap").replace(b"\n", b"\r\n"))
    assert typ == "OK", data
    c.logout()
    p = srv.login()
    r = p.cmd("STAT")
    assert r.startswith("+OK 2 "), r
    p.cmd("QUIT")
    p.close()


def _voluntary_switches(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("voluntary_ctxt_switches:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def test_idle_sessions_do_not_wake_the_server(shared_server):
    """IDLE is event-driven (inotify), with no timer: while a session
    idles and nothing arrives, no process of the daemon wakes up. Each
    wake-up is a voluntary context switch in /proc/PID/status; a 200 ms
    poll would add about 15 in the 3 seconds watched."""
    import time
    srv = shared_server
    fresh(srv)
    r = Raw(srv.imap_port)
    r.cmd("a1", "LOGIN %s %s" % (ALICE, ALICE_PW))
    r.cmd("a2", "SELECT INBOX")
    r.send("a3 IDLE\r\n")
    assert r.line().startswith("+ "), "no IDLE continuation"
    time.sleep(0.5)
    pids = [srv.proc.pid] + srv.descendants()
    before = {p: _voluntary_switches(p) for p in pids}
    time.sleep(3)
    woke = {p: _voluntary_switches(p) - before[p] for p in pids}
    assert sum(woke.values()) <= 3, woke
    r.send("DONE\r\n")
    lines, tagged = r.until("a3")
    assert tagged.startswith("a3 OK"), tagged
    r.cmd("a4", "LOGOUT")
    r.close()
