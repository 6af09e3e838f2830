#include "gitgate/core/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static enum log_level log_level = LOG_LEVEL_INFO;
static enum log_format log_format = LOG_FORMAT_TEXT;

void log_set_level(enum log_level level)
{
	log_level = level;
}

void log_set_format(enum log_format format)
{
	log_format = format;
}

/* msg as a JSON string body: it holds printable ASCII only (log_vemit
 * replaced the rest), so only the quote and the backslash need escaping. */
static void json_escape(char *dst, size_t dstsz, const char *msg)
{
	size_t o = 0;

	for (; *msg && o + 3 < dstsz; msg++) {
		if (*msg == '"' || *msg == '\\')
			dst[o++] = '\\';
		dst[o++] = *msg;
	}
	dst[o] = '\0';
}

static void emit_json(const char *stamp, const char *tag, const char *msg,
		      const char *why)
{
	char text[2 * 1024 + 512];
	char line[sizeof(text) + 64];

	if (why)
		snprintf(line, sizeof(line), "%s: %s", msg, why);
	else
		snprintf(line, sizeof(line), "%s", msg);
	json_escape(text, sizeof(text), line);
	fprintf(stderr, "{\"time\":\"%s\",\"level\":\"%s\",\"msg\":\"%s\"}\n",
		stamp, tag, text);
}

/* One fprintf per line so lines from different threads do not interleave
 * (stdio locks the stream for the duration of one call). */
static void log_vemit(const char *tag, int with_errno, const char *fmt,
		      va_list ap) __attribute__((format(printf, 3, 0)));

static void log_vemit(const char *tag, int with_errno, const char *fmt,
		      va_list ap)
{
	char msg[1024];
	char stamp[32];
	struct timespec ts;
	struct tm tm;
	int saved = errno;
	size_t i;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	for (i = 0; msg[i]; i++)
		if ((unsigned char)msg[i] < 0x20 || (unsigned char)msg[i] >= 0x7f)
			msg[i] = '?';
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (log_format == LOG_FORMAT_JSON)
		emit_json(stamp, tag, msg, with_errno ? strerror(saved) : NULL);
	else if (with_errno)
		fprintf(stderr, "%s gitgate[%s]: %s: %s\n", stamp, tag, msg,
			strerror(saved));
	else
		fprintf(stderr, "%s gitgate[%s]: %s\n", stamp, tag, msg);
}

#define LOG_BODY(level, tag, with_errno)                                       \
	do {                                                                   \
		va_list ap;                                                    \
		if (log_level < (level))                                       \
			return;                                                \
		va_start(ap, fmt);                                             \
		log_vemit(tag, with_errno, fmt, ap);                           \
		va_end(ap);                                                    \
	} while (0)

void log_warn(const char *fmt, ...)
{
	LOG_BODY(LOG_LEVEL_WARN, "warn", 1);
}

void log_warnx(const char *fmt, ...)
{
	LOG_BODY(LOG_LEVEL_WARN, "warn", 0);
}

void log_info(const char *fmt, ...)
{
	LOG_BODY(LOG_LEVEL_INFO, "info", 0);
}

void log_debug(const char *fmt, ...)
{
	LOG_BODY(LOG_LEVEL_DEBUG, "debug", 0);
}
