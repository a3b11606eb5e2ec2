/*
 * postctl: manage the users file and the aliases file, deliver a message from
 * stdin, and inspect the outbound queue. See postctl(8). Exit codes follow
 * sysexits(3) so that an MTA calling "postctl deliver" knows a temporary
 * failure (75) from a permanent one.
 *
 * Passwords are never taken from argv (other users see it in ps); they
 * are read from the terminal with echo off or one line from stdin, kept
 * in one stack buffer, and wiped after use.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "auth/passwd_file.h"
#include "auth/password.h"
#include "config/config.h"
#include "lib/log.h"
#include "lib/postd_limits.h"
#include "lib/safe_open.h"
#include "lib/username.h"
#include "lib/xmalloc.h"
#include "storage/maildir.h"
#include "storage/queue.h"
#include "cli/postctl.h"

/* Read size for deliver: big enough for throughput, small on the stack. */
#define POSTCTL_DELIVER_CHUNK 65536

static void postctl_usage(FILE *out);
static struct config *postctl_load_config(const char *path);
static int postctl_user_exists(const char *users_file, const char *name,
			       bool *exists_r);
static int postctl_read_line_fd(int fd, struct postctl_password *pw);
static int postctl_read_password_tty(struct postctl_password *pw);
static void postctl_tty_restore_signal(int sig);
static int postctl_fix_owner(const struct config *cfg);
static int postctl_ensure_data_dir(const struct config *cfg, bool mail);
static int postctl_mkdir_owned(const char *path, const struct passwd *pw);
static int postctl_ensure_users_dir(const struct config *cfg);
/* The users file is often DATA_DIR/users (always with the embedded
 * default); then a missing DATA_DIR is created as postd would. */
static int postctl_ensure_users_dir(const struct config *cfg)
{
	const char *slash = strrchr(cfg->users_file, '/');
	size_t dlen = strlen(cfg->data_dir);
	struct stat st;

	if (slash == NULL || (size_t)(slash - cfg->users_file) != dlen ||
	    strncmp(cfg->users_file, cfg->data_dir, dlen) != 0)
		return 0;
	if (stat(cfg->data_dir, &st) == 0 || errno != ENOENT)
		return 0;
	return postctl_ensure_data_dir(cfg, false);
}

static int postctl_set_password(const struct config *cfg, const char *name,
				bool create, bool replace);
static int postctl_user_add(const struct config *cfg, const char *arg);
static int postctl_user_passwd(const struct config *cfg, const char *arg);
static int postctl_user_del(const struct config *cfg, const char *arg);
static int postctl_user_list(const struct config *cfg);
static int postctl_deliver(const struct config *cfg, const char *arg);

/* The terminal as it was before echo was turned off, for the signal
 * handler that must put it back. */
static struct termios postctl_saved_tty;
static volatile sig_atomic_t postctl_tty_changed;

static void postctl_usage(FILE *out)
{
	fprintf(out, "usage: postctl [-c FILE] user add NAME\n"
		     "       postctl [-c FILE] user passwd NAME\n"
		     "       postctl [-c FILE] user del NAME\n"
		     "       postctl [-c FILE] user list\n"
		     "       postctl [-c FILE] alias add ADDRESS TARGET...\n"
		     "       postctl [-c FILE] alias del ADDRESS\n"
		     "       postctl [-c FILE] alias list\n"
		     "       postctl [-c FILE] migrate [--users FILE] "
		     "[--aliases FILE]\n"
		     "       postctl [-c FILE] deliver ADDRESS < MESSAGE\n"
		     "       postctl [-c FILE] queue list\n"
		     "       postctl [-c FILE] queue show ID\n"
		     "       postctl [-c FILE] queue delete ID\n"
		     "       postctl [-c FILE] queue retry [ID]\n"
		     "       postctl [-c FILE] queue hold ID\n"
		     "       postctl [-c FILE] queue release ID\n"
		     "       postctl [-c FILE] expire [--dry-run] [USER]\n"
		     "       postctl check URL   (pop3s://user@host, ...)\n"
		     "Without -c the embedded default (./postd-data) is used.\n"
		     "Passwords are read from the terminal, or one line from "
		     "stdin.\n");
}

