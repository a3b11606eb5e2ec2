/*
 * SRS reverse (src/lib/srs.c): the local part of an RCPT TO at
 * srs_domain is hostile input. Whatever it is, srs_reverse stays inside
 * its buffers and, when it accepts, gives a bounded address with an '@'.
 * The same bytes as a sender go through srs_forward: an SRS0 it makes
 * must decode back to exactly that sender (the round trip a bounce
 * takes). The first input byte picks the day the check runs on.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fuzz_util.h"
#include "lib/srs.h"

#define FUZZ_NOW 1700000000
#define FUZZ_DOMAIN "fwd.example"

static struct srs_secrets fuzz_srs;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *error;
	static const char keys[] = "fuzz-key\nold-key\n";

	(void)argc;
	(void)argv;
	if (srs_secrets_parse(&fuzz_srs, keys, sizeof(keys) - 1, &error) < 0)
		abort();
	return 0;
}

static void fuzz_reverse(const char *p, size_t len, time_t now)
{
	char out[SRS_MAX_ADDRESS];
	enum srs_result r =
	    srs_reverse(&fuzz_srs, p, len, now, out, sizeof(out));

	if (r != SRS_OK) {
		FUZZ_CHECK(out[0] == '\0');
		return;
	}
	FUZZ_CHECK(memchr(out, '\0', sizeof(out)) != NULL);
	FUZZ_CHECK(strchr(out, '@') != NULL);
}

static void fuzz_round_trip(const char *sender, time_t now)
{
	char fwd[SRS_MAX_ADDRESS], back[SRS_MAX_ADDRESS];
	const char *at;

	if (srs_forward(&fuzz_srs, sender, FUZZ_DOMAIN, now, fwd,
			sizeof(fwd)) != SRS_OK)
		return;
	/* A sender already at the SRS domain is passed on unchanged, not
	 * rewritten, so there is no round trip to check. */
	if (strcmp(fwd, sender) == 0)
		return;
	at = strrchr(fwd, '@');
	FUZZ_CHECK(at != NULL);
	if (strcasecmp(at + 1, FUZZ_DOMAIN) != 0 ||
	    strncmp(fwd, "SRS0=", 5) != 0)
		return;
	FUZZ_CHECK((size_t)(at - fwd) <= SRS_MAX_LOCALPART);
	FUZZ_CHECK(srs_reverse(&fuzz_srs, fwd, (size_t)(at - fwd), now, back,
			       sizeof(back)) == SRS_OK);
	FUZZ_CHECK(strcmp(back, sender) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char text[SRS_MAX_ADDRESS + 64];
	time_t now;

	if (size == 0)
		return 0;
	now = FUZZ_NOW + (time_t)(data[0] % 64) * 86400 - 16 * 86400;
	data++;
	size--;
	fuzz_reverse((const char *)data, size, now);
	if (size >= sizeof(text) || memchr(data, '\0', size) != NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	fuzz_round_trip(text, now);
	return 0;
}
