/*
 * postctl: manage the users file, deliver a message from stdin, and
 * inspect the outbound queue.
 * See postctl(8). Exit codes follow sysexits(3) so that an MTA calling
 * "postctl deliver" knows a temporary failure (75) from a permanent one.
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
#include "lib/username.h"
#include "lib/xmalloc.h"
#include "storage/maildir.h"
#include "storage/queue.h"

/* Read size for deliver: big enough for throughput, small on the stack. */
#define POSTCTL_DELIVER_CHUNK 65536

struct postctl_password {
	char text[AUTH_MAX_PASSWORD + 2]; /* a line, its LF, a NUL */
	size_t len;
};

static void postctl_usage(FILE *out);
static struct config *postctl_load_config(const char *path);
static int postctl_normalize(const struct config *cfg, const char *in,
			     char *out, size_t outsize);
static int postctl_user_exists(const char *users_file, const char *name,
			       bool *exists_r);
static int postctl_read_line_fd(int fd, struct postctl_password *pw);
static int postctl_read_password_tty(struct postctl_password *pw);
static int postctl_read_password(struct postctl_password *pw);
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
static int postctl_drop_privileges(const struct config *cfg);
static int postctl_open_mail_root(const struct config *cfg);
static int postctl_deliver(const struct config *cfg, const char *arg);

/* One line of "queue list". */
struct postctl_queue_item {
	char id[QUEUE_MAX_ID + 1];
	uint64_t created;
	uint64_t size;
	char *sender;
	size_t rcpt_count;
};

struct postctl_queue_items {
	struct postctl_queue_item *v;
	size_t count;
};

static int postctl_queue_open(const struct config *cfg, int *queue_fd_r);
static void postctl_format_age(uint64_t created, char *out, size_t size);
static int postctl_queue_collect(void *ctx, const struct queue_envelope *env);
static int postctl_queue_item_cmp(const void *a, const void *b);
static int postctl_queue_list(const struct config *cfg);
static void postctl_print_escaped(const char *s, size_t len, bool keep_lf);
static int postctl_queue_print_header(int queue_fd,
				      const struct queue_envelope *env);
static int postctl_queue_show(const struct config *cfg, const char *id);
static int postctl_queue_delete(const struct config *cfg, const char *id);
static int postctl_stdout_done(void);
static const char *postctl_rcpt_state(enum queue_rcpt_state s);

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
		     "       postctl [-c FILE] deliver ADDRESS < MESSAGE\n"
		     "       postctl [-c FILE] queue list\n"
		     "       postctl [-c FILE] queue show ID\n"
		     "       postctl [-c FILE] queue delete ID\n"
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
static int postctl_normalize(const struct config *cfg, const char *in,
			     char *out, size_t outsize)
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

static int postctl_read_password(struct postctl_password *pw)
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
	if (geteuid() != 0)
		return 0;
	if (chown(cfg->users_file, 0, 0) < 0 ||
	    chmod(cfg->users_file, 0600) < 0) {
		fprintf(stderr,
			"postctl: cannot set owner root:root mode 0600 on %s: "
			"%s\n",
			cfg->users_file, strerror(errno));
		return -1;
	}
	return 0;
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

