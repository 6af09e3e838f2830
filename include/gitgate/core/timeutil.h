/*
 * timeutil.h - RFC 3339 timestamps <-> Unix seconds, without the C
 * library's time zone machinery (no TZ, no locale, thread-safe).
 *
 * Accepted (RFC 3339 section 5.6 "date-time"):
 *   YYYY-MM-DD ('T' | 't' | ' ') hh:mm:ss [ '.' 1*DIGIT ] ('Z' | 'z' | ±hh:mm)
 * Years 0000-9999; day checked against the month (Gregorian leap years);
 * hour 00-23, minute 00-59; second 00-60, where 60 (a leap second) is read
 * as 59 because Unix time has no leap seconds; offset hours 00-23, minutes
 * 00-59 ("-00:00" is accepted as UTC). The fraction is dropped, which
 * rounds toward the past: a "not before" is never honoured early and an
 * expiry never late.
 */
#ifndef GITGATE_TIMEUTIL_H
#define GITGATE_TIMEUTIL_H

#include <stddef.h>
#include <stdint.h>

#include "gitgate/core/err.h"

/* Longest text timeutil_parse_rfc3339 looks at (long fractions included). */
#define TIMEUTIL_RFC3339_MAX 64
/* "YYYY-MM-DDThh:mm:ssZ" plus NUL. */
#define TIMEUTIL_RFC3339_SIZE 21

/* Parse text (len bytes, no NUL needed) into Unix seconds.
 * GG_EINVAL "invalid RFC 3339 time" plus a detail on failure. */
int timeutil_parse_rfc3339(int64_t *out, const char *text, size_t len,
			   struct gg_err *err);

/* Format t as "YYYY-MM-DDThh:mm:ssZ" (UTC, no fraction) into out
 * (outsz >= TIMEUTIL_RFC3339_SIZE). GG_EINVAL if t is outside years
 * 0000-9999. */
int timeutil_format_rfc3339(char *out, size_t outsz, int64_t t,
			    struct gg_err *err);

/* The current time, Unix seconds (CLOCK_REALTIME). */
int64_t timeutil_now(void);

/* The same in milliseconds (audit times, token expiry). */
int64_t timeutil_now_ms(void);

/* Milliseconds on CLOCK_MONOTONIC, for deadlines and settling times:
 * immune to the wall clock being set. */
int64_t timeutil_mono_ms(void);

/* The same in microseconds, for short durations (metrics). */
int64_t timeutil_mono_us(void);

#endif
