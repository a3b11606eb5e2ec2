/* Unit tests for IMAP date and date-time (RFC 9051 9). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "proto/imap/imap_date.h"

static void test_date(void **state)
{
	static const char *bad[] = {
	    "",
	    "1-Feb-94",
	    "0-Feb-1994",
	    "32-Jan-1994",
	    "29-Feb-1900",
	    "30-Feb-2000",
	    "1-Fev-1994",
	    "1 Feb 1994",
	    "001-Feb-1994",
	    "1-Feb-1994x",
	    " 1-Feb-1994",
	    "1-Feb-19a4",
	    "31-Apr-2020",
	    "1-February-1994",
	};
	int64_t day;

	(void)state;
	assert_int_equal(imap_date_parse("1-Jan-1970", 10, &day), 0);
	assert_int_equal(day, 0);
	/* RFC 9051's SEARCH example date */
	assert_int_equal(imap_date_parse("1-Feb-1994", 10, &day), 0);
	assert_int_equal(day, 8797);
	assert_int_equal(imap_date_parse("01-feb-1994", 11, &day), 0);
	assert_int_equal(day, 8797);
	assert_int_equal(imap_date_parse("29-Feb-2000", 11, &day), 0);
	assert_int_equal(day, 11016);
	assert_int_equal(imap_date_parse("31-Dec-1969", 11, &day), 0);
	assert_int_equal(day, -1);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (imap_date_parse(bad[i], strlen(bad[i]), &day) == 0) {
			print_error("accepted \"%s\"\n", bad[i]);
			fail();
		}
	}
}

static void test_datetime(void **state)
{
	static const char *bad[] = {
	    "17-Jul-1996 02:44:25",	   "17-Jul-1996 02:44:25 -070",
	    "17-Jul-1996 24:00:00 -0700",  "17-Jul-1996 02:60:25 -0700",
	    "17-Jul-1996 02:44:61 -0700",  "17-Jul-1996 02:44:25 -0760",
	    "17-Jul-1996 02:44:25 *0700",  "17-Jul-1996  02:44:25 -0700",
	    "17-Jul-1996 02:44:25 -0700 ", "17-Jul-1996 2:44:25 -0700",
	};
	time_t t;
	int zone;

	(void)state;
	/* RFC 9051's APPEND example */
	assert_int_equal(
	    imap_datetime_parse("17-Jul-1996 02:44:25 -0700", 26, &t, &zone),
	    0);
	assert_int_equal(t, 837596665);
	assert_int_equal(zone, -420);
	assert_int_equal(
	    imap_datetime_parse(" 1-Feb-1994 21:12:00 +0100", 26, &t, &zone),
	    0);
	assert_int_equal(zone, 60);
	assert_int_equal(t, 8797 * 86400 + 20 * 3600 + 12 * 60);
	assert_int_equal(
	    imap_datetime_parse("1-Feb-1994 21:12:00 +0100", 25, &t, &zone), 0);
	assert_int_equal(t, 8797 * 86400 + 20 * 3600 + 12 * 60);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (imap_datetime_parse(bad[i], strlen(bad[i]), &t, &zone) ==
		    0) {
			print_error("accepted \"%s\"\n", bad[i]);
			fail();
		}
	}
}

static void test_format(void **state)
{
	char out[IMAP_DATETIME_SIZE];
	time_t t;
	int zone;

	(void)state;
	assert_int_equal(
	    imap_datetime_format(837596665, -420, out, sizeof(out)), 0);
	assert_string_equal(out, "17-Jul-1996 02:44:25 -0700");
	assert_int_equal(imap_datetime_format(8797 * 86400 + 20 * 3600 + 720,
					      60, out, sizeof(out)),
			 0);
	assert_string_equal(out, "01-Feb-1994 21:12:00 +0100");
	assert_int_equal(imap_datetime_format(0, 0, out, sizeof(out)), 0);
	assert_string_equal(out, "01-Jan-1970 00:00:00 +0000");
	assert_int_equal(imap_datetime_format(-1, 0, out, sizeof(out)), 0);
	assert_string_equal(out, "31-Dec-1969 23:59:59 +0000");
	assert_int_equal(imap_datetime_format(0, -330, out, sizeof(out)), 0);
	assert_string_equal(out, "31-Dec-1969 18:30:00 -0530");
	assert_int_equal(imap_datetime_format(0, 0, out, sizeof(out) - 1), -1);
	assert_int_equal(imap_datetime_format(0, 24 * 60, out, sizeof(out)),
			 -1);
	/* what is written parses back to the same instant and zone */
	assert_int_equal(
	    imap_datetime_format(1700000000, 345, out, sizeof(out)), 0);
	assert_int_equal(imap_datetime_parse(out, strlen(out), &t, &zone), 0);
	assert_int_equal(t, 1700000000);
	assert_int_equal(zone, 345);
}

static void test_day_of(void **state)
{
	(void)state;
	assert_int_equal(imap_day_of(0, 0), 0);
	assert_int_equal(imap_day_of(-1, 0), -1);
	assert_int_equal(imap_day_of(86399, 0), 0);
	assert_int_equal(imap_day_of(86399, 1), 1);
	assert_int_equal(imap_day_of(0, -1), -1);
	assert_int_equal(imap_days_from_civil(2000, 3, 1), 11017);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_date),
	    cmocka_unit_test(test_datetime),
	    cmocka_unit_test(test_format),
	    cmocka_unit_test(test_day_of),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