static int postctl_mkdir_owned(const char *path, const struct passwd *pw)
{
	if (mkdir(path, 0700) < 0) {
		if (errno == EEXIST)
			return 0;
		fprintf(stderr, "postctl: cannot create %s: %s\n", path,
			strerror(errno));
		return -1;
	}
	if (pw != NULL && chown(path, pw->pw_uid, pw->pw_gid) < 0) {
		fprintf(stderr, "postctl: cannot chown %s to %s: %s\n", path,
			pw->pw_name, strerror(errno));
		return -1;
	}
	return 0;
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
static int postctl_drop_privileges(const struct config *cfg)
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
static int postctl_open_mail_root(const struct config *cfg)
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
		if (mkdirat(dir_fd, "mail", 0700) < 0 && errno != EEXIST) {
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

/*
 * DATA_DIR/queue, opened beneath DATA_DIR with O_NOFOLLOW, then the
 * privileges dropped as for deliver: whatever postctl renames (into
 * quarantine/) or removes stays owned by the account postd runs as.
 * Returns EX_OK and *queue_fd_r (-1 when there is no queue yet), or an
 * exit code with a message printed.
 */
static int postctl_queue_open(const struct config *cfg, int *queue_fd_r)
{
	const char *error;
	int data_fd;

	*queue_fd_r = -1;
	data_fd = open(cfg->data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (data_fd < 0 && errno == ENOENT)
		return EX_OK;
	if (data_fd < 0) {
		fprintf(stderr, "postctl: cannot open data_dir %s: %s\n",
			cfg->data_dir, strerror(errno));
		return EX_TEMPFAIL;
	}
	*queue_fd_r = queue_open(data_fd, false, &error);
	close(data_fd);
	if (*queue_fd_r < 0 && errno != ENOENT) {
		fprintf(stderr, "postctl: cannot open the queue in %s: %s\n",
			cfg->data_dir, error);
		return EX_TEMPFAIL;
	}
	if (postctl_drop_privileges(cfg) < 0) {
		if (*queue_fd_r >= 0)
			close(*queue_fd_r);
		*queue_fd_r = -1;
		return EX_TEMPFAIL;
	}
	return EX_OK;
}

/* "45s", "12m", "5h", "3d"; "0s" for a time in the future (a clock that
 * went back). */
static void postctl_format_age(uint64_t created, char *out, size_t size)
{
	time_t now = time(NULL);
	uint64_t age = (uint64_t)now > created ? (uint64_t)now - created : 0;

	if (age < 120)
		snprintf(out, size, "%" PRIu64 "s", age);
	else if (age < 2 * 3600)
		snprintf(out, size, "%" PRIu64 "m", age / 60);
	else if (age < 2 * 86400)
		snprintf(out, size, "%" PRIu64 "h", age / 3600);
	else
		snprintf(out, size, "%" PRIu64 "d", age / 86400);
}

static int postctl_queue_collect(void *ctx, const struct queue_envelope *env)
{
	struct postctl_queue_items *items = ctx;
	struct postctl_queue_item *it;

	items->v = xreallocarray(items->v, items->count + 1, sizeof(*items->v));
	it = &items->v[items->count++];
	snprintf(it->id, sizeof(it->id), "%s", env->id);
	it->created = env->created;
	it->size = env->size;
	it->sender = xstrdup(env->sender);
	it->rcpt_count = env->rcpt_count;
	return 0;
}

/* Oldest first; ids break ties so the order is stable. */
static int postctl_queue_item_cmp(const void *a, const void *b)
{
	const struct postctl_queue_item *x = a, *y = b;

	if (x->created != y->created)
		return x->created < y->created ? -1 : 1;
	return strcmp(x->id, y->id);
}

static int postctl_stdout_done(void)
{
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "postctl: cannot write the output: %s\n",
			strerror(errno));
		return EX_IOERR;
	}
	return EX_OK;
}

static int postctl_queue_list(const struct config *cfg)
{
	struct postctl_queue_items items = {NULL, 0};
	unsigned quarantined = 0;
	uint64_t total = 0;
	const char *error;
	int queue_fd, rc;

	rc = postctl_queue_open(cfg, &queue_fd);
	if (rc != EX_OK)
		return rc;
	if (queue_fd >= 0) {
		if (queue_list(queue_fd, postctl_queue_collect, &items,
			       &quarantined, &error) < 0) {
			fprintf(stderr, "postctl: cannot read the queue: %s\n",
				error);
			rc = EX_TEMPFAIL;
		}
		close(queue_fd);
	}
	if (items.count > 0)
		qsort(items.v, items.count, sizeof(*items.v),
		      postctl_queue_item_cmp);
	for (size_t i = 0; i < items.count; i++) {
		const struct postctl_queue_item *it = &items.v[i];
		char age[32], sender[4 * SMTP_MAX_PATH + 1];

		postctl_format_age(it->created, age, sizeof(age));
		/* Addresses are peer data: escaped for the terminal. */
		log_escape(sender, sizeof(sender), it->sender,
			   strlen(it->sender));
		printf("%s %s %" PRIu64 " <%s> %zu\n", it->id, age, it->size,
		       sender, it->rcpt_count);
		total += it->size;
		free(it->sender);
	}
	free(items.v);
	if (items.count == 0)
		printf("queue is empty\n");
	else
		printf("%zu %s, %" PRIu64 " bytes\n", items.count,
		       items.count == 1 ? "entry" : "entries", total);
	if (quarantined > 0)
		fprintf(stderr,
			"postctl: %u invalid %s moved to %s/%s/%s/ (see the "
			"log)\n",
			quarantined, quarantined == 1 ? "entry" : "entries",
			cfg->data_dir, QUEUE_DIR, QUEUE_SUBDIR_QUARANTINE);
	if (postctl_stdout_done() != EX_OK)
		return EX_IOERR;
	return rc;
}

/* Message text for the terminal: control bytes (but LF and tab, when
 * keep_lf) and bytes >= 0x7f as \xHH, so a message cannot send escape
 * sequences to the operator's terminal. */
static void postctl_print_escaped(const char *s, size_t len, bool keep_lf)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if ((keep_lf && (c == '\n' || c == '\t')) ||
		    (c >= 0x20 && c < 0x7f && c != '\\'))
			putchar(c);
		else
			printf("\\x%02X", c);
	}
}

