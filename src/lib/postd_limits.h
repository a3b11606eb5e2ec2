/*
 * Every cap postd enforces, in one place, with the reason for its value
 * (doc/hacking.md, INV-S3). Caps are checked while reading, never after
 * allocating.
 */
#ifndef POSTD_LIMITS_H
#define POSTD_LIMITS_H

/* POP3: a command line is at most 255 octets including CRLF
 * (RFC 2449 section 4). */
#define POP3_MAX_COMMAND_LINE 255
/* POP3 AUTH continuation lines carry base64 SASL data; RFC 5034 section 4
 * leaves the length open, RFC 4954 uses 12288 for SMTP, and we do the
 * same so one SASL decoder serves both. Before login the input buffer
 * (CONN_INPUT_MAX_PREAUTH) caps them further. Both counts include CRLF. */
#define SASL_MAX_RESPONSE_LINE 12288
/* Decoded SASL credentials: user names and passwords are short. */
#define AUTH_MAX_USER 255
#define AUTH_MAX_PASSWORD 1024
/* A user name from the network: local part 64 + '@' + domain 190 fits
 * RFC 5321's 64/255 limits while keeping paths short. */
#define MAILBOX_MAX_LOCALPART 64
#define MAILBOX_MAX_DOMAIN 190
/* Invalid or unknown commands in a row before the connection is closed:
 * a real client never sends more than a couple. */
#define SESSION_MAX_BAD_COMMANDS 10
/* Authentication failures per connection before it is closed. */
#define SESSION_MAX_AUTH_FAILURES 3
/* Descriptors one session may hold at once: a selected IMAP session has
 * its socket, the user's Maildir, the folder, new/, cur/, the index log,
 * its lock and the cache. Used to say at start whether the open-files
 * limit fits max_connections. */
#define POSTD_FDS_PER_SESSION 8
/* A POP3 message number: messages in one snapshot. */
#define POP3_MAX_MESSAGES 10000000u
/* Output queued per connection before a long response (RETR, LIST) waits
 * for the peer to read: large enough for throughput, small enough that
 * 5,000 slow readers cost little memory. */
#define CONN_OUTPUT_HIGH_WATER (256 * 1024)
#define CONN_OUTPUT_LOW_WATER (64 * 1024)
/* Input buffered per connection. Before authentication less is allowed
 * than after (popa3d's params.h makes the same split). */
#define CONN_INPUT_MAX_PREAUTH (4 * 1024)
#define CONN_INPUT_MAX (16 * 1024)
/* RFC 1939 section 3: the autologout timer is at least 10 minutes once
 * authenticated; before login a shorter timer frees slots held by idle
 * scanners. */
#define POP3_TIMEOUT_AUTHENTICATED_MIN 600
#define TIMEOUT_PREAUTH_DEFAULT 60
/* Configuration lines; longer lines are an error, not truncated. */
#define CONFIG_MAX_LINE 4096
#define CONFIG_MAX_LISTEN_ADDRESSES 16
/* users_file: lines and entries. */
#define PASSWD_MAX_LINE 4096
#define PASSWD_MAX_USERS 1000000
/* Maildir file names (NAME_MAX is 255 on Linux). */
#define MAILDIR_MAX_NAME 255
/* A message read by postctl deliver (the SMTP listener has its own
 * configured size limit). */
#define DELIVER_MAX_MESSAGE (64ull * 1024 * 1024)
/* Index lines: uid, sizes, times and a file name. */
#define INDEX_MAX_LINE (MAILDIR_MAX_NAME + 128)
/* Pending requests from one worker to the auth process. */
#define AUTH_MAX_PENDING 4096

/* Configuration values (config.c). A host name is at most 253 octets
 * (RFC 1035 section 2.3.4); an account name fits useradd's 32. */
#define CONFIG_MAX_HOSTNAME 253
#define CONFIG_MAX_ACCOUNT_NAME 32
/* More workers than this only adds memory; more connections than this
 * exceeds what one machine's descriptors sensibly allow. */
