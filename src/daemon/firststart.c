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
#include "storage/maildir.h"
#include "tls/tls.h"

#define DEMO_LOCALPART "demo"
#define DEMO_PASSWORD_LEN 16

static void firststart_mkdir(const char *path, mode_t mode,
			     const struct config *cfg, bool give_to_user);
static void firststart_demo_user(const struct config *cfg);
static void firststart_welcome(const struct config *cfg, const char *user);
static int firststart_deliver(int root_fd, const char *user, const char *text);

static void firststart_mkdir(const char *path, mode_t mode,
			     const struct config *cfg, bool give_to_user)
{
	char error[256];
	uid_t uid;
	gid_t gid;

	if (mkdir(path, mode) < 0 && errno != EEXIST)
		fatal("cannot create %s: %s", path, strerror(errno));
	if (!give_to_user || !privdrop_is_root())
		return;
	if (privdrop_lookup(cfg->user, &uid, &gid, error, sizeof(error)) < 0)
		fatal("%s", error);
	if (chown(path, uid, gid) < 0)
		fatal("cannot chown %s: %s", path, strerror(errno));
}

void firststart_data_dirs(const struct config *cfg)
{
	char mail[4096];

	firststart_mkdir(cfg->data_dir, 0755, cfg, true);
	snprintf(mail, sizeof(mail), "%s/mail", cfg->data_dir);
	firststart_mkdir(mail, 0700, cfg, true);
	/* The outbound queue and its folders (storage/queue.h). */
	static const char *const queue_dirs[] = {"", "/tmp", "/msg", "/env",
						 "/quarantine"};
	for (size_t i = 0; i < sizeof(queue_dirs) / sizeof(queue_dirs[0]);
	     i++) {
		snprintf(mail, sizeof(mail), "%s/queue%s", cfg->data_dir,
			 queue_dirs[i]);
		firststart_mkdir(mail, 0700, cfg, true);
	}
}

void firststart_prepare(const struct config *cfg)
{
	char dir[4096], error[512];
	const char *slash = strrchr(cfg->tls_cert, '/');
	int made;

	if (slash != NULL) {
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - cfg->tls_cert),
			 cfg->tls_cert);
		firststart_mkdir(dir, 0700, cfg, false);
	}
	made = tls_make_self_signed(cfg->tls_cert, cfg->tls_key, cfg->hostname,
				    error, sizeof(error));
	if (made < 0)
		fatal("making a self-signed certificate: %s", error);
	if (made > 0)
		log_info("first start: made a self-signed certificate %s for "
			 "%s",
			 cfg->tls_cert, cfg->hostname);
	if (access(cfg->users_file, F_OK) < 0)
		firststart_demo_user(cfg);
}

static void firststart_demo_user(const struct config *cfg)
{
	static const char alphabet[] = "abcdefghijkmnopqrstuvwxyz"
				       "ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
	char password[DEMO_PASSWORD_LEN + 1], user[320], error_buf[256];
	const char *error;
	char *hash;
	uid_t uid;
	gid_t gid;

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
	if (privdrop_is_root()) {
		if (privdrop_lookup(cfg->user, &uid, &gid, error_buf,
				    sizeof(error_buf)) < 0)
			fatal("%s", error_buf);
		/* The auth process runs as cfg->user and reads it. */
		if (chown(cfg->users_file, 0, gid) < 0 ||
		    chmod(cfg->users_file, 0640) < 0)
			fatal("cannot set owner of %s: %s", cfg->users_file,
			      strerror(errno));
	}
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
		 "Try: curl -k pop3s://127.0.0.1:2995/1 -u demo:PASSWORD\n",
		 cfg->hostname, user, date, (long)now, cfg->hostname);
	/* Mail is written by the unprivileged user, as the workers do; the
	 * directory is opened first, as root, since the user may not be
	 * able to walk the path to it. */
	snprintf(path, sizeof(path), "%s/mail", cfg->data_dir);
	root_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
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
