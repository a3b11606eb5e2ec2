/*
 * Runtime checks of what a comment promises, like Dovecot's i_assert():
 * unlike fatal(), which is for a setup failure, a failed POSTD_ASSERT()
 * is a bug in postd. It logs "assertion failed: FILE:LINE: EXPR" as an
 * error and calls abort(), so a debugger, a core dump or the sanitizer
 * report shows where. No input from a peer or the disk may reach one:
 * those are refused or returned as errors (doc/hacking.md, "Two tiers of
 * errors").
 *
 * On in every build type, release included: each check is a comparison
 * or two on a path that does I/O anyway, and what they guard (mail
 * removed outside POP3 UPDATE, a command run by the wrong handler) does
 * more harm running on than the restart of one worker costs.
 */
#ifndef POSTD_ASSERT_H
#define POSTD_ASSERT_H

#define POSTD_ASSERT(expr)                                                     \
	((expr) ? (void)0 : postd_assert_failed(__FILE__, __LINE__, #expr))

/* Logs the failed check and aborts: what POSTD_ASSERT() calls. */
void postd_assert_failed(const char *file, int line, const char *expr)
    __attribute__((noreturn, cold));

/* The number of elements of an array (not of a pointer). */
#define POSTD_N_ELEMENTS(a) (sizeof(a) / sizeof((a)[0]))

#endif
