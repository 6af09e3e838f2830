/*
 * timeutil.c - RFC 3339 parse/format with a proleptic Gregorian calendar.
 *
 * Day counting uses Howard Hinnant's days_from_civil / civil_from_days
 * (public domain), which is exact for every year we accept, so no libc time
 * function (timegm, gmtime_r) and no TZ setting is involved.
 */
#include "gitgate/core/timeutil.h"

#include <stdbool.h>
#include <stdio.h>
#include <time.h>

/* Seconds from 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z to the epoch. */
#define MIN_TIME INT64_C(-62167219200)
#define MAX_TIME INT64_C(253402300799)

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	int64_t era, doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
	*m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

static bool is_leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned days_in_month(int64_t y, unsigned m)
{
	static const unsigned days[12] = {31, 28, 31, 30, 31, 30,
					  31, 31, 30, 31, 30, 31};

	return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

/* Read exactly n digits at *p (bounded by end); advance on success. */
static bool digits(unsigned *out, const char **p, const char *end, int n)
{
	unsigned v = 0;
	int i;

	if (end - *p < n)
		return false;
	for (i = 0; i < n; i++) {
		if ((*p)[i] < '0' || (*p)[i] > '9')
			return false;
		v = v * 10 + (unsigned)((*p)[i] - '0');
	}
	*p += n;
	*out = v;
	return true;
}

static bool expect(const char **p, const char *end, char c)
{
	if (*p >= end || **p != c)
		return false;
	(*p)++;
	return true;
}

static int invalid(struct gg_err *err, const char *why)
{
	return gg_err_set(err, GG_EINVAL, "invalid RFC 3339 time: %s", why);
}

/* Parse [ "." 1*DIGIT ] ( "Z" | "z" | ("+" / "-") hh ":" mm ) into the
 * offset in seconds east of UTC; must consume the rest of the text. */
static int parse_tail(int64_t *offset, const char *p, const char *end,
		      struct gg_err *err)
{
	unsigned oh, om;
	int sign;

	if (p < end && *p == '.') {
		p++;
		if (p >= end || *p < '0' || *p > '9')
			return invalid(err, "empty fraction");
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	}
	if (p >= end)
		return invalid(err, "missing time zone");
	if (*p == 'Z' || *p == 'z') {
		*offset = 0;
		p++;
	} else if (*p == '+' || *p == '-') {
		sign = *p == '-' ? -1 : 1;
		p++;
		if (!digits(&oh, &p, end, 2) || !expect(&p, end, ':') ||
		    !digits(&om, &p, end, 2))
			return invalid(err, "bad time zone offset");
		if (oh > 23 || om > 59)
			return invalid(err, "time zone offset out of range");
		*offset = sign * (int64_t)(oh * 3600 + om * 60);
	} else {
		return invalid(err, "bad time zone");
	}
	if (p != end)
		return invalid(err, "trailing characters");
	return GG_OK;
}

int timeutil_parse_rfc3339(int64_t *out, const char *text, size_t len,
			   struct gg_err *err)
{
	const char *p = text, *end = text + len;
	unsigned y, mo, d, h, mi, s;
	int64_t offset = 0, t;
	int rc;

	if (len > TIMEUTIL_RFC3339_MAX)
		return invalid(err, "too long");
	if (!digits(&y, &p, end, 4) || !expect(&p, end, '-') ||
	    !digits(&mo, &p, end, 2) || !expect(&p, end, '-') ||
	    !digits(&d, &p, end, 2))
		return invalid(err, "bad date");
	if (p >= end || (*p != 'T' && *p != 't' && *p != ' '))
		return invalid(err, "bad date/time separator");
	p++;
	if (!digits(&h, &p, end, 2) || !expect(&p, end, ':') ||
	    !digits(&mi, &p, end, 2) || !expect(&p, end, ':') ||
	    !digits(&s, &p, end, 2))
		return invalid(err, "bad time of day");
	if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo))
		return invalid(err, "no such date");
	if (h > 23 || mi > 59 || s > 60)
		return invalid(err, "no such time of day");
	if (s == 60)
		s = 59; /* leap second: Unix time repeats :59 */
	rc = parse_tail(&offset, p, end, err);
	if (rc != GG_OK)
		return rc;
	t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s;
	t -= offset;
	/* An offset can push year 0000 or 9999 out of the range we format;
	 * refuse those so every parsed time can be printed back. */
	if (t < MIN_TIME || t > MAX_TIME)
		return invalid(err, "outside years 0000-9999 in UTC");
	*out = t;
	return GG_OK;
}

int timeutil_format_rfc3339(char *out, size_t outsz, int64_t t,
			    struct gg_err *err)
{
	int64_t days, secs, y;
	unsigned m, d;

	if (t < MIN_TIME || t > MAX_TIME)
		return gg_err_set(err, GG_EINVAL,
				  "time outside years 0000-9999");
	if (outsz < TIMEUTIL_RFC3339_SIZE)
		return gg_err_set(err, GG_ELIMIT, "time buffer too small");
	/* Floor division, so times before 1970 land on the right day. */
	days = t / 86400 - (t % 86400 < 0);
	secs = t - days * 86400;
	civil_from_days(days, &y, &m, &d);
	snprintf(out, outsz, "%04d-%02u-%02uT%02d:%02d:%02dZ", (int)y, m, d,
		 (int)(secs / 3600), (int)(secs / 60 % 60), (int)(secs % 60));
	return GG_OK;
}

int64_t timeutil_now(void)
{
	struct timespec ts;

	/* CLOCK_REALTIME cannot fail on Linux; 1970 would make every token
	 * look not-yet-valid, which fails closed. */
	if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
		return 0;
	return (int64_t)ts.tv_sec;
}

static int64_t clock_ms(clockid_t clock)
{
	struct timespec ts;

	if (clock_gettime(clock, &ts) != 0)
		return 0;
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t timeutil_now_ms(void)
{
	return clock_ms(CLOCK_REALTIME);
}

int64_t timeutil_mono_ms(void)
{
	return clock_ms(CLOCK_MONOTONIC);
}

int64_t timeutil_mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