#define CONFIG_MAX_WORKERS 1024
#define CONFIG_MAX_CONNECTIONS 1000000
/* Session timers: a week is already longer than any client waits. */
#define CONFIG_MAX_TIMEOUT (7 * 24 * 3600)
/* A failed login waits at most a minute: longer only ties up slots. */
#define CONFIG_MAX_AUTH_FAILURE_DELAY_MS 60000

/* Maildir tmp/ files older than this are left over from a crash and
 * are removed (INV-D3; the Maildir specification says 36 hours). */
#define MAILDIR_TMP_MAX_AGE (36 * 3600)
/* Read and write buffer for message files: large enough that a
 * delivery or a size count makes few system calls. */
#define MAILDIR_IO_BUFFER (64 * 1024)
/* The escaped host name inside a Maildir file name, so that the unique
 * part stays short enough to be a POP3 UIDL in most cases. */
#define MAILDIR_MAX_HOST 64
/* A POP3 unique-id is 1 to 70 characters in 0x21..0x7e (RFC 1939
 * section 7). */
#define POP3_MAX_UIDL 70
/* The holder line in the POP3 lock file: session, user, peer, time,
 * pid and host. */
#define MAILBOX_MAX_HOLDER 1024

/* Auth process tarpit (INV-A1): peers remembered, how long a quiet peer
 * keeps its failure count, and the longest a failure reply is held back
 * (long enough to slow guessing to a crawl, short enough that clients do
 * not time out). */
#define AUTH_TARPIT_PEERS 4096
#define AUTH_TARPIT_FORGET_MS (15u * 60 * 1000)
#define AUTH_TARPIT_MAX_DELAY_MS 15000
/* Password verification threads in the auth process: one per core, at
 * least 2 so one slow hash cannot block everyone, at most this many
 * (Argon2 uses 64 MiB per running hash). */
#define AUTH_MAX_THREADS 64

/* SMTP */
/* A command line, including the command word and CRLF, is at most 512
 * octets (RFC 5321 section 4.5.3.1.4). AUTH is the exception: its initial
 * response may make the line as long as SASL_MAX_RESPONSE_LINE (RFC 4954
 * section 4). */
#define SMTP_MAX_COMMAND_LINE 512
/* A text line in DATA, including CRLF and not counting a stuffed dot,
 * is at most 1000 octets (RFC 5321 section 4.5.3.1.6). */
#define SMTP_MAX_TEXT_LINE 1000
/* What we accept instead (smtp_max_line_length): newsletters, long To:
 * lists and machine-made HTML break RFC 5321's limit every day, and
 * Postfix takes them. The line is stored unchanged; one over the bound
 * refuses the message. The cap keeps the key sane. */
#define SMTP_MAX_LINE_DEFAULT (64 * 1024)
#define CONFIG_MAX_SMTP_LINE (1024 * 1024)
/* Received: fields a message may already carry before it is refused as a
 * mail loop (max_received_headers; Postfix's hopcount_limit is 50). */
#define SMTP_MAX_RECEIVED_DEFAULT 50
#define CONFIG_MAX_RECEIVED 1000
/* Local part 64 octets, domain 255 octets, reverse- or forward-path 256
 * octets including the angle brackets and separators (RFC 5321 sections
 * 4.5.3.1.1 to 4.5.3.1.3). The path cap holds for the path as sent,
 * source route included. */
#define SMTP_MAX_LOCALPART 64
#define SMTP_MAX_DOMAIN 255
#define SMTP_MAX_PATH 256
/* A DNS label is at most 63 octets (RFC 1035 section 2.3.4). */
#define SMTP_MAX_LABEL 63
/* SIZE=value is 1*20DIGIT (RFC 1870 section 3). */
#define SMTP_MAX_SIZE_DIGITS 20
/* A SASL mechanism name is 1 to 20 characters (RFC 4422 section 3.1). */
#define SMTP_MAX_SASL_MECH 20
/* Recipients per message: RFC 5321 section 4.5.3.1.8 requires room for
 * at least 100, and more only helps spammers. */
