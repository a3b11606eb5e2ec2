/*
 * Counters for /metrics (Prometheus text format), shared by every process
 * of one postd: the parent maps them (MAP_SHARED | MAP_ANONYMOUS) before
 * it forks, children add to them with relaxed atomics. In a process where
 * metrics_init() never ran (postctl, unit tests) every call is a no-op.
 */
#ifndef POSTD_METRICS_H
#define POSTD_METRICS_H

#include <stdint.h>

enum metric_counter {
	METRIC_LOGINS_OK,	   /* POP3/IMAP/SMTP AUTH logins accepted */
	METRIC_LOGINS_FAILED,	   /* refused: wrong password, unknown user */
	METRIC_MESSAGES_RECEIVED,  /* SMTP transactions answered 250 */
	METRIC_MESSAGES_DELIVERED, /* recipients stored into a local mailbox */
	METRIC_MESSAGES_RELAYED,   /* recipients accepted by a remote server */
	METRIC_MESSAGES_BOUNCED,   /* recipients given up on (DSN sent) */
	METRIC_MESSAGES_RETRIEVED, /* POP3 RETR of a whole message */
	METRIC_MESSAGES_EXPIRED,   /* removed by retention */
	METRIC_BYTES_RECEIVED,	   /* message octets received over SMTP */
	METRIC_BYTES_RETRIEVED,	   /* message octets sent by RETR/TOP */
	METRIC_COUNTER_COUNT
};

/* Parent, before any fork. Fatal on failure. */
void metrics_init(void);
void metrics_add(enum metric_counter counter, uint64_t n);
uint64_t metrics_get(enum metric_counter counter);
/* Open sessions per protocol (a gauge): every accepted connection opens
 * one and closes it when it ends. proto is an enum listen_proto (lib/
 * does not include config/), below METRICS_MAX_PROTOS. */
#define METRICS_MAX_PROTOS 16
void metrics_session_open(unsigned proto);
void metrics_session_close(unsigned proto);
uint64_t metrics_sessions(unsigned proto);
/* "postd_logins_ok_total" ... for the exporter; NULL for an unknown one. */
const char *metrics_counter_name(enum metric_counter counter);

#endif
