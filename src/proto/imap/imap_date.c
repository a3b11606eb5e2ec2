/*
 * IMAP date and date-time. The calendar arithmetic is Howard Hinnant's
 * days-from-civil algorithm, so that no libc time-zone state is involved
 * (timegm() is not standard, mktime() depends on TZ).
 */
#include "proto/imap/imap_date.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
				   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

static int parse_digits(const char **p, const char *end, size_t n,
			unsigned *v_r);
static int parse_day_month_year(const char **p, const char *end,
				bool allow_space, int64_t *day_r);
static unsigned days_in_month(int64_t year, unsigned month);
static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d);
static int64_t floor_div(int64_t a, int64_t b);

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;

	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

int64_t imap_days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe;
	unsigned doy;
	unsigned doe;

	y -= m <= 2;
	era = floor_div(y, 400);
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	int64_t era;
	unsigned doe;
	unsigned yoe;
	unsigned doy;
	unsigned mp;

	z += 719468;
	era = floor_div(z, 146097);
	doe = (unsigned)(z - era * 146097);
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static unsigned days_in_month(int64_t year, unsigned month)
{
	static const unsigned char len[12] = {31, 28, 31, 30, 31, 30,
					      31, 31, 30, 31, 30, 31};
	bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;

	return month == 2 && leap ? 29 : len[month - 1];
}

/* Exactly n digits. */
static int parse_digits(const char **p, const char *end, size_t n,
			unsigned *v_r)
{
	unsigned v = 0;

	if ((size_t)(end - *p) < n)
		return -1;
	for (size_t i = 0; i < n; i++) {
		char c = (*p)[i];

		if (c < '0' || c > '9')
			return -1;
		v = v * 10 + (unsigned)(c - '0');
	}
	*p += n;
	*v_r = v;
	return 0;
}

/* 1*2DIGIT (or SP DIGIT when allow_space) "-" Mon "-" 4DIGIT */
static int parse_day_month_year(const char **p, const char *end,
				bool allow_space, int64_t *day_r)
{
	const char *s = *p;
	unsigned day;
	unsigned year;
	unsigned month = 0;

	if (allow_space && s < end && *s == ' ')
		s++;
	if (parse_digits(&s, end, 2, &day) < 0 &&
	    parse_digits(&s, end, 1, &day) < 0)
		return -1;
	if (end - s < 5 || s[0] != '-' || s[4] != '-')
		return -1;
	for (unsigned i = 0; i < 12; i++) {
		if ((s[1] | 0x20) == (months[i][0] | 0x20) &&
		    (s[2] | 0x20) == months[i][1] &&
		    (s[3] | 0x20) == months[i][2])
			month = i + 1;
	}
	s += 5;
	if (month == 0 || parse_digits(&s, end, 4, &year) < 0)
		return -1;
	if (day < 1 || day > days_in_month(year, month))
		return -1;
	*day_r = imap_days_from_civil(year, month, day);
	*p = s;
	return 0;
}

int imap_date_parse(const char *s, size_t len, int64_t *day_r)
{
	const char *p = s;

	if (parse_day_month_year(&p, s + len, false, day_r) < 0)
		return -1;
	return p == s + len ? 0 : -1;
}

int imap_datetime_parse(const char *s, size_t len, time_t *t_r, int *zone_r)
{
	const char *p = s;
	const char *end = s + len;
	int64_t day;
	unsigned hh;
	unsigned mm;
	unsigned ss;
	unsigned zh;
	unsigned zm;
	char sign;

	if (parse_day_month_year(&p, end, true, &day) < 0)
		return -1;
	if (end - p != 15 || p[0] != ' ' || p[3] != ':' || p[6] != ':' ||
	    p[9] != ' ')
		return -1;
	sign = p[10];
	p++;
	if (parse_digits(&p, end, 2, &hh) < 0 || hh > 23)
		return -1;
	p++;
	if (parse_digits(&p, end, 2, &mm) < 0 || mm > 59)
		return -1;
	p++;
	/* 60: a leap second, as RFC 5322 allows */
	if (parse_digits(&p, end, 2, &ss) < 0 || ss > 60)
		return -1;
	p += 2;
	if ((sign != '+' && sign != '-') || parse_digits(&p, end, 2, &zh) < 0 ||
	    parse_digits(&p, end, 2, &zm) < 0 || zm > 59 || zh > 23)
		return -1;
	*zone_r = (int)(zh * 60 + zm) * (sign == '-' ? -1 : 1);
	*t_r = (time_t)(day * 86400 + hh * 3600 + mm * 60 + ss -
			(int64_t)*zone_r * 60);
	return 0;
}

int64_t imap_day_of(time_t t, int zone)
{
	return floor_div((int64_t)t + (int64_t)zone * 60, 86400);
}

int imap_datetime_format(time_t t, int zone, char *out, size_t size)
{
	int64_t local;
	int64_t secs;
	int64_t y;
	unsigned m;
	unsigned d;
	int n;
	int az = zone < 0 ? -zone : zone;

	if (zone <= -24 * 60 || zone >= 24 * 60)
		return -1;
	local = (int64_t)t + (int64_t)zone * 60;
	civil_from_days(floor_div(local, 86400), &y, &m, &d);
	secs = local - floor_div(local, 86400) * 86400;
	if (y < 0 || y > 9999)
		return -1;
	n = snprintf(out, size, "%02u-%s-%04lld %02u:%02u:%02u %c%02d%02d", d,
		     months[m - 1], (long long)y, (unsigned)(secs / 3600),
		     (unsigned)(secs / 60 % 60), (unsigned)(secs % 60),
		     zone < 0 ? '-' : '+', az / 60, az % 60);
	return n > 0 && (size_t)n < size ? 0 : -1;
}