#define SMTP_MAX_RECIPIENTS_DEFAULT 100

/* Configurable SMTP caps: a message of 1 GiB and 10,000 recipients are
 * far past what any real site needs, and both stay inside 32 bits. */
#define CONFIG_MAX_MESSAGE_SIZE (1024u * 1024 * 1024)
#define CONFIG_MAX_RECIPIENTS 10000
/* Steps of one alias expansion (alias_max_expansions). */
#define ALIAS_MAX_EXPANSIONS_DEFAULT 100
#define ALIAS_MAX_EXPANSIONS_LIMIT 10000
/* SMTP commands from one client before it starts a transaction (MAIL):
 * a real client needs a handful (EHLO, STARTTLS, EHLO, AUTH). */
#define SMTP_MAX_COMMANDS_BEFORE_MAIL 100
/* Errors in one SMTP session before 421 and close. */
#define SMTP_MAX_ERRORS 20
/* RFC 5321 section 4.5.3.2.7: the server waits at least 5 minutes for
 * the next command. */
#define SMTP_TIMEOUT 300
/* The From: field a submission checks, folded lines included: real ones
 * are under 1 KiB; a longer one is refused rather than half-checked. */
#define SMTP_HEADER_MAX_FROM 4096
/* Free space and inodes below which MAIL gets 452 4.3.1 (INV-D5). */
#define SMTP_MIN_FREE_BYTES (64ull * 1024 * 1024)
#define SMTP_MIN_FREE_INODES 1000

/* Spool and outbound queue (spool.c, queue.c). */
/* Commit threads: each overlaps one more fsync with the others; the
 * disk, not the CPU, is the limit, so a few are enough. */
#define SPOOL_DEFAULT_THREADS 4
#define SPOOL_MAX_THREADS 64
/* Commits one thread takes at once and whose directories it fsyncs
 * together (group commit): big enough to share fsyncs under load, small
 * enough that one batch does not hold the others back. */
#define SPOOL_MAX_BATCH 64
/* A queue id: hex time and random digits, [0-9A-Za-z] only. */
#define QUEUE_MAX_ID 40
/* An envelope line: keyword, an escaped 256-octet path (3 bytes per
 * escaped octet), recipient state and an escaped last error. */
#define QUEUE_MAX_LINE 4096
/* The last error kept per recipient (decoded). */
#define QUEUE_MAX_ERROR 512
/* Recipients per queue entry and the envelope file size: well above
 * what a session accepts, low enough to bound a reader's memory. */
#define QUEUE_MAX_RCPTS 10000
#define QUEUE_MAX_ENVELOPE (4 * 1024 * 1024)
/* A message file in msg/ without an envelope this old is left over from
 * a crash, not being written (INV-D4). */
#define QUEUE_ORPHAN_AGE 60
/* Header bytes postctl queue show prints. */
#define QUEUE_SHOW_MAX_HEADER (64 * 1024)

/* Queue runner (src/delivery/): the attempt, schedule, session and
 * connection cache. */
/* RFC 5321 section 4.5.3.2 timeouts (seconds). */
#define DELIVERY_CONNECT_TIMEOUT 30
#define DELIVERY_COMMAND_TIMEOUT 300
#define DELIVERY_DATA_END_TIMEOUT 600
/* The safety-net rescan of env/ (inotify does the real work). */
#define DELIVERY_RESCAN_SECS 60
/* Attempts in flight at once (one per queue entry). */
#define DELIVERY_MAX_ATTEMPTS 200
/* Bytes read from msg/ID per step and the output level that asks for
 * the next step. */
#define DELIVERY_CHUNK 65536
/* A connection that delivered a message waits this long for the next
 * message to the same destination, and at most this many wait. */
