#include "gitgate/core/cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_usage_error(const char *usage, const char *fmt, ...)
{
	va_list ap;

	fputs("gitgate: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fputs(usage, stderr);
	return CLI_USAGE;
}

int cli_bad_option(const char *usage, const char *cmd, int c, int argc,
		   char **argv)
{
	const char *arg = optind - 1 < argc ? argv[optind - 1] : "?";

	if (c == ':')
		return cli_usage_error(usage, "%s: option '%s' needs a value",
				       cmd, arg);
	/* A short option bundled with others ("-xk") is named alone. */
	if (optopt > 0 && optopt < 256)
		return cli_usage_error(usage, "%s: unknown option '-%c'", cmd,
				       optopt);
	return cli_usage_error(usage, "%s: unknown option '%s'", cmd, arg);
}

const char *cli_option_name(const struct option *opts, int c)
{
	size_t i;

	for (i = 0; opts && opts[i].name; i++)
		if (!opts[i].flag && opts[i].val == c)
			return opts[i].name;
	return "?";
}

int cli_fail(const char *what, const char *why)
{
	fprintf(stderr, "gitgate: %s: %s\n", what, why);
	return CLI_FAIL;
}

int cli_wants_help(int argc, char **argv)
{
	int i;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			return 0;
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
			return 1;
	}
	return 0;
}

int cli_parse_duration(int64_t *out, const char *text)
{
	static const struct {
		char unit;
		int64_t secs;
	} units[] = { { 's', 1 }, { 'm', 60 }, { 'h', 3600 }, { 'd', 86400 } };
	/* 100 years in seconds: anything larger is a typo, not a duration. */
	const int64_t max = (int64_t)100 * 365 * 86400;
	const char *p = text;
	int64_t n = 0;
	size_t i;

	if (!text || *text < '0' || *text > '9')
		return -1;
	while (*p >= '0' && *p <= '9') {
		n = n * 10 + (*p - '0');
		if (n > max)
			return -1;
		p++;
	}
	if (n < 1 || p[0] == '\0' || p[1] != '\0')
		return -1;
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (*p == units[i].unit) {
			if (n > max / units[i].secs)
				return -1;
			*out = n * units[i].secs;
			return 0;
		}
	}
	return -1;
}