static struct config *postctl_load_config(const char *path)
{
	struct config *cfg;
	char cwd[4096];

	if (path != NULL) {
		if (config_load(path, stderr, &cfg) < 0)
			return NULL;
	} else {
		if (getcwd(cwd, sizeof(cwd)) == NULL) {
			fprintf(stderr,
				"postctl: cannot get the working directory: "
				"%s\n",
				strerror(errno));
			return NULL;
		}
		cfg = config_default(cwd);
	}
	if (config_validate(cfg, stderr) > 0) {
		config_free(&cfg);
		return NULL;
	}
	return cfg;
}

/* INV-S2: a name becomes a path only after username_normalize(). */
int postctl_normalize(const struct config *cfg, const char *in, char *out,
		      size_t outsize)
{
	char escaped[4 * AUTH_MAX_USER + 1];

	if (username_normalize(in, strlen(in), cfg->auth_default_domain, out,
			       outsize) < 0) {
		log_escape(escaped, sizeof(escaped), in, strlen(in));
		fprintf(
		    stderr,
		    "postctl: invalid user name '%s': expected local@domain "
		    "(a-z 0-9 . _ - + =)%s\n",
		    escaped,
		    cfg->auth_default_domain == NULL && strchr(in, '@') == NULL
			? "; auth_default_domain is not set, so the "
			  "domain is required"
			: "");
		return -1;
	}
	return 0;
}

/* 0 and *exists_r, or -1 (message printed) if the file cannot be read.
 * A missing file has no users. */
static int postctl_user_exists(const char *users_file, const char *name,
			       bool *exists_r)
{
	struct passwd_db *db = NULL;
	const char *error;
	struct stat st;

	*exists_r = false;
	if (stat(users_file, &st) < 0 && errno == ENOENT)
		return 0;
	if (passwd_db_load(users_file, &db, &error) < 0) {
		fprintf(stderr, "postctl: cannot read users file %s: %s\n",
			users_file, error);
		return -1;
	}
	*exists_r = passwd_db_lookup(db, name) != NULL;
	passwd_db_free(&db);
	return 0;
}

/*
 * One line from fd, byte by byte so that no copy of the password stays
 * in a stdio buffer we cannot wipe. The LF (and a CR before it) is
 * dropped. Returns 0, or -1 with a message printed.
 */
static int postctl_read_line_fd(int fd, struct postctl_password *pw)
{
	bool too_long = false;
	ssize_t n;
	char c;

	pw->len = 0;
	for (;;) {
		n = read(fd, &c, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fprintf(stderr, "postctl: cannot read password: %s\n",
				strerror(errno));
			return -1;
		}
		if (n == 0 || c == '\n')
			break;
		if (pw->len >= AUTH_MAX_PASSWORD + 1) {
			/* Keep reading to the end of the line only to refuse
			 * it; nothing more is stored. */
			too_long = true;
			continue;
		}
		pw->text[pw->len++] = c;
	}
	if (pw->len > 0 && pw->text[pw->len - 1] == '\r')
		pw->len--;
	pw->text[pw->len] = '\0';
	if (too_long || pw->len > AUTH_MAX_PASSWORD) {
		fprintf(stderr, "postctl: password longer than %d bytes\n",
			AUTH_MAX_PASSWORD);
		return -1;
	}
	if (memchr(pw->text, '\0', pw->len) != NULL) {
		fprintf(stderr, "postctl: password contains a NUL byte\n");
		return -1;
	}
	if (pw->len == 0) {
		fprintf(stderr, "postctl: empty password refused\n");
		return -1;
	}
	return 0;
}

