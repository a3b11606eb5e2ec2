/*
 * Shared counters: one anonymous shared mapping made by the parent before
 * it forks, so every worker, the auth process, the queue runner and the
 * expire pass add to the same numbers. Relaxed atomics: a scrape may see
 * one counter a moment ahead of another, never a torn value.
 */
#include "lib/metrics.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "lib/log.h"

struct metrics_shared {
	uint64_t counters[METRIC_COUNTER_COUNT];
	uint64_t sessions[METRICS_MAX_PROTOS];
};

static struct metrics_shared *metrics;

static const char *const metrics_names[METRIC_COUNTER_COUNT] = {
    [METRIC_LOGINS_OK] = "postd_logins_ok_total",
    [METRIC_LOGINS_FAILED] = "postd_logins_failed_total",
    [METRIC_MESSAGES_RECEIVED] = "postd_messages_received_total",
    [METRIC_MESSAGES_DELIVERED] = "postd_messages_delivered_total",
    [METRIC_MESSAGES_RELAYED] = "postd_messages_relayed_total",
    [METRIC_MESSAGES_BOUNCED] = "postd_messages_bounced_total",
    [METRIC_MESSAGES_RETRIEVED] = "postd_messages_retrieved_total",
    [METRIC_MESSAGES_EXPIRED] = "postd_messages_expired_total",
    [METRIC_BYTES_RECEIVED] = "postd_bytes_received_total",
    [METRIC_BYTES_RETRIEVED] = "postd_bytes_retrieved_total",
};

void metrics_init(void)
{
	void *p;

	if (metrics != NULL)
		return;
	p = mmap(NULL, sizeof(*metrics), PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		fatal("cannot map the metrics: %s", strerror(errno));
	metrics = p;
}

void metrics_add(enum metric_counter counter, uint64_t n)
{
	if (metrics != NULL && (unsigned)counter < METRIC_COUNTER_COUNT)
		__atomic_fetch_add(&metrics->counters[counter], n,
				   __ATOMIC_RELAXED);
}

uint64_t metrics_get(enum metric_counter counter)
{
	if (metrics == NULL || (unsigned)counter >= METRIC_COUNTER_COUNT)
		return 0;
	return __atomic_load_n(&metrics->counters[counter], __ATOMIC_RELAXED);
}

void metrics_session_open(unsigned proto)
{
	if (metrics != NULL && (unsigned)proto < METRICS_MAX_PROTOS)
		__atomic_fetch_add(&metrics->sessions[proto], 1,
				   __ATOMIC_RELAXED);
}

void metrics_session_close(unsigned proto)
{
	if (metrics != NULL && (unsigned)proto < METRICS_MAX_PROTOS)
		__atomic_fetch_sub(&metrics->sessions[proto], 1,
				   __ATOMIC_RELAXED);
}

uint64_t metrics_sessions(unsigned proto)
{
	if (metrics == NULL || (unsigned)proto >= METRICS_MAX_PROTOS)
		return 0;
	return __atomic_load_n(&metrics->sessions[proto], __ATOMIC_RELAXED);
}

const char *metrics_counter_name(enum metric_counter counter)
{
	if ((unsigned)counter >= METRIC_COUNTER_COUNT)
		return NULL;
	return metrics_names[counter];
}
