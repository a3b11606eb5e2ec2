/*
 * The SMTP command parser on arbitrary lines (fuzz every parser). Besides
 * memory errors it checks what the session relies on: a parsed path holds
 * no CR, LF or NUL (INV-S2) and fits its caps, argument pointers lie in
 * the line, every error carries a reply with a code, the UTF-8 flag only
 * widens what is accepted, and a canonical mailbox parses back to itself.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "lib/postd_limits.h"
#include "proto/smtp/smtp_parse.h"

static void fuzz_check_arg(const char *line, size_t len, const char *s,
			   size_t s_len);
static void fuzz_check_path(const struct smtp_path *p);
static void fuzz_check_reply(const char *error);
static void fuzz_check_canonical(const struct smtp_command *cmd);

/* An argument points into the line and is NUL-terminated at its length. */
static void fuzz_check_arg(const char *line, size_t len, const char *s,
			   size_t s_len)
{
	if (s == NULL) {
		FUZZ_CHECK(s_len == 0);
		return;
	}
	FUZZ_CHECK(s >= line && s + s_len <= line + len);
	FUZZ_CHECK(strlen(s) == s_len);
	FUZZ_CHECK(memchr(s, '\r', s_len) == NULL);
	FUZZ_CHECK(memchr(s, '\n', s_len) == NULL);
}

/* INV-S2 and the RFC 5321 section 4.5.3.1 caps. */
static void fuzz_check_path(const struct smtp_path *p)
{
	FUZZ_CHECK(p->local_len <= SMTP_MAX_LOCALPART);
	FUZZ_CHECK(p->domain_len <= SMTP_MAX_DOMAIN);
	FUZZ_CHECK(strlen(p->local) == p->local_len);
	FUZZ_CHECK(strlen(p->domain) == p->domain_len);
	for (size_t i = 0; i < p->local_len; i++) {
		unsigned char c = (unsigned char)p->local[i];

		FUZZ_CHECK(c >= 0x20 && c != 0x7f);
		FUZZ_CHECK(c < 0x80 || p->utf8);
	}
	for (size_t i = 0; i < p->domain_len; i++) {
		unsigned char c = (unsigned char)p->domain[i];

		FUZZ_CHECK(c > 0x20 && c != 0x7f);
		FUZZ_CHECK(c < 0x80 || p->utf8);
	}
	if (p->utf8) {
		FUZZ_CHECK(smtp_utf8_valid(p->local, p->local_len));
		FUZZ_CHECK(smtp_utf8_valid(p->domain, p->domain_len));
	}
	if (p->null)
		FUZZ_CHECK(p->local_len == 0 && p->domain_len == 0);
	else if (p->postmaster)
		FUZZ_CHECK(p->domain_len == 0 && p->local_len == 10);
	else
		FUZZ_CHECK(p->domain_len > 0);
	if (p->literal)
		FUZZ_CHECK(p->domain[0] == '[' &&
			   p->domain[p->domain_len - 1] == ']');
}

/* "NNN D.D.D text" (RFC 3463 section 2). */
static void fuzz_check_reply(const char *error)
{
	FUZZ_CHECK(error != NULL);
	FUZZ_CHECK(strlen(error) > 10);
	FUZZ_CHECK(error[0] == '5' && error[3] == ' ' && error[4] == '5' &&
		   error[5] == '.');
	FUZZ_CHECK(strpbrk(error, "\r\n") == NULL);
}

