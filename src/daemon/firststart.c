#include "daemon/firststart.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <sodium.h>

#include "auth/passwd_file.h"
#include "auth/password.h"
#include "daemon/privdrop.h"
#include "lib/log.h"
#include "lib/safe_open.h"
#include "lib/srs.h"
#include "storage/maildir.h"
#include "tls/tls.h"

#define DEMO_LOCALPART "demo"
#define DEMO_PASSWORD_LEN 16

static void firststart_mkdir(const char *path, mode_t mode);
static int firststart_dir_at(int parent_fd, const char *parent,
			     const char *name, const struct config *cfg);
static void firststart_demo_user(const struct config *cfg);
static void firststart_welcome(const struct config *cfg, const char *user);
static int firststart_deliver(int root_fd, const char *user, const char *text);

static void firststart_mkdir(const char *path, mode_t mode)
{
	if (mkdir(path, mode) == 0) {
		/* DATA_DIR holds the queue and the Maildirs (INV-D1). */
		if (safe_sync_parent(path) < 0)
			fatal("cannot sync the folder of %s: %s", path,
			      strerror(errno));
		return;
	}
	if (errno != EEXIST)
		fatal("cannot create %s: %s", path, strerror(errno));
}

/*
 * Opens the folder name beneath parent_fd, creating it if missing,
 * without following a symbolic link, and gives it to the run user by
 * descriptor. Root never changes the owner of whatever a path names: the
 * run user owns these folders and could have put a link in their place.
 */
static int firststart_dir_at(int parent_fd, const char *parent,
			     const char *name, const struct config *cfg)
{
	char error[256];
	struct stat st;
	uid_t uid;
	gid_t gid;
	int fd;

	bool made = mkdirat(parent_fd, name, 0700) == 0;

	if (!made && errno != EEXIST)
		fatal("cannot create %s/%s: %s", parent, name, strerror(errno));
	/* A new folder is an entry of its parent: synced, so that the queue
	 * and the Maildirs that later acknowledged mail lives in do not
	 * vanish in a power loss (INV-D1). */
	if (made && fsync(parent_fd) < 0)
		fatal("cannot sync %s: %s", parent, strerror(errno));
	fd = openat(parent_fd, name,
		    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		fatal("%s/%s: %s (it must be a folder, not a link)", parent,
		      name, strerror(errno));
	if (!privdrop_is_root())
		return fd;
	if (privdrop_lookup(cfg->user, &uid, &gid, error, sizeof(error)) < 0)
		fatal("%s", error);
	if (fstat(fd, &st) < 0)
		fatal("%s/%s: %s", parent, name, strerror(errno));
	if ((st.st_uid != uid || st.st_gid != gid) && fchown(fd, uid, gid) < 0)
		fatal("cannot give %s/%s to %s: %s", parent, name, cfg->user,
		      strerror(errno));
	return fd;
}

/*
 * DATA_DIR stays root's (it also holds tls/ and, in the embedded default,
 * the users file); mail/ and queue/ beneath it belong to the run user.
 */
void firststart_data_dirs(const struct config *cfg)
{
	static const char *const queue_dirs[] = {"tmp", "msg", "env",
						 "quarantine", "hold"};
	char queue[4096];
	struct stat st;
	int data_fd, queue_fd;

	firststart_mkdir(cfg->data_dir, 0755);
	data_fd = open(cfg->data_dir,
		       O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (data_fd < 0)
		fatal("%s: %s", cfg->data_dir, strerror(errno));
	if (privdrop_is_root() && fstat(data_fd, &st) == 0 && st.st_uid != 0)
		log_warn("%s is not owned by root: its owner could replace "
			 "what postd keeps there (chown root %s)",
			 cfg->data_dir, cfg->data_dir);
	close(firststart_dir_at(data_fd, cfg->data_dir, "mail", cfg));
	queue_fd = firststart_dir_at(data_fd, cfg->data_dir, "queue", cfg);
	snprintf(queue, sizeof(queue), "%s/queue", cfg->data_dir);
	for (size_t i = 0; i < sizeof(queue_dirs) / sizeof(queue_dirs[0]); i++)
		close(firststart_dir_at(queue_fd, queue, queue_dirs[i], cfg));
	close(queue_fd);
	close(data_fd);
}

/* The SRS key (doc/internals/srs.md): made once, root's alone, never
 * logged. Forwarding needs it in every configuration. */
void firststart_srs_secret(const struct config *cfg)
{
	struct srs_secrets srs;
	char error[512];
	int made =
	    srs_secret_create(cfg->srs_secret_file, error, sizeof(error));

	if (made < 0)
		fatal("making the SRS secret: %s", error);
	if (made > 0)
		log_info("first start: made the SRS secret %s",
			 cfg->srs_secret_file);
	if (srs_secrets_load(&srs, cfg->srs_secret_file, error, sizeof(error)) <
	    0)
		fatal("srs_secret_file %s", error);
	if (error[0] != '\0')
		log_warn("srs_secret_file %s", error);
	srs_secrets_clear(&srs);
}

void firststart_prepare(const struct config *cfg)
{
	char dir[4096], error[512];
	const char *slash = strrchr(cfg->tls_cert, '/');
	int made;

	if (slash != NULL) {
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - cfg->tls_cert),
			 cfg->tls_cert);
		firststart_mkdir(dir, 0700);
	}
	made = tls_make_self_signed(cfg->tls_cert, cfg->tls_key, cfg->hostname,
				    error, sizeof(error));
	if (made < 0)
		fatal("making a self-signed certificate: %s", error);
	if (made > 0)
		log_info("first start: made a self-signed certificate %s for "
			 "%s",
			 cfg->tls_cert, cfg->hostname);
	/* With userdb = pgsql the users are the database's business. */
	if (cfg->userdb == USERDB_FILE && access(cfg->users_file, F_OK) < 0)
		firststart_demo_user(cfg);
}