#define DELIVERY_IDLE_SECS 5
#define DELIVERY_MAX_IDLE 100
/* A dsn_queue failure is retried this soon. */
#define DELIVERY_DSN_RETRY 60

/* Outbound SMTP replies (smtp_client.c). */
/* One reply line, CRLF included: RFC 5321 section 4.5.3.1.5 says 512,
 * real servers send a little more; more than this is hostile. */
#define SMTP_CLIENT_MAX_REPLY_LINE 2048
/* Lines of one multi-line reply (an EHLO answer has a dozen). */
#define SMTP_CLIENT_MAX_REPLY_LINES 64
/* The joined text of one reply (lines joined by '\n'). */
#define SMTP_CLIENT_MAX_REPLY_TEXT 8192

/* MX and address lookups (dns.c). */
/* RFC 5321 section 5.1 sets no cap; ten exchangers is more than any sane
 * domain publishes, and each costs two lookups and connection attempts. */
#define DNS_MAX_MX_HOSTS 10
/* MX records read from one answer before sorting; a larger RRset is
 * abuse (a 64 KiB TCP answer could hold thousands). */
#define DNS_MAX_MX_RECORDS 100
/* Addresses kept per host and per family: round-robin sets beyond this
 * add nothing but connection attempts. */
#define DNS_MAX_ADDRS_PER_FAMILY 8
/* A domain name is at most 253 characters in text form without the
 * trailing dot (RFC 1035 section 2.3.4: 255 octets on the wire). */
#define DNS_MAX_NAME 253
/* A label is at most 63 octets (RFC 1035 section 2.3.4). */
#define DNS_MAX_LABEL 63
/* c-ares waits DNS_TIMEOUT_MS for the first try and doubles it per
 * further try: 2 s + 4 s. A slow resolver means a retry of the queue
 * entry later, not a blocked runner. */
#define DNS_TIMEOUT_MS 2000
#define DNS_TRIES 2

/* DKIM signing (dkim.c). */
/* The header section that is signed. Larger headers are not signed
 * (an error): SMTP-received mail never has one this big. */
#define DKIM_MAX_HEADER (1024 * 1024)
/* Read size for the body. */
#define DKIM_CHUNK (64 * 1024)
/* The DKIM-Signature header: tags, an h= list and a 4096-bit RSA
 * signature in base64 fit easily. */
#define DKIM_MAX_SIG_HEADER 8192
#define DKIM_MAX_NAME 253

/* Delivery status notifications (dsn.c). */
/* The original header section attached (RFC 3462 text/rfc822-headers):
 * enough for any sane header, bounded so a huge one cannot bloat the
 * report. Cut at a line end. */
#define DSN_MAX_HEADER (64 * 1024)
/* A whole report: QUEUE_MAX_RCPTS recipients at about 1.5 KiB each plus
 * the header section fit comfortably. */
#define DSN_MAX_SIZE (32 * 1024 * 1024)
/* One value copied into a header or text line. */
#define DSN_MAX_VALUE 1024

/* Stored passwords (src/auth/password.c). */
/* Longest scheme name between the braces, with an encoding suffix. */
#define PASSWORD_MAX_SCHEME 32
/* Salt bytes accepted after a digest ({SSHA512}: Dovecot writes 8). */
#define PASSWORD_MAX_SALT 64
/* Longest stored value after the scheme (crypt strings, Argon2). */
#define PASSWORD_MAX_DATA 512
/* Argon2 memory cost we agree to spend on one verification (KiB): a
 * stored hash must not be able to exhaust the auth process. */
#define PASSWORD_MAX_ARGON2_MEM (1024u * 1024u)
/* Bytes of the random password behind password_dummy_hash(). */
#define PASSWORD_DUMMY_BYTES 32

/* HTTP (src/proto/http/http_server.c). */
/* Request line plus headers: a browser sends under 2 KiB, a mail client
 * far less. */