static void postctl_tty_restore_signal(int sig)
{
	if (postctl_tty_changed)
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &postctl_saved_tty);
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Prompts twice on the terminal with echo off. */
static int postctl_read_password_tty(struct postctl_password *pw)
{
	static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP};
	struct postctl_password again;
	struct sigaction sa, old[5];
	struct termios noecho;
	int rc = -1;

	if (tcgetattr(STDIN_FILENO, &postctl_saved_tty) < 0) {
		fprintf(stderr, "postctl: cannot read terminal settings: %s\n",
			strerror(errno));
		return -1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = postctl_tty_restore_signal;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < 5; i++)
		sigaction(sigs[i], &sa, &old[i]);
	noecho = postctl_saved_tty;
	noecho.c_lflag &= (tcflag_t)~ECHO;
	noecho.c_lflag |= ECHONL;
	if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &noecho) < 0) {
		fprintf(stderr, "postctl: cannot turn off echo: %s\n",
			strerror(errno));
		goto out;
	}
	postctl_tty_changed = 1;
	fputs("Password: ", stderr);
	fflush(stderr);
	if (postctl_read_line_fd(STDIN_FILENO, pw) < 0)
		goto out;
	fputs("Password again: ", stderr);
	fflush(stderr);
	if (postctl_read_line_fd(STDIN_FILENO, &again) < 0)
		goto out;
	if (again.len != pw->len ||
	    CRYPTO_memcmp(again.text, pw->text, pw->len) != 0) {
		fprintf(stderr, "postctl: the passwords do not match\n");
		goto out;
	}
	rc = 0;
out:
	OPENSSL_cleanse(&again, sizeof(again));
	if (postctl_tty_changed)
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &postctl_saved_tty);
	postctl_tty_changed = 0;
	for (size_t i = 0; i < 5; i++)
		sigaction(sigs[i], &old[i], NULL);
	if (rc < 0)
		OPENSSL_cleanse(pw, sizeof(*pw));
	return rc;
}

int postctl_read_password(struct postctl_password *pw)
{
	int rc;

	if (isatty(STDIN_FILENO))
		return postctl_read_password_tty(pw);
	rc = postctl_read_line_fd(STDIN_FILENO, pw);
	if (rc < 0)
		OPENSSL_cleanse(pw, sizeof(*pw));
	return rc;
}

/*
 * The users file holds hashes nobody but root should see: root:root 0600.
 * The auth process reads it while still root, before it drops privileges.
 */
static int postctl_fix_owner(const struct config *cfg)
{
	/* By descriptor, on the regular file itself: a link or a FIFO put
	 * in its place is refused, never followed. */
	static const struct safe_open_rules rules = {
	    (off_t)PASSWD_MAX_USERS * PASSWD_MAX_LINE, false};
	const char *cause;
	int fd, rc = 0;

	if (geteuid() != 0)
		return 0;
	fd = safe_open_regular(AT_FDCWD, cfg->users_file, O_RDONLY, &rules,
			       NULL, &cause);
	if (fd < 0) {
		fprintf(stderr, "postctl: %s %s\n", cfg->users_file, cause);
		return -1;
	}
	if (fchown(fd, 0, 0) < 0 || fchmod(fd, 0600) < 0) {
		fprintf(stderr,
			"postctl: cannot set owner root:root mode 0600 on %s: "
			"%s\n",
			cfg->users_file, strerror(errno));
		rc = -1;
	}
	close(fd);
	return rc;
}

/*
 * Creates DATA_DIR, and DATA_DIR/mail with mail set, if missing, as postd
 * would (owned by cfg->user when run as root, mode 0700), so that postctl
 * works before postd first started. Existing directories are left alone.
 */
