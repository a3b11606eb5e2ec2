/*
 * postctl expire: remove (or with --dry-run list) the messages that the
 * retention policy says are due. Placeholder until the retention work
 * lands.
 */
#include <stdio.h>
#include <sysexits.h>

#include "cli/postctl.h"

int postctl_expire_main(const struct config *cfg, int argc, char **argv)
{
	(void)cfg;
	(void)argc;
	(void)argv;
	fprintf(stderr, "postctl: expire is not implemented yet\n");
	return EX_UNAVAILABLE;
}
