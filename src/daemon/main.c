/*
 * postd: the mail server daemon. See postd(8).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/addressing.h"
#include "config/config.h"
#include "daemon/master.h"
#include "lib/log.h"

static void usage(FILE *out)
{
	fprintf(
	    out,
	    "usage: postd [-c FILE] [-f] [-t] [-d]\n"
	    "  -c FILE  configuration file (default: the embedded default,\n"
	    "           serving ./postd-data on 127.0.0.1: POP3 2110/2995,\n"
	    "           IMAP 2143/2993)\n"
	    "  -f       stay in the foreground and log to stderr\n"
	    "  -t       check the configuration and exit\n"
	    "  -d       debug logging\n"
	    "  -h       this help\n");
}

int main(int argc, char **argv)
{
	struct master_options opts = {0};
	struct config *cfg = NULL;
	static char cwd[PATH_MAX];
	bool check_only = false;
	int opt;

	while ((opt = getopt(argc, argv, "c:fhtd")) != -1) {
		switch (opt) {
		case 'c':
			opts.config_path = optarg;
			break;
		case 'f':
			opts.foreground = true;
			break;
		case 't':
			check_only = true;
			break;
		case 'd':
			opts.debug = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 64;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 64;
	}
	log_init("postd", 1);
	if (getcwd(cwd, sizeof(cwd)) == NULL) {
		fprintf(stderr, "postd: getcwd: %s\n", strerror(errno));
		return 1;
	}
	opts.base_dir = cwd;
	if (opts.config_path != NULL) {
		if (config_load(opts.config_path, stderr, &cfg) < 0)
			return 1;
	} else {
		cfg = config_default(cwd);
	}
	if (config_validate(cfg, stderr) > 0) {
		config_free(&cfg);
		return 1;
	}
	if (check_only) {
		/* Aliases and role addresses: a loop found here is a loop
		 * no sender meets. */
		if (addressing_check(cfg, stderr) > 0) {
			config_free(&cfg);
			return 1;
		}
		printf("postd: %s: configuration OK\n",
		       opts.config_path ? opts.config_path
					: "embedded default");
		/* Which plaintext_auth wins on each listener is easy to
		 * misread in the file; say it. */
		fputs("postd: ", stdout);
		config_print_plaintext_auth(cfg, stdout);
		master_print_restart_keys(stdout);
		config_free(&cfg);
		return 0;
	}
	master_apply_log_level(cfg, &opts);
	return master_run(cfg, &opts);
}
