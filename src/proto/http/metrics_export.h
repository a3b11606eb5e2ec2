/*
 * /metrics: the shared counters of lib/metrics.h in the Prometheus text
 * exposition format 0.0.4, plus per-protocol session gauges and the
 * length of the outbound queue.
 */
#ifndef POSTD_METRICS_EXPORT_H
#define POSTD_METRICS_EXPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "config/config.h"
#include "lib/buf.h"
#include "lib/postd_limits.h"

struct metrics_export {
	int queue_fd; /* DATA_DIR/queue, borrowed; -1: no queue */
	time_t queue_counted_at;
	uint64_t queue_count;
	bool queue_ok;
};

/*
 * Counts the queue's entries: names not starting with '.' in env/ (waiting
 * for delivery) and hold/ (held by postctl), at most
 * METRICS_EXPORT_MAX_QUEUE_SCAN. Returns 0, or -1 when env/ (or an
 * existing hold/) cannot be read.
 */
int metrics_export_queue_count(int queue_fd, uint64_t *count_r);

/*
 * Appends the whole exposition: every counter, postd_sessions{protocol=}
 * for each protocol cfg listens on, postd_queue_messages and postd_up.
 * now decides whether the cached queue count is fresh. Returns 0, or -1
 * when out is full.
 */
int metrics_export_write(struct metrics_export *me, const struct config *cfg,
			 time_t now, struct buf *out);

#endif