/* The canonical form parses back to the same canonical form. */
static void fuzz_check_canonical(const struct smtp_command *cmd)
{
	char canon[SMTP_MAILBOX_BUF_SIZE], canon2[SMTP_MAILBOX_BUF_SIZE];
	char line[SMTP_MAILBOX_BUF_SIZE + 32];
	struct smtp_command again;
	const char *error;
	int n, m, len;

	n = smtp_path_canonical(&cmd->path, false, canon, sizeof(canon));
	FUZZ_CHECK(n >= 0 && (size_t)n == strlen(canon));
	m = smtp_path_canonical(&cmd->path, true, canon2, sizeof(canon2));
	FUZZ_CHECK(m == n);
	if (cmd->path.null || cmd->path.postmaster)
		return;
	/* Never longer than the path as sent, so "<canon>" fits a path. */
	FUZZ_CHECK((size_t)n + 2 <= SMTP_MAX_PATH);
	len = snprintf(line, sizeof(line), "RCPT TO:<%s>", canon);
	FUZZ_CHECK(len > 0 && (size_t)len < sizeof(line));
	FUZZ_CHECK(smtp_parse_command(line, (size_t)len, SMTP_PARSE_F_UTF8,
				      &again, &error) == SMTP_PARSE_OK);
	FUZZ_CHECK(smtp_path_canonical(&again.path, false, canon2,
				       sizeof(canon2)) == n);
	FUZZ_CHECK(strcmp(canon, canon2) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Exactly size + 1 bytes, so ASan sees any read past the end. */
	char *line = malloc(size + 1);
	char *line2 = malloc(size + 1);
	struct smtp_command cmd, cmd2;
	const char *error = NULL, *error2 = NULL;
	enum smtp_parse_error r, r2;

	if (line == NULL || line2 == NULL)
		abort();
	memcpy(line, data, size);
	memcpy(line2, data, size);

	r = smtp_parse_command(line, size, 0, &cmd, &error);
	r2 = smtp_parse_command(line2, size, SMTP_PARSE_F_UTF8, &cmd2, &error2);
	FUZZ_CHECK(cmd.cmd <= SMTP_CMD_COUNT);
	FUZZ_CHECK(cmd.cmd == cmd2.cmd);
	/* An HTTP request line is never an SMTP command (the session closes
	 * on it before parsing). */
	if (smtp_is_http_request((const char *)data, size))
		FUZZ_CHECK(r != SMTP_PARSE_OK && cmd.cmd == SMTP_CMD_COUNT);
	if (r == SMTP_PARSE_OK) {
		FUZZ_CHECK(error == NULL);
		FUZZ_CHECK(cmd.cmd < SMTP_CMD_COUNT);
		/* Allowing UTF-8 never refuses what ASCII accepted. */
		FUZZ_CHECK(r2 == SMTP_PARSE_OK);
		FUZZ_CHECK(cmd.path.local_len == cmd2.path.local_len);
		FUZZ_CHECK(memcmp(cmd.path.local, cmd2.path.local,
				  cmd.path.local_len) == 0);
		fuzz_check_arg(line, size, cmd.arg, cmd.arg_len);
		fuzz_check_arg(line, size, cmd.arg2, cmd.arg2_len);
		if (cmd.cmd == SMTP_CMD_MAIL || cmd.cmd == SMTP_CMD_RCPT) {
			fuzz_check_path(&cmd.path);
			FUZZ_CHECK(!cmd.path.utf8 || cmd.params.smtputf8);
			FUZZ_CHECK(!cmd.path.null || cmd.cmd == SMTP_CMD_MAIL);
			FUZZ_CHECK(!cmd.path.postmaster ||
				   cmd.cmd == SMTP_CMD_RCPT);
			fuzz_check_canonical(&cmd);
		} else {
			FUZZ_CHECK(cmd.path.local_len == 0 &&
				   cmd.path.domain_len == 0);
		}
		/* The verb is the line's first word. */
		FUZZ_CHECK(strlen(smtp_cmd_name(cmd.cmd)) <= size);
	} else {
		fuzz_check_reply(error);
		FUZZ_CHECK(cmd.path.local_len == 0 && cmd.arg == NULL);
		FUZZ_CHECK((r == SMTP_PARSE_NUL) ==
			   (memchr(data, '\0', size) != NULL));
		if (r != SMTP_PARSE_NON_ASCII)
			FUZZ_CHECK(r2 == r);
	}
	if (r2 == SMTP_PARSE_OK) {
		fuzz_check_arg(line2, size, cmd2.arg, cmd2.arg_len);
		fuzz_check_arg(line2, size, cmd2.arg2, cmd2.arg2_len);
		if (cmd2.cmd == SMTP_CMD_MAIL || cmd2.cmd == SMTP_CMD_RCPT) {
			fuzz_check_path(&cmd2.path);
			fuzz_check_canonical(&cmd2);
		}
	} else {
		fuzz_check_reply(error2);
	}
	free(line);
	free(line2);
	return 0;
}
