/*
 * Every cap postd enforces, in one place, with the reason for its value
 * (STYLE habit 3, INV-S3). Caps are checked while reading, never after
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
/* A POP3 message number: messages in one snapshot. */
#define POP3_MAX_MESSAGES 10000000u
/* Output queued per connection before a long response (RETR, LIST) waits
 * for the peer to read: large enough for throughput, small enough that
 * 5,000 slow readers cost little memory. */
#define CONN_OUTPUT_HIGH_WATER (64 * 1024)
#define CONN_OUTPUT_LOW_WATER (16 * 1024)
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

#endif
