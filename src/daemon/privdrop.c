#include "daemon/privdrop.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"

static void privdrop_arm_parent_death(void);

/* The parent privdrop_follow_parent() was told of; 0: none. */
static pid_t privdrop_parent;

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
	/* A change of uid or gid clears the parent-death signal (prctl(2)):
	 * without this a kill -9 of the parent leaves its children serving
	 * on its ports, and a new postd cannot bind them. */
	privdrop_arm_parent_death();
}

void privdrop_follow_parent(pid_t parent)
{
	privdrop_parent = parent;
	privdrop_arm_parent_death();
}

/* Armed, then checked: a parent that died before the prctl() sent no
 * signal, and its child now has another parent. */
static void privdrop_arm_parent_death(void)
{
	if (privdrop_parent == 0)
		return;
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0)
		fatal("prctl(PR_SET_PDEATHSIG): %s", strerror(errno));
	if (getppid() != privdrop_parent)
		_exit(0);
}
