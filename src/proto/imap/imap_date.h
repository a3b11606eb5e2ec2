/*
 * IMAP dates (RFC 9051 9): "date" for SEARCH ("1-Feb-1994") and
 * "date-time" for INTERNALDATE and APPEND ("01-Feb-1994 21:12:00 +0100").
 * Pure arithmetic on the proleptic Gregorian calendar: no dependence on
 * the process's time zone or locale.
 */
#ifndef POSTD_IMAP_DATE_H
#define POSTD_IMAP_DATE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* "dd-Mon-yyyy hh:mm:ss +zzzz" and its NUL. */
#define IMAP_DATETIME_SIZE 27

/*
 * date-text = date-day "-" date-month "-" date-year, s[0..len) without
 * quotes (the caller passes the astring's contents). *day_r is the day as
 * days since 1970-01-01 (negative before). Returns 0, or -1 for anything
 * else, including a day the month does not have.
 */
int imap_date_parse(const char *s, size_t len, int64_t *day_r);

/*
 * date-time without its quotes: the day as " 1" or "01" (and, leniently,
 * "1"), a time and a zone. *t_r is the instant (UTC seconds), *zone_r the
 * zone in minutes east of UTC (+0100 is 60). Returns 0 or -1.
 */
int imap_datetime_parse(const char *s, size_t len, time_t *t_r, int *zone_r);

/* Writes t as seen in zone (minutes east of UTC) into out, as
 * "01-Feb-1994 21:12:00 +0100". Returns 0, or -1 when out is too small or
 * zone is beyond +-23:59. */
int imap_datetime_format(time_t t, int zone, char *out, size_t size);

/* The day (days since 1970-01-01) that instant t falls on in zone
 * (minutes east of UTC): SEARCH BEFORE/ON/SINCE compare such days. */
int64_t imap_day_of(time_t t, int zone);

/* Days since 1970-01-01 of a civil date (month 1-12); no range check. */
int64_t imap_days_from_civil(int64_t year, unsigned month, unsigned day);

#endif
