/*
 * postd.conf parsing on arbitrary files. The input goes to a memfd that
 * config_load() opens by its /proc/self/fd name; errors go to /dev/null.
 * A loaded configuration must be complete enough for the checks the
 * daemon runs next (config_validate) and must free cleanly.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "fuzz_util.h"
#include "lib/log.h"
#include "lib/postd_limits.h"

static int fuzz_fd = -1;
static char fuzz_path[64];
static FILE *fuzz_devnull;

static void fuzz_check_listen(const struct config *cfg, size_t i);

/* A listener is complete and no two listeners share an address, which
 * would make the daemon fail to bind at start-up. */
static void fuzz_check_listen(const struct config *cfg, size_t i)
{
	const struct listen_addr *l = &cfg->listen[i];

	FUZZ_CHECK(l->proto < LISTEN_PROTO_COUNT);
	FUZZ_CHECK(l->host != NULL && l->port != NULL);
	for (size_t j = 0; j < i; j++)
		FUZZ_CHECK(strcmp(cfg->listen[j].host, l->host) != 0 ||
			   strcmp(cfg->listen[j].port, l->port) != 0);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_fd = fuzz_memfd_open("fuzz_config", fuzz_path, sizeof(fuzz_path));
	fuzz_devnull = fopen("/dev/null", "w");
	if (fuzz_devnull == NULL)
		abort();
	log_set_level(LOG_LEVEL_ERROR);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config *cfg = NULL;

	fuzz_memfd_set(fuzz_fd, data, size);
	if (config_load(fuzz_path, fuzz_devnull, &cfg) == 0) {
		FUZZ_CHECK(cfg != NULL);
		/* "domains is required": a loaded config has one. */
		FUZZ_CHECK(cfg->domains != NULL && cfg->domain_count > 0);
		for (size_t i = 0; i < cfg->domain_count; i++) {
			FUZZ_CHECK(cfg->domains[i] != NULL);
			FUZZ_CHECK(
			    config_is_local_domain(cfg, cfg->domains[i]));
		}
		FUZZ_CHECK(cfg->domains[cfg->domain_count] == NULL);
		FUZZ_CHECK(cfg->listen_count <=
			   CONFIG_MAX_LISTEN_ADDRESSES * LISTEN_PROTO_COUNT);
		for (size_t i = 0; i < cfg->listen_count; i++)
			fuzz_check_listen(cfg, i);
		(void)config_validate(cfg, fuzz_devnull);
		config_free(&cfg);
		FUZZ_CHECK(cfg == NULL);
	} else {
		FUZZ_CHECK(cfg == NULL);
	}
	return 0;
}
