#include "gitgate/core/err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void gg_err_init(struct gg_err *err)
{
	if (!err)
		return;
	err->code = GG_OK;
	err->msg[0] = '\0';
}

static void scrub(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			*s = '?';
}

static int err_vset(struct gg_err *err, int code, int with_errno,
		    const char *fmt, va_list ap) __attribute__((format(printf, 4, 0)));

static int err_vset(struct gg_err *err, int code, int with_errno,
		    const char *fmt, va_list ap)
{
	int saved = errno;
	size_t len;

	if (!err || err->code != GG_OK)
		return code;
	err->code = code;
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	if (with_errno) {
		len = strlen(err->msg);
		snprintf(err->msg + len, sizeof(err->msg) - len, ": %s",
			 strerror(saved));
	}
	scrub(err->msg);
	return code;
}

int gg_err_set(struct gg_err *err, int code, const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = err_vset(err, code, 0, fmt, ap);
	va_end(ap);
	return ret;
}

int gg_err_errno(struct gg_err *err, int code, const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = err_vset(err, code, 1, fmt, ap);
	va_end(ap);
	return ret;
}

void gg_err_sanitize(char *dst, size_t dstsz, const void *src, size_t len)
{
	const unsigned char *s = src;
	size_t i, n;

	if (dstsz == 0)
		return;
	n = len < dstsz - 1 ? len : dstsz - 1;
	for (i = 0; i < n; i++)
		dst[i] = (s[i] < 0x20 || s[i] >= 0x7f) ? '?' : (char)s[i];
	dst[n] = '\0';
	if (len > dstsz - 1 && dstsz > 4)
		memcpy(dst + dstsz - 4, "...", 4);
}
