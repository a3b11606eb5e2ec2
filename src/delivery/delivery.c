/* Placeholder runner: waits to be stopped. Replaced by the real one. */
#include "delivery/delivery.h"

#include <signal.h>
#include <stdlib.h>

#include "lib/xmalloc.h"

struct delivery {
	int unused;
};

struct delivery *delivery_prepare(const struct config *cfg, int queue_fd,
				  int mail_root_fd, char *error,
				  size_t error_size)
{
	(void)cfg;
	(void)queue_fd;
	(void)mail_root_fd;
	(void)error;
	(void)error_size;
	return xcalloc(1, sizeof(struct delivery));
}

int delivery_run(struct delivery *d)
{
	sigset_t set;
	int sig;

	free(d);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGQUIT);
	sigprocmask(SIG_BLOCK, &set, NULL);
	sigwait(&set, &sig);
	return 0;
}
