/*
 * Whether a password may travel on this connection: always over TLS;
 * before TLS as the listener's plaintext_auth.NAME says, else the global
 * plaintext_auth (RFC 2595 section 2.1, RFC 4954 section 4). One rule for
 * POP3, SMTP and, later, IMAP: CAPA, EHLO and the refusals all ask it.
 */
#ifndef POSTD_LOGIN_POLICY_H
#define POSTD_LOGIN_POLICY_H

#include <stdbool.h>

#include "config/config.h"
#include "net/conn.h"

bool login_plaintext_allowed(const struct conn *conn, const struct config *cfg);

#endif
