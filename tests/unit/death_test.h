/*
 * Death tests for POSTD_ASSERT(): run a function in a forked child and
 * report how the child ended and what it wrote to stderr, so a test can
 * check that a broken promise aborts (SIGABRT) with its log line.
 */
#ifndef POSTD_TEST_DEATH_H
#define POSTD_TEST_DEATH_H

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/*
 * Runs fn(arg) in a child with stderr sent to a pipe. Returns the child's
 * wait status; its stderr (up to out_size - 1 bytes) is in out. A child
 * whose fn returns exits with status 0.
 */
static inline int death_run(void (*fn)(void *), void *arg, char *out,
			    size_t out_size)
{
	int fds[2], status = 0;
	size_t len = 0;
	ssize_t n;
	pid_t pid;

	if (pipe(fds) < 0)
		return -1;
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		close(fds[0]);
		dup2(fds[1], STDERR_FILENO);
		fn(arg);
		_exit(0);
	}
	close(fds[1]);
	while (len + 1 < out_size &&
	       (n = read(fds[0], out + len, out_size - 1 - len)) > 0)
		len += (size_t)n;
	out[len] = '\0';
	close(fds[0]);
	if (waitpid(pid, &status, 0) != pid)
		return -1;
	return status;
}

/* True if the child was killed by SIGABRT (a POSTD_ASSERT() failed). */
static inline int death_by_abort(int status)
{
	return status != -1 && WIFSIGNALED(status) &&
	       WTERMSIG(status) == SIGABRT;
}

#endif
