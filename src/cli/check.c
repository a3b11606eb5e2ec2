/*
 * postctl check URL: walk the path a mail client takes to a server and
 * say in plain words where it breaks. Placeholder until it lands.
 */
#include <stdio.h>
#include <sysexits.h>

#include "cli/postctl.h"

int postctl_check_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "postctl: check is not implemented yet\n");
	return EX_UNAVAILABLE;
}
