/*
 * A POP3 user's session policy (pop3_policy.c): what a verified login
 * leads to, and the retention values CAPA shows and QUIT applies. The
 * command handlers in pop3_commands.c call these.
 */
#ifndef POSTD_POP3_POLICY_H
#define POSTD_POP3_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#include "proto/pop3/pop3_session.h"

/*
 * The auth process accepted user (canonical; extra is the users file's
 * extra fields it sent, or ""): loads the user's retention and
 * LOGIN-DELAY, refuses a login sooner than LOGIN-DELAY allows, opens and
 * locks the mailbox, records the login time, enters TRANSACTION and
 * replies. A refusal replies and logs once, and leaves the session in
 * AUTHORIZATION.
 */
void pop3_policy_login(struct pop3_session *s, const char *user,
		       const char *extra);

/*
 * CAPA's EXPIRE and LOGIN-DELAY lines (RFC 2449 sections 6.5 and 6.7).
 * Before login (auth true) the smallest EXPIRE and the largest
 * LOGIN-DELAY that any domain or user has, with USER when they differ;
 * after login the user's own values.
 */
void pop3_policy_capa(struct pop3_session *s, bool auth);

/*
 * EXPIRE 0 (RFC 2449 section 6.7), on entering UPDATE: marks every
 * message retrieved with RETR, in this session or before, as deleted and
 * logs each. Returns how many it marked.
 */
size_t pop3_policy_expire_at_quit(struct pop3_session *s);

#endif