static int postctl_ensure_data_dir(const struct config *cfg, bool mail)
{
	struct passwd *pw = NULL;
	char path[PATH_MAX];
	int n;

	if (geteuid() == 0) {
		errno = 0;
		pw = getpwnam(cfg->user);
		if (pw == NULL) {
			fprintf(stderr, "postctl: account '%s' not found%s%s\n",
				cfg->user, errno != 0 ? ": " : "",
				errno != 0 ? strerror(errno) : "");
			return -1;
		}
	}
	n = snprintf(path, sizeof(path), "%s/mail", cfg->data_dir);
	if (n < 0 || (size_t)n >= sizeof(path)) {
		fprintf(stderr, "postctl: data_dir %s: path too long\n",
			cfg->data_dir);
		return -1;
	}
	/* DATA_DIR stays root's: only mail/ is the run user's. */
	if (postctl_mkdir_owned(cfg->data_dir, NULL) < 0)
		return -1;
	if (mail && postctl_mkdir_owned(path, pw) < 0)
		return -1;
	return 0;
}

/* 1 when made (and given to pw, if not NULL), 0 when it existed, -1 after
 * a message. */
static int postctl_mkdir_owned(const char *path, const struct passwd *pw)
{
	int fd;

	if (mkdir(path, 0700) < 0) {
		if (errno == EEXIST)
			return 0;
		fprintf(stderr, "postctl: cannot create %s: %s\n", path,
			strerror(errno));
		return -1;
	}
	/* A new folder is durable once its parent is synced (INV-D1). */
	if (safe_sync_parent(path) < 0) {
		fprintf(stderr, "postctl: cannot sync the folder of %s: %s\n",
			path, strerror(errno));
		return -1;
	}
	if (pw == NULL)
		return 1;
	/* The owner is changed by descriptor, on the folder just made, never
	 * by a path a link could redirect. */
	fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fchown(fd, pw->pw_uid, pw->pw_gid) < 0) {
		fprintf(stderr, "postctl: cannot chown %s to %s: %s\n", path,
			pw->pw_name, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return 1;
}

static int postctl_set_password(const struct config *cfg, const char *name,
				bool create, bool replace)
{
	struct postctl_password pw;
	const char *error;
	char *hash;
	int rc;

	if (postctl_read_password(&pw) < 0)
		return EX_DATAERR;
	hash = password_hash_new(pw.text, pw.len);
	OPENSSL_cleanse(&pw, sizeof(pw));
	if (hash == NULL) {
		fprintf(stderr, "postctl: cannot hash the password\n");
		return EX_SOFTWARE;
	}
	if (postctl_ensure_users_dir(cfg) < 0) {
		free(hash);
		return EX_CANTCREAT;
	}
	rc = passwd_file_set(cfg->users_file, name, hash, create, replace,
			     &error);
	OPENSSL_cleanse(hash, strlen(hash));
	free(hash);
	if (rc < 0) {
		fprintf(stderr, "postctl: cannot update %s: %s\n",
			cfg->users_file, error);
		return EX_IOERR;
	}
	if (postctl_fix_owner(cfg) < 0)
		return EX_IOERR;
	return EX_OK;
}

static int postctl_user_add(const struct config *cfg, const char *arg)
{
	char name[USERNAME_BUF_SIZE];
	size_t local_len;
	bool exists;

	if (postctl_normalize(cfg, arg, name, sizeof(name)) < 0)
		return EX_USAGE;
	if (!config_is_local_domain(cfg, username_domain(name, &local_len))) {
		fprintf(stderr,
			"postctl: cannot add %s: its domain is not in "
			"domains\n",
			name);
		return EX_USAGE;
	}
	if (postctl_user_exists(cfg->users_file, name, &exists) < 0)
		return EX_IOERR;
	if (exists) {
		fprintf(stderr, "postctl: user %s already exists in %s\n", name,
			cfg->users_file);
		return 1;
	}
	return postctl_set_password(cfg, name, true, false);
}

static int postctl_user_passwd(const struct config *cfg, const char *arg)
{
	char name[USERNAME_BUF_SIZE];
	bool exists;

	if (postctl_normalize(cfg, arg, name, sizeof(name)) < 0)
		return EX_USAGE;
	if (postctl_user_exists(cfg->users_file, name, &exists) < 0)
		return EX_IOERR;
	if (!exists) {
		fprintf(stderr, "postctl: no user %s in %s\n", name,
			cfg->users_file);
		return EX_NOUSER;
	}
	return postctl_set_password(cfg, name, false, true);
}

static int postctl_user_del(const struct config *cfg, const char *arg)
{
	char name[USERNAME_BUF_SIZE];
	const char *error;
	bool exists;

	if (postctl_normalize(cfg, arg, name, sizeof(name)) < 0)
		return EX_USAGE;
	if (postctl_user_exists(cfg->users_file, name, &exists) < 0)
		return EX_IOERR;
	if (!exists) {
		fprintf(stderr, "postctl: no user %s in %s\n", name,
			cfg->users_file);
		return EX_NOUSER;
	}
	if (passwd_file_delete(cfg->users_file, name, &error) < 0) {
		fprintf(stderr, "postctl: cannot update %s: %s\n",
			cfg->users_file, error);
		return EX_IOERR;
	}
	if (postctl_fix_owner(cfg) < 0)
		return EX_IOERR;
	return EX_OK;
}

static int postctl_user_list(const struct config *cfg)
{
	struct passwd_db *db = NULL;
	const char *error, *scheme;
	struct stat st;
	bool weak;

	if (stat(cfg->users_file, &st) < 0 && errno == ENOENT)
		return EX_OK;
	if (passwd_db_load(cfg->users_file, &db, &error) < 0) {
		fprintf(stderr, "postctl: cannot read users file %s: %s\n",
			cfg->users_file, error);
		return EX_IOERR;
	}
	for (size_t i = 0; i < passwd_db_count(db); i++) {
		const struct passwd_entry *e = passwd_db_entry(db, i);

		if (password_check_stored(e->password, &weak, &scheme, &error) <
		    0)
			scheme = "INVALID";
		printf("%s %s\n", e->name, scheme);
	}
	passwd_db_free(&db);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "postctl: cannot write the list: %s\n",
			strerror(errno));
		return EX_IOERR;
	}
	return EX_OK;
}