#define HTTP_MAX_HEADERS (8 * 1024)
/* Only Autodiscover has a body, a few hundred bytes. */
#define HTTP_MAX_BODY (64 * 1024)
/* A request must be complete this long after the connection opened (or
 * after the previous response): min(timeout_preauth, this). A slowloris
 * client gets 408 and is closed. */
#define HTTP_MAX_REQUEST_SECS 30
/* How often connections closed by evhttp are reaped (their counts in
 * the caps released). */
#define HTTP_SWEEP_MS 250

/* Retention is at most ten years (EXPIRE counts days). */
#define CONFIG_MAX_RETENTION (3650u * 86400)
/* queue_lifetime, delay_warning_time, queue_retry_*: at most 30 days. */
#define CONFIG_MAX_QUEUE_TIME (30 * 86400)
#define CONFIG_MAX_DNS_SERVERS 8
/* proxy_trusted: networks listed; proxy_protocol_timeout: at most a
 * minute, default 5 s (a balancer sends the header at once). */
#define CONFIG_MAX_PROXY_TRUSTED 64
#define CONFIG_MAX_PROXY_TIMEOUT 60
#define CONFIG_DEFAULT_PROXY_TIMEOUT 5

/* Master and workers (src/daemon/, src/net/connlimit.c). */
/* Listening sockets, children (workers and helper processes) and
 * workers the master keeps track of. */
#define MASTER_MAX_LISTENERS 64
#define MASTER_MAX_CHILDREN 256
#define MASTER_MAX_WORKERS 64
/* A generation that dies sooner than this after its start is restarted
 * only after a pause, so a crash loop does not spin. */
#define MASTER_RESPAWN_PAUSE_SECS 2
/* SIGTERM: how long children get before SIGKILL. */
#define MASTER_STOP_GRACE_SECS 10
/* After SIGTERM, how long sessions get to say goodbye. */
#define WORKER_SHUTDOWN_GRACE_SECS 5
/* Worker slots in the shared connection-cap table (connlimit.h) and the
 * hash buckets that count connections per peer. */
#define CONNLIMIT_SLOTS 128
#define CONNLIMIT_BUCKETS 4096

/* Auth process requests (auth_server.c) and the worker side
 * (auth_client.c). */
/* Requests read per worker per event, so one busy worker cannot starve
 * the others. */
#define AUTH_SERVER_MAX_READS 64
/* Replies handled per read event, so one busy client cannot starve the
 * rest of the worker's loop. */
#define AUTH_CLIENT_MAX_READS 64
/* How far a peer's slot is searched for in the tarpit table. */
#define AUTH_PEER_PROBES 8
/* Requests of one peer alive in this process (waiting for their check,
 * being checked, or a failure held back): a flood from one peer fails
 * fast beyond this and never takes the share of the others. */
#define AUTH_PEER_MAX_JOBS 8
/* The same while the peer has no recent failure: a webmail host or an
 * office behind one address logs many users in at once, and only
 * AUTH_PEER_MAX_CHECKS of them are checked at a time anyway. A failure
 * trims the peer's queue back to AUTH_PEER_MAX_JOBS (auth_peer_trim()). */
#define AUTH_PEER_MAX_JOBS_CLEAN 64
/* Checks of one peer that run at once while it has no recent failure;
 * a peer with failures is checked one request at a time. */
#define AUTH_PEER_MAX_CHECKS 4
/* Requests alive in this process in all: bounds its memory however many
 * peers flood it. */
#define AUTH_MAX_JOBS 1024
/* Of AUTH_MAX_JOBS, the part only peers without recent failures may
 * take: otherwise a hundred-odd penalised peers (the /64s of one IPv6
 * /56) fill the process and every login of anyone is refused as busy. */
