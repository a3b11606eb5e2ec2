#include "daemon/privdrop.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"

bool privdrop_is_root(void)
{
	return geteuid() == 0;
}

int privdrop_lookup(const char *user, uid_t *uid_r, gid_t *gid_r, char *error,
		    size_t error_size)
{
	struct passwd *pw;

	errno = 0;
	pw = getpwnam(user);
	if (pw == NULL) {
		snprintf(error, error_size,
			 "user '%s' does not exist (create it with: useradd "
			 "--system --no-create-home %s)",
			 user, user);
		return -1;
	}
	if (pw->pw_uid == 0) {
		snprintf(error, error_size,
			 "user '%s' is root: postd's workers must run "
			 "unprivileged",
			 user);
		return -1;
	}
	*uid_r = pw->pw_uid;
	*gid_r = pw->pw_gid;
	return 0;
}

void privdrop_to(const char *user, const char *chroot_dir)
{
	char error[256];
	uid_t uid;
	gid_t gid;

	if (!privdrop_is_root())
		return;
	if (privdrop_lookup(user, &uid, &gid, error, sizeof(error)) < 0)
		fatal("cannot drop privileges: %s", error);
	if (chroot_dir != NULL) {
		/* Name lookups and time zones are read before the door
		 * closes. */
		tzset();
		if (chroot(chroot_dir) < 0 || chdir("/") < 0)
			fatal("chroot %s: %s", chroot_dir, strerror(errno));
	}
	privdrop_ids(uid, gid);
}

void privdrop_ids(uid_t uid, gid_t gid)
{
	if (setgroups(1, &gid) < 0)
		fatal("setgroups: %s", strerror(errno));
	if (setresgid(gid, gid, gid) < 0)
		fatal("setresgid %u: %s", (unsigned)gid, strerror(errno));
	if (setresuid(uid, uid, uid) < 0)
		fatal("setresuid %u: %s", (unsigned)uid, strerror(errno));
	if (setuid(0) == 0 || geteuid() == 0)
		fatal("privileges could be regained after dropping them");
}
