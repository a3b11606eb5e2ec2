/*
 * The IMAP index benchmark (doc/internals/imap-index.md): builds a Maildir
 * of N messages and times what a session does to it. Built by meson, never
 * run by the tests (it measures, it does not check).
 *
 *   imap-index-bench N [DIR]
 *
 * DIR (default /tmp) gets a fresh folder that is removed afterwards.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "storage/mail_index.h"
#include "storage/maildir.h"

#define BENCH_REPEAT 21

static double now_ms(void);
static void die(const char *what);
static void make_maildir(int fd, size_t n);
static struct mail_view *open_view(int fd, bool readonly, double *ms_r);
static void report(const char *what, double *samples, size_t n);
static int cmp_double(const void *a, const void *b);
static off_t log_size(int fd);

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void die(const char *what)
{
	fprintf(stderr, "imap-index-bench: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* N messages as deliveries leave them (names with S= and W=), nine in
 * ten already read (in cur/ with ":2,S"), one second apart. */
static void make_maildir(int fd, size_t n)
{
	static const char body[] = "From: a@example.com\nTo: b@example.com\n"
				   "Subject: benchmark\n\nHello.\n";
	int new_fd = openat(fd, "new", O_RDONLY | O_DIRECTORY);
	int cur_fd = openat(fd, "cur", O_RDONLY | O_DIRECTORY);

	if (new_fd < 0 || cur_fd < 0)
		die("open new/ cur/");
	for (size_t i = 0; i < n; i++) {
		char name[256];
		bool seen = i % 10 != 0;
		struct timespec t[2] = {{(time_t)(1700000000 + i), 0},
					{(time_t)(1700000000 + i), 0}};
		int f;

		snprintf(name, sizeof(name),
			 "%zu.M1P1Q%zuR0123456789abcdef.bench,S=%zu,W=%zu%s",
			 (size_t)1700000000 + i, i, sizeof(body) - 1,
			 sizeof(body) - 1 + 5, seen ? ":2,S" : "");
		f = openat(seen ? cur_fd : new_fd, name,
			   O_WRONLY | O_CREAT | O_EXCL, 0600);
		if (f < 0 || write(f, body, sizeof(body) - 1) < 0 ||
		    futimens(f, t) < 0)
			die("write a message");
		close(f);
	}
	close(new_fd);
	close(cur_fd);
}

static struct mail_view *open_view(int fd, bool readonly, double *ms_r)
{
	struct mail_view *v;
	char err[256];
	double t0 = now_ms();