#define AUTH_RESERVED_JOBS (AUTH_MAX_JOBS / 4)
/* Buckets of the (worker, id) table that finds a request to cancel. */
#define AUTH_JOB_BUCKETS 1024
/* "ffff:ffff:ffff:ffff::/64" and a NUL. */
#define AUTH_PEER_KEY_SIZE 48
/* userdb = pgsql: a failed read of the aliases table is tried again. */
#define AUTH_ALIAS_RETRY_SECONDS 5

/* userdb = pgsql (userdb_pgsql.c). */
/* Cached answers: a direct-mapped table, so its memory is fixed; two
 * names sharing a slot only cost a query. */
#define PG_CACHE_SLOTS 4096
/* Lookups waiting for a free connection: beyond this the answer is
 * "unavailable" at once (the auth process holds 1,024 requests). */
#define PG_MAX_WAITING 1024
/* Reconnect delays: none after a working connection ends, then from
 * PG_BACKOFF_MIN_MS doubling to PG_BACKOFF_MAX_MS. */
#define PG_BACKOFF_MIN_MS 250
#define PG_BACKOFF_MAX_MS 10000

/* SMTP replies we send (smtp_session.c). */
/* One reply line without CRLF, cut here (RFC 5321 allows 512 with CRLF;
 * none of ours comes near). */
#define SMTP_REPLY_MAX 600

/* HTTP documents (src/proto/http/: metrics, Autodiscover,
 * autoconfig). */
/* The exposition is about 3 KiB. */
#define METRICS_EXPORT_MAX (32 * 1024)
/* Queue entries counted per scrape: a queue longer than this is reported
 * as this many (and an alert is due anyway), so one scrape never walks a
 * huge directory. */
#define METRICS_EXPORT_MAX_QUEUE_SCAN 100000
/* A scrape reuses the queue count this many seconds (scrapers poll every
 * 15 s or more; several at once cost one readdir). */
#define METRICS_EXPORT_QUEUE_CACHE_SECS 2
/* A request is a few hundred bytes; anything larger is not Outlook. */
#define AUTODISCOVER_MAX_REQUEST (16 * 1024)
/* Element nesting: Autodiscover > Request > EMailAddress is 3 deep. */
#define AUTODISCOVER_MAX_DEPTH 8
/* Elements in one request (Outlook sends 4). */
#define AUTODISCOVER_MAX_ELEMENTS 64
/* An element name, prefix included. */
#define AUTODISCOVER_MAX_NAME 64
/* An address is at most 254 octets (RFC 5321 4.5.3.1.3 minus the angle
 * brackets); whitespace around it in the XML is allowed and trimmed. */
#define AUTODISCOVER_MAX_EMAIL 254
/* The response schema a request asks for (a URI). */
#define AUTODISCOVER_MAX_SCHEMA 256
/* Room for the generated documents: a few KiB even with many domains and
 * listeners; a buffer this size that overflows means a config far beyond
 * anything real, and the request gets 500. */
#define AUTOCONFIG_MAX_DOCUMENT (64 * 1024)
/* Servers one autoconfig or Autodiscover answer advertises. */
#define AUTOCONFIG_MAX_SERVERS 16

/* postctl check (src/cli/postctl_check.c). */
/* Default -t: long enough for a slow server, short enough for a person. */
#define CHECK_DEFAULT_TIMEOUT 10
#define CHECK_MAX_TIMEOUT 600
/* MX hosts printed and compared. */
#define CHECK_MAX_MX 16
/* A command we send: the longest is an IMAP LOGIN with two quoted
 * strings, or an AUTH PLAIN line. */
#define CHECK_MAX_COMMAND (2 * (2 * AUTH_MAX_PASSWORD + 16) + 64)
/* Socket read chunk. */
#define CHECK_READ_CHUNK 4096

/* Aliases (src/auth/alias.c). */
/* A physical line of the file, and a logical one with its continuations. */
#define ALIAS_MAX_LINE 4096
#define ALIAS_MAX_LOGICAL_LINE (16 * 1024)
/* Targets one entry may list. */
#define ALIAS_MAX_TARGETS_PER_ENTRY 1000
/* Entries in a table. */
#define ALIAS_MAX_ENTRIES 1000000
/* Distinct final addresses one address may expand to (they travel in one
 * auth reply). */