/* The header section of msg/ID from offset skip, up to the empty line
 * (at most QUEUE_SHOW_MAX_HEADER bytes). */
static int postctl_queue_print_header(int queue_fd,
				      const struct queue_envelope *env)
{
	static char buf[QUEUE_SHOW_MAX_HEADER];
	size_t len = 0, end;
	const char *blank;
	int msg_dir, fd;

	msg_dir = openat(queue_fd, QUEUE_SUBDIR_MSG,
			 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	fd = msg_dir < 0
		 ? -1
		 : openat(msg_dir, env->id, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (msg_dir >= 0)
		close(msg_dir);
	if (fd < 0) {
		fprintf(stderr, "postctl: cannot open the message: %s\n",
			strerror(errno));
		return -1;
	}
	while (len < sizeof(buf)) {
		ssize_t n = pread(fd, buf + len, sizeof(buf) - len,
				  (off_t)(env->skip + len));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fprintf(stderr,
				"postctl: cannot read the message: %s\n",
				strerror(errno));
			close(fd);
			return -1;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	/* Stored with LF line ends: the header ends at the first "\n\n"
	 * (or an empty first line). */
	if (len > 0 && buf[0] == '\n')
		end = 0;
	else if ((blank = memmem(buf, len, "\n\n", 2)) != NULL)
		end = (size_t)(blank - buf) + 1;
	else
		end = len;
	postctl_print_escaped(buf, end, true);
	if (end > 0 && buf[end - 1] != '\n')
		putchar('\n');
	if (end == len && len == sizeof(buf))
		printf("[header longer than %d bytes: cut]\n",
		       QUEUE_SHOW_MAX_HEADER);
	return 0;
}

static const char *postctl_rcpt_state(enum queue_rcpt_state s)
{
	switch (s) {
	case QUEUE_RCPT_PENDING:
		return "pending";
	case QUEUE_RCPT_SENT:
		return "sent";
	case QUEUE_RCPT_FAILED:
		return "failed";
	}
	return "?";
}

static int postctl_queue_show(const struct config *cfg, const char *id)
{
	struct queue_envelope *env = NULL;
	char age[32], when[64];
	const char *error;
	struct tm tm;
	time_t t;
	int queue_fd, rc, r;

	rc = postctl_queue_open(cfg, &queue_fd);
	if (rc != EX_OK)
		return rc;
	if (queue_fd < 0) {
		fprintf(stderr, "postctl: no queue entry %s\n", id);
		return EX_NOUSER;
	}
	r = queue_entry_load(queue_fd, id, &env, &error);
	if (r == 0) {
		fprintf(stderr, "postctl: no queue entry %s\n", id);
		close(queue_fd);
		return EX_NOUSER;
	}
	if (r < 0) {
		bool bad = errno == EBADMSG;

		fprintf(stderr, "postctl: queue entry %s: %s%s\n", id, error,
			bad ? " (moved to quarantine/)" : "");
		close(queue_fd);
		return bad ? EX_DATAERR : EX_TEMPFAIL;
	}
	t = (time_t)env->created;
	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(when, sizeof(when), "?");
	postctl_format_age(env->created, age, sizeof(age));
	printf("id: %s\n", env->id);
	printf("created: %s (%s ago)\n", when, age);
	printf("size: %" PRIu64 "\n", env->size);
	printf("skip: %" PRIu64 "\n", env->skip);
	printf("sender: <");
	postctl_print_escaped(env->sender, strlen(env->sender), false);
	printf(">\n");
	for (size_t i = 0; i < env->rcpt_count; i++) {
		const struct queue_rcpt *r_ = &env->rcpts[i];

		printf("rcpt: <");
		postctl_print_escaped(r_->addr, strlen(r_->addr), false);
		printf("> %s attempts=%" PRIu32 " next-try=%" PRIu64
		       " last-error=",
		       postctl_rcpt_state(r_->state), r_->attempts,
		       r_->next_try);
		if (r_->last_error != NULL)
			postctl_print_escaped(r_->last_error,
					      strlen(r_->last_error), false);
		else
			putchar('-');
		putchar('\n');
	}
	printf("\n");
	r = postctl_queue_print_header(queue_fd, env);
	queue_envelope_free(&env);
	close(queue_fd);
	if (postctl_stdout_done() != EX_OK)
		return EX_IOERR;
	return r < 0 ? EX_TEMPFAIL : EX_OK;
}

static int postctl_queue_delete(const struct config *cfg, const char *id)
{
	const char *error;
	int queue_fd, rc;

	rc = postctl_queue_open(cfg, &queue_fd);
	if (rc != EX_OK)
		return rc;
	if (queue_fd < 0) {
		fprintf(stderr, "postctl: no queue entry %s\n", id);
		return EX_NOUSER;
	}
	if (queue_delete(queue_fd, id, &error) < 0) {
		int err = errno;

		fprintf(stderr, "postctl: cannot delete queue entry %s: %s\n",
			id, error);
		close(queue_fd);
		return err == ENOENT ? EX_NOUSER : EX_TEMPFAIL;
	}
	close(queue_fd);
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
	} else if (strcmp(argv[0], "queue") == 0) {
		if (argc < 2 || (strcmp(argv[1], "list") == 0 && argc != 2) ||
		    ((strcmp(argv[1], "show") == 0 ||
		      strcmp(argv[1], "delete") == 0) &&
		     argc != 3) ||
		    (strcmp(argv[1], "list") != 0 &&
		     strcmp(argv[1], "show") != 0 &&
		     strcmp(argv[1], "delete") != 0)) {
			postctl_usage(stderr);
			return EX_USAGE;
		}
		/* INV-S2: an id becomes a path only once it is known to be
		 * [0-9A-Za-z] and short. */
		if (argc == 3 && !queue_id_valid(argv[2])) {
			fprintf(stderr,
				"postctl: invalid queue id: expected 1 to %d "
				"letters and digits\n",
				QUEUE_MAX_ID);
			return EX_USAGE;
		}
	} else if (strcmp(argv[0], "deliver") != 0 || argc != 2) {
		postctl_usage(stderr);
		return EX_USAGE;
	}
	cfg = postctl_load_config(config_path);
	if (cfg == NULL)
		return EX_CONFIG;
	if (strcmp(argv[0], "deliver") == 0)
		rc = postctl_deliver(cfg, argv[1]);
	else if (strcmp(argv[0], "queue") == 0 && strcmp(argv[1], "list") == 0)
		rc = postctl_queue_list(cfg);
	else if (strcmp(argv[0], "queue") == 0 && strcmp(argv[1], "show") == 0)
		rc = postctl_queue_show(cfg, argv[2]);
	else if (strcmp(argv[0], "queue") == 0)
		rc = postctl_queue_delete(cfg, argv[2]);
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