/* Mail is written as cfg->user, never as root, so that postd (which runs
 * as that user) owns every file it will later read and delete. */
int postctl_drop_privileges(const struct config *cfg)
{
	struct passwd *pw;

	if (geteuid() != 0)
		return 0;
	errno = 0;
	pw = getpwnam(cfg->user);
	if (pw == NULL) {
		fprintf(stderr, "postctl: account '%s' (user) not found%s%s\n",
			cfg->user, errno != 0 ? ": " : "",
			errno != 0 ? strerror(errno) : "");
		return -1;
	}
	if (pw->pw_uid == 0) {
		fprintf(stderr,
			"postctl: refusing to deliver as '%s': it is uid 0\n",
			cfg->user);
		return -1;
	}
	if (initgroups(pw->pw_name, pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 ||
	    setuid(pw->pw_uid) < 0) {
		fprintf(stderr, "postctl: cannot switch to account '%s': %s\n",
			cfg->user, strerror(errno));
		return -1;
	}
	/* Make sure the switch cannot be undone. */
	if (setuid(0) == 0 || geteuid() != pw->pw_uid ||
	    getegid() != pw->pw_gid) {
		fprintf(stderr, "postctl: privileges were not dropped\n");
		return -1;
	}
	return 0;
}

/* DATA_DIR/mail, created if missing (postd normally does it). */
int postctl_open_mail_root(const struct config *cfg)
{
	int dir_fd, fd;

	dir_fd = open(cfg->data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir_fd < 0) {
		fprintf(stderr, "postctl: cannot open data_dir %s: %s\n",
			cfg->data_dir, strerror(errno));
		return -1;
	}
	fd = openat(dir_fd, "mail",
		    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		int made = mkdirat(dir_fd, "mail", 0700);

		/* Made here: synced into DATA_DIR (INV-D1). */
		if ((made < 0 && errno != EEXIST) ||
		    (made == 0 && fsync(dir_fd) < 0)) {
			fprintf(stderr, "postctl: cannot create %s/mail: %s\n",
				cfg->data_dir, strerror(errno));
			close(dir_fd);
			return -1;
		}
		fd = openat(dir_fd, "mail",
			    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	}
	if (fd < 0)
		fprintf(stderr, "postctl: cannot open %s/mail: %s\n",
			cfg->data_dir, strerror(errno));
	close(dir_fd);
	return fd;
}

/* INV-D1: exit 0 only after maildir_delivery_commit() made the message
 * durable; anything else leaves no file behind and exits non-zero. */
static int postctl_deliver(const struct config *cfg, const char *arg)
{
	static char chunk[POSTCTL_DELIVER_CHUNK];
	char name[USERNAME_BUF_SIZE], final_name[MAILDIR_MAX_NAME + 1];
	struct maildir_delivery *d;
	struct passwd_db *db = NULL;
	unsigned long long total = 0;
	const char *error, *domain;
	int root_fd, mdir_fd, err;
	size_t local_len;
	bool known;

	if (postctl_normalize(cfg, arg, name, sizeof(name)) < 0)
		return EX_USAGE;
	domain = username_domain(name, &local_len);
	if (!config_is_local_domain(cfg, domain)) {
		fprintf(stderr,
			"postctl: cannot deliver to %s: domain %s is not in "
			"domains\n",
			name, domain);
		return EX_NOUSER;
	}
	/* The users file is read before dropping privileges: it is
	 * root's alone (0600). */
	if (access(cfg->users_file, F_OK) < 0 && errno == ENOENT) {
		known = false;
	} else if (passwd_db_load(cfg->users_file, &db, &error) < 0) {
		fprintf(stderr, "postctl: cannot read users file %s: %s\n",
			cfg->users_file, error);
		return EX_TEMPFAIL;
	} else {
		known = passwd_db_lookup(db, name) != NULL;
		passwd_db_free(&db);
	}
	if (!known) {
		fprintf(stderr, "postctl: no such user %s in %s\n", name,
			cfg->users_file);
		return EX_NOUSER;
	}
	/* DATA_DIR/mail is opened before dropping privileges: the user may
	 * not be allowed to walk the path to it (/root/...), and the
	 * Maildirs are then reached beneath this descriptor only. */
	if (postctl_ensure_data_dir(cfg, true) < 0)
		return EX_TEMPFAIL;
	root_fd = postctl_open_mail_root(cfg);
	if (root_fd < 0)
		return EX_TEMPFAIL;
	if (postctl_drop_privileges(cfg) < 0) {
		close(root_fd);
		return EX_TEMPFAIL;
	}
	mdir_fd = maildir_open(root_fd, name, true, &error);
	close(root_fd);
	if (mdir_fd < 0) {
		fprintf(stderr, "postctl: cannot open the Maildir of %s: %s\n",
			name, error);
		return EX_TEMPFAIL;
	}
	d = maildir_delivery_begin(mdir_fd, &error);
	if (d == NULL) {
		fprintf(stderr, "postctl: cannot start delivery to %s: %s\n",
			name, error);
		close(mdir_fd);
		return EX_TEMPFAIL;
	}
	for (;;) {
		ssize_t n = read(STDIN_FILENO, chunk, sizeof(chunk));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fprintf(stderr,
				"postctl: cannot read the message: %s\n",
				strerror(errno));
			maildir_delivery_abort(&d);
			close(mdir_fd);
			return EX_TEMPFAIL;
		}
		if (n == 0)
			break;
		total += (unsigned long long)n;
		if (total > DELIVER_MAX_MESSAGE) {
			fprintf(stderr,
				"postctl: message too big (more than %llu "
				"bytes)\n",
				(unsigned long long)DELIVER_MAX_MESSAGE);
			maildir_delivery_abort(&d);
			close(mdir_fd);
			return EX_DATAERR;
		}
		if (maildir_delivery_write(d, chunk, (size_t)n, &error) < 0) {
			fprintf(stderr, "postctl: cannot write to %s: %s\n",
				name, error);
			maildir_delivery_abort(&d);
			close(mdir_fd);
			return EX_TEMPFAIL;
		}
	}
	if (total == 0) {
		fprintf(stderr, "postctl: empty message refused\n");
		maildir_delivery_abort(&d);
		close(mdir_fd);
		return EX_DATAERR;
	}
	if (maildir_delivery_commit(&d, final_name, sizeof(final_name), &err,
				    &error) < 0) {
		fprintf(stderr, "postctl: cannot deliver to %s: %s%s%s\n", name,
			error, err != 0 ? ": " : "",
			err != 0 ? strerror(err) : "");
		close(mdir_fd);
		return EX_TEMPFAIL;
	}
	close(mdir_fd);
	return EX_OK;
}

int main(int argc, char **argv)
{
	const char *config_path = NULL;
	struct config *cfg;
	int opt, rc;

	log_init("postctl", 1);
	while ((opt = getopt(argc, argv, "+c:h")) != -1) {
		switch (opt) {
		case 'c':
			config_path = optarg;
			break;
		case 'h':
			postctl_usage(stdout);
			return EX_OK;
		default:
			postctl_usage(stderr);
			return EX_USAGE;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1) {
		postctl_usage(stderr);
		return EX_USAGE;
	}
	/* Check the arguments before the config so that a typo is reported
	 * as such. */
	if (strcmp(argv[0], "user") == 0) {
		if (argc < 2 || (strcmp(argv[1], "list") == 0 && argc != 2) ||
		    (strcmp(argv[1], "list") != 0 && argc != 3) ||
		    (strcmp(argv[1], "add") != 0 &&
		     strcmp(argv[1], "passwd") != 0 &&
		     strcmp(argv[1], "del") != 0 &&
		     strcmp(argv[1], "list") != 0)) {
			postctl_usage(stderr);
			return EX_USAGE;
		}
	} else if (strcmp(argv[0], "check") == 0) {
		return postctl_check_main(argc, argv);
	} else if (strcmp(argv[0], "migrate") == 0) {
		cfg = postctl_load_config(config_path);
		if (cfg == NULL)
			return EX_CONFIG;
		rc = postctl_migrate_main(cfg, argc, argv);
		config_free(&cfg);
		return rc;
	} else if (strcmp(argv[0], "queue") == 0 ||
		   strcmp(argv[0], "expire") == 0 ||
		   strcmp(argv[0], "alias") == 0) {
		cfg = postctl_load_config(config_path);
		if (cfg == NULL)
			return EX_CONFIG;
		rc = strcmp(argv[0], "queue") == 0
			 ? postctl_queue_main(cfg, argc, argv)
		     : strcmp(argv[0], "alias") == 0
			 ? postctl_alias_main(cfg, argc, argv)
			 : postctl_expire_main(cfg, argc, argv);
		config_free(&cfg);
		return rc;
	} else if (strcmp(argv[0], "deliver") != 0 || argc != 2) {
		postctl_usage(stderr);
		return EX_USAGE;
	}
	cfg = postctl_load_config(config_path);
	if (cfg == NULL)
		return EX_CONFIG;
	if (strcmp(argv[0], "deliver") == 0)
		rc = postctl_deliver(cfg, argv[1]);
	else if (cfg->userdb == USERDB_PGSQL)
		rc = postctl_db_user_main(cfg, argc, argv);
	else if (strcmp(argv[1], "add") == 0)
		rc = postctl_user_add(cfg, argv[2]);
	else if (strcmp(argv[1], "passwd") == 0)
		rc = postctl_user_passwd(cfg, argv[2]);
	else if (strcmp(argv[1], "del") == 0)
		rc = postctl_user_del(cfg, argv[2]);
	else
		rc = postctl_user_list(cfg);
	config_free(&cfg);
	return rc;
}