#define ALIAS_MAX_RESULTS 64
/* Nesting of aliases in one expansion. */
#define ALIAS_MAX_DEPTH 32
/* Problems load_file reports in its error text; the rest are counted. */
#define ALIAS_MAX_REPORTED_ERRORS 20

/* SRS (src/lib/srs.c). */
/* A bounce to an SRS0 address is valid this many days. */
#define SRS_MAX_AGE_DAYS 21
/* A key file holds up to this many lines: the first signs, all verify
 * (a new secret goes first; the old one stays for SRS_MAX_AGE_DAYS). */
#define SRS_MAX_SECRETS 8
/* One secret, in octets. */
#define SRS_MAX_SECRET_LEN 255
/* What an SRS local part may grow to: RFC 5321 section 4.5.3.1.1. A
 * longer one could not come back through our own RCPT parser. */
#define SRS_MAX_LOCALPART 64
/* A whole SRS address (buffer size). */
#define SRS_MAX_ADDRESS 320
/* A key file is a few lines; anything larger is not one. */
#define SRS_MAX_FILE_SIZE 4096

/* postctl check server replies (postctl_check_parse.c). */
/* One line from the server: far above the 512/1000 byte limits of RFC
 * 5321 §4.5.3.1 and RFC 2449 §4, small enough to print. */
#define CHECK_MAX_LINE 8192
/* Lines of one multi-line reply (CAPA, EHLO, the IMAP responses before a
 * tagged reply): real servers send a few dozen. */
#define CHECK_MAX_REPLY_LINES 200
/* A host name (RFC 1035 §2.3.4) or a bracketed IPv6 literal. */
#define CHECK_MAX_HOST 255
/* The capability summary printed on one line. */
#define CHECK_MAX_CAPS_TEXT 1024
/* A response code such as AUTHENTICATIONFAILED or SYS/TEMP. */
#define CHECK_MAX_CODE 32
/* The escaped form of one server line (log_escape: up to 4 bytes each). */
#define CHECK_MAX_ESCAPED (4 * 200 + 1)

/* IMAP (src/proto/imap, src/storage/folder.c, mail_index.c, src/mime).
 * Each module adds its own limits below its own line. */
/* -- protocol (imap_parse.c, imap_session.c) -- */
/* One command line without its literals (RFC 9051 leaves it open; 8 KiB
 * is what Dovecot allows before authentication, 64 KiB after). */
#define IMAP_MAX_LINE_PREAUTH (8 * 1024)
#define IMAP_MAX_LINE (64 * 1024)
/* A whole command: its lines and literals, except an APPEND message. */
#define IMAP_MAX_COMMAND (1024 * 1024)
/* A non-synchronising literal (LITERAL-, RFC 7888 section 5). */
#define IMAP_MAX_NONSYNC_LITERAL 4096
/* Parenthesised lists inside one another. */
#define IMAP_MAX_LIST_DEPTH 16
/* Arguments of one command, all lists counted. */
#define IMAP_MAX_ARGS 4096
/* A tag. */
#define IMAP_MAX_TAG 64
/* Ranges in one sequence set. */
#define IMAP_MAX_SEQ_RANGES 10000
/* Keys in one SEARCH program. */
#define IMAP_MAX_SEARCH_KEYS 1000
/* -- SORT and THREAD (imap_sort.c, imap_sortkeys.c, imap_thread.c) -- */
/* Keys of one SORT: RFC 5256 has nine kinds, each with REVERSE. */
#define IMAP_MAX_SORT_KEYS 32
/* msg-ids of one References field that THREAD links (the last ones, the
 * nearest ancestors). */