static void firststart_demo_user(const struct config *cfg)
{
	static const char alphabet[] = "abcdefghijkmnopqrstuvwxyz"
				       "ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
	char password[DEMO_PASSWORD_LEN + 1], user[320];
	const char *error;
	char *hash;

	for (int i = 0; i < DEMO_PASSWORD_LEN; i++)
		password[i] =
		    alphabet[randombytes_uniform(sizeof(alphabet) - 1)];
	password[DEMO_PASSWORD_LEN] = '\0';
	snprintf(user, sizeof(user), "%s@%s", DEMO_LOCALPART, cfg->domains[0]);
	hash = password_hash_new(password, DEMO_PASSWORD_LEN);
	if (hash == NULL)
		fatal("hashing the demo password failed");
	if (passwd_file_set(cfg->users_file, user, hash, true, false, &error) <
	    0)
		fatal("creating %s: %s", cfg->users_file, error);
	free(hash);
	/* Root's alone: the auth process reads it before it drops
	 * privileges, and the run user never sees a hash. */
	if (chmod(cfg->users_file, 0600) < 0)
		fatal("cannot set the mode of %s: %s", cfg->users_file,
		      strerror(errno));
	fprintf(stderr,
		"\npostd: first start: demo user: %s password: %s\n"
		"postd: (shown once; change it with: postctl user passwd "
		"%s)\n\n",
		user, password, DEMO_LOCALPART);
	OPENSSL_cleanse(password, sizeof(password));
	firststart_welcome(cfg, user);
}

static void firststart_welcome(const struct config *cfg, const char *user)
{
	char text[2048], date[64], path[4096];
	time_t now = time(NULL);
	struct tm tm;
	pid_t pid;
	int status, root_fd;

	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	snprintf(text, sizeof(text),
		 "From: postd <postmaster@%s>\n"
		 "To: %s\n"
		 "Subject: Welcome to postd\n"
		 "Date: %s\n"
		 "Message-ID: <welcome.%ld@%s>\n"
		 "MIME-Version: 1.0\n"
		 "Content-Type: text/plain; charset=utf-8\n"
		 "\n"
		 "Hello,\n\n"
		 "this is postd, your post office. If you can read this, your\n"
		 "mail client fetched its first message.\n\n"
		 "Try: curl -k pop3s://127.0.0.1:2995/1 -u demo:PASSWORD\n"
		 "or:  curl -k 'imaps://127.0.0.1:2993/INBOX;UID=1' -u "
		 "demo:PASSWORD\n",
		 cfg->hostname, user, date, (long)now, cfg->hostname);
	/* Mail is written by the unprivileged user, as the workers do; the
	 * directory is opened first, as root, since the user may not be
	 * able to walk the path to it. */
	snprintf(path, sizeof(path), "%s/mail", cfg->data_dir);
	root_fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (root_fd < 0)
		fatal("welcome: %s: %s", path, strerror(errno));
	pid = fork();
	if (pid < 0)
		fatal("fork: %s", strerror(errno));
	if (pid == 0) {
		privdrop_to(cfg->user, NULL);
		_exit(firststart_deliver(root_fd, user, text) < 0 ? 1 : 0);
	}
	close(root_fd);
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0)
		log_warn("first start: the welcome message was not delivered");
}

static int firststart_deliver(int root_fd, const char *user, const char *text)
{
	char name[256];
	const char *error;
	struct maildir_delivery *d;
	int maildir_fd, err;

	maildir_fd = maildir_open(root_fd, user, true, &error);
	if (maildir_fd < 0) {
		log_error("welcome: %s", error);
		return -1;
	}
	d = maildir_delivery_begin(maildir_fd, &error);
	if (d == NULL ||
	    maildir_delivery_write(d, text, strlen(text), &error) < 0) {
		log_error("welcome: %s", error);
		if (d != NULL)
			maildir_delivery_abort(&d);
		return -1;
	}
	if (maildir_delivery_commit(&d, name, sizeof(name), &err, &error) < 0) {
		log_error("welcome: %s", error);
		return -1;
	}
	return 0;
}
