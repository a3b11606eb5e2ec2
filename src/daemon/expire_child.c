/* Placeholder retention pass. Replaced by the real one. */
#include "daemon/expire_child.h"

#include <unistd.h>

void expire_child_main(const struct config *cfg, int mail_root_fd,
		       bool foreground)
{
	(void)cfg;
	(void)mail_root_fd;
	(void)foreground;
	_exit(0);
}