#define IMAP_MAX_THREAD_REFS 100
/* Depth of a THREAD=REFERENCES tree: a link that would make a thread
 * deeper is not made (as a loop is not), so that the loop checks and the
 * walks stay bounded whatever the References fields say. */
#define IMAP_MAX_THREAD_DEPTH 1000
/* Live searches (SEARCH RETURN (UPDATE), RFC 5267) of one session: each
 * keeps its result and is re-evaluated as messages change. */
#define IMAP_MAX_SEARCH_UPDATES 16
/* -- session (imap_session.c, imap_commands*.c) -- */
/* RFC 9051 section 5.4: the autologout timer of an authenticated session
 * is at least 30 minutes; IDLE clients re-issue it every 29 minutes. */
#define IMAP_TIMEOUT_AUTHENTICATED (31 * 60)
/* Messages of one FETCH/STORE/COPY and UIDs kept for SEARCHRES ($). */
#define IMAP_MAX_SET_MESSAGES 10000000u
/* ID (RFC 2971): at most 30 field/value pairs, values at most 1024. */
#define IMAP_MAX_ID_PAIRS 30
/* An ID command before login: clients send long values (imaptest sends
 * 32 KiB, Dovecot takes it), so ID alone may be this long before login;
 * every other command there stays within IMAP_MAX_LINE_PREAUTH. */
#define IMAP_MAX_ID_COMMAND (64 * 1024)
/* Keys inside one another (NOT, OR, groups): the parser and the evaluator
 * recurse this deep at most. Long "OR OR OR ..." chains from clients'
 * filters stay well below. */
#define IMAP_MAX_SEARCH_DEPTH 128
/* -- APPEND (imap_append.c) -- */
/* Messages in one MULTIAPPEND (RFC 3502): each holds an open file in tmp/
 * until the command ends. */
#define IMAP_MAX_APPEND_MESSAGES 100
/* TEXT and URL parts of one CATENATE message (RFC 4469). */
#define IMAP_MAX_CATENATE_PARTS 100
/* An IMAP URL of a CATENATE part (RFC 5092). */
#define IMAP_MAX_URL 1024
/* -- storage (folder.c, mail_index.c, mail_notify.c) -- */
/* A folder name in UTF-8 octets, and its depth in components. */
#define FOLDER_MAX_NAME 255
#define FOLDER_MAX_DEPTH 16
/* Folders per user. */
#define FOLDER_MAX_PER_USER 1000
/* Keywords per folder (a 64-bit mask per message). */
#define MAIL_MAX_KEYWORDS 64
/* A keyword name. */
#define MAIL_MAX_KEYWORD_LEN 128
/* Messages in one folder's IMAP index. */
#define MAIL_MAX_MESSAGES 1000000
/* One record of the index log (postd-imap.log): a Maildir name, numbers. */
#define MAIL_INDEX_MAX_LINE (MAILDIR_MAX_NAME + 256)
/* The parsed-structure cache (postd-imap.cache): one entry, the file. */
#define MAIL_CACHE_MAX_BLOB (1024 * 1024)
#define MAIL_CACHE_MAX_FILE (64 * 1024 * 1024)
/* -- MIME (src/mime) -- */
/* Nesting of multiparts and message/rfc822 parts. */
#define MIME_MAX_DEPTH 32
/* Parts in one message. */
#define MIME_MAX_PARTS 2000
/* Header fields in one header block, and one header block's octets. */
#define MIME_MAX_HEADERS 2000
#define MIME_MAX_HEADER_BYTES (1024 * 1024)
/* Parameters of one Content-Type or Content-Disposition, and addresses
 * of one ENVELOPE address list (a real list has a few hundred at most;
 * each costs a small allocation). */
#define MIME_MAX_PARAMS 256
#define MIME_MAX_ADDRESSES 10000
/* A multipart boundary is at most 70 octets (RFC 2046 section 5.1.1);
 * longer ones are cut here, as Dovecot does. */
#define MIME_MAX_BOUNDARY 200

#endif