	if (mail_view_open(fd, readonly, &v, err, sizeof(err)) != MAIL_OK) {
		fprintf(stderr, "imap-index-bench: open: %s\n", err);
		exit(1);
	}
	*ms_r = now_ms() - t0;
	return v;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void report(const char *what, double *samples, size_t n)
{
	qsort(samples, n, sizeof(*samples), cmp_double);
	printf("  %-44s median %9.3f ms  (min %.3f, max %.3f, n=%zu)\n", what,
	       samples[n / 2], samples[0], samples[n - 1], n);
}

static off_t log_size(int fd)
{
	struct stat st;

	return fstatat(fd, "postd-imap.log", &st, 0) == 0 ? st.st_size : -1;
}

static void noop_cb(void *ctx, size_t x)
{
	(void)ctx;
	(void)x;
}

int main(int argc, char **argv)
{
	const struct mail_sync_cb cb = {noop_cb, noop_cb, noop_cb};
	size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 10000;
	const char *dir = argc > 2 ? argv[2] : "/tmp";
	double s[BENCH_REPEAT], t0, ms;
	struct mail_view *v, *w;
	char root[512], cmd[600], err[256];
	off_t before;
	int fd;

	snprintf(root, sizeof(root), "%s/imap-index-bench.XXXXXX", dir);
	if (n == 0 || mkdtemp(root) == NULL)
		die("make the folder");
	fd = open(root, O_RDONLY | O_DIRECTORY);
	if (fd < 0 || mkdirat(fd, "new", 0700) < 0 ||
	    mkdirat(fd, "cur", 0700) < 0 || mkdirat(fd, "tmp", 0700) < 0)
		die("make new/ cur/ tmp/");
	t0 = now_ms();
	make_maildir(fd, n);
	/* Flushed first, so that the first fsync measured does not write
	 * out the files just made. */
	sync();
	printf("%zu messages (%s), written in %.0f ms\n", n, dir,
	       now_ms() - t0);

	v = open_view(fd, false, &ms);
	printf("  %-44s %9.3f ms  (index %lld bytes)\n",
	       "open, cold (no index: scan + build)", ms,
	       (long long)log_size(fd));
	mail_view_close(&v);
	for (size_t i = 0; i < BENCH_REPEAT; i++) {
		v = open_view(fd, false, &s[i]);
		if (mail_view_count(v) != n) {
			fprintf(stderr, "imap-index-bench: %zu messages?\n",
				mail_view_count(v));
			return 1;
		}
		mail_view_close(&v);
	}
	report("open, warm (index current)", s, BENCH_REPEAT);

	v = open_view(fd, false, &ms);
	w = open_view(fd, false, &ms);
	for (size_t i = 0; i < BENCH_REPEAT; i++) {
		t0 = now_ms();
		if (mail_view_sync(v, true, &cb, NULL, err, sizeof(err)) !=
		    MAIL_OK)
			die(err);
		s[i] = now_ms() - t0;
	}
	report("sync, nothing changed", s, BENCH_REPEAT);

	before = log_size(fd);
	for (size_t i = 0; i < BENCH_REPEAT; i++) {
		size_t seq = (n / 2 + i * 7) % n;

		t0 = now_ms();
		if (mail_view_store(v, seq, MAIL_STORE_ADD, MAIL_FLAGGED, 0,
				    err, sizeof(err)) != MAIL_OK)
			die(err);
		s[i] = now_ms() - t0;
	}
	report("STORE +FLAGS \\Flagged (rename+2 fsync)", s, BENCH_REPEAT);
	printf("  %-44s %9.1f bytes per STORE\n", "index growth",
	       (double)(log_size(fd) - before) / BENCH_REPEAT);
	for (size_t i = 0; i < BENCH_REPEAT; i++) {
		size_t seq = (n / 3 + i * 5) % n;
		int bit = mail_view_keyword_bit(v, "$Bench", true);

		t0 = now_ms();
		if (mail_view_store(v, seq, MAIL_STORE_ADD, 0,
				    (uint64_t)1 << bit, err,
				    sizeof(err)) != MAIL_OK)
			die(err);
		s[i] = now_ms() - t0;
	}
	report("STORE +FLAGS $Bench (keyword: 1 fsync)", s, BENCH_REPEAT);

	for (size_t i = 0; i < BENCH_REPEAT; i++) {
		mail_view_store(v, (n / 4 + i) % n, MAIL_STORE_ADD,
				MAIL_ANSWERED, 0, err, sizeof(err));
		t0 = now_ms();
		if (mail_view_sync(w, true, &cb, NULL, err, sizeof(err)) !=
		    MAIL_OK)
			die(err);
		s[i] = now_ms() - t0;
	}
	report("sync of another view after one STORE", s, BENCH_REPEAT);

	for (size_t i = 0; i < BENCH_REPEAT; i++) {
		const char *why;
		char name[256];
		int e;
		struct maildir_delivery *d = maildir_delivery_begin(fd, &why);

		if (d == NULL ||
		    maildir_delivery_write(d, "Subject: x\n\nx\n", 14, &why) <
			0 ||
		    maildir_delivery_commit(&d, name, sizeof(name), &e, &why) <
			0)
			die("deliver");
		t0 = now_ms();
		if (mail_view_sync(w, true, &cb, NULL, err, sizeof(err)) !=
		    MAIL_OK)
			die(err);
		s[i] = now_ms() - t0;
	}
	report("sync after one SMTP delivery (rescan)", s, BENCH_REPEAT);

	for (size_t i = 0; i < BENCH_REPEAT; i++) {
		struct mail_append *a;
		uint32_t uidv, uid;

		t0 = now_ms();
		if (mail_append_begin(fd, &a, err, sizeof(err)) != MAIL_OK ||
		    mail_append_write(a, "Subject: y\r\n\r\ny\r\n", 17, err,
				      sizeof(err)) != MAIL_OK ||
		    mail_append_commit(&a, MAIL_SEEN, NULL, 0, 0, &uidv, &uid,
				       err, sizeof(err)) != MAIL_OK)
			die(err);
		s[i] = now_ms() - t0;
	}
	report("APPEND (delivery + index, 4 fsync)", s, BENCH_REPEAT);

	for (size_t i = 0; i < BENCH_REPEAT; i++) {
		mail_view_sync(v, true, &cb, NULL, err, sizeof(err));
		mail_view_store(v, i, MAIL_STORE_ADD, MAIL_DELETED, 0, err,
				sizeof(err));
		t0 = now_ms();
		if (mail_view_expunge(v, NULL, 0, &cb, NULL, err,
				      sizeof(err)) != MAIL_OK)
			die(err);
		s[i] = now_ms() - t0;
	}
	report("EXPUNGE of one message", s, BENCH_REPEAT);
	printf("  %-44s %lld bytes\n", "index size at the end",
	       (long long)log_size(fd));
	mail_view_close(&v);
	mail_view_close(&w);
	close(fd);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	return system(cmd) == 0 ? 0 : 1;
}
