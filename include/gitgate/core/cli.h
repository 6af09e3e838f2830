/*
 * cli.h - subcommands and the helpers that give every one of them the same
 * behaviour: --help prints usage to stdout and exits 0; bad usage prints one
 * line plus usage to stderr and exits 2; runtime failures print
 * "gitgate: <what failed>: <why>" and exit 1.
 */
#ifndef GITGATE_CLI_H
#define GITGATE_CLI_H

#include <getopt.h>
#include <stdint.h>

enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

/* Each subcommand gets argv with argv[0] = subcommand name; returns an exit
 * status. */
int cmd_serve(int argc, char **argv);
int cmd_keygen(int argc, char **argv);
int cmd_mint(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_revoke(int argc, char **argv);
int cmd_audit(int argc, char **argv);
int cmd_policy(int argc, char **argv);
int cmd_doctor(int argc, char **argv);

/* Print "gitgate: <message>" and the usage text to stderr; returns
 * CLI_USAGE. Callers start the message with the subcommand ("mint: ...").
 */
int cli_usage_error(const char *usage, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* After getopt_long (with opterr = 0 and a leading ':' in optstring)
 * returned '?' or ':': print "gitgate: <cmd>: unknown option '-x'" or
 * "... option '--key' needs a value" plus usage; returns CLI_USAGE. */
int cli_bad_option(const char *usage, const char *cmd, int c, int argc,
		   char **argv);

/* The long name of getopt_long's value c in opts, without the dashes
 * ("since"), or "?" if none: messages name an option this way rather than
 * echo argv[optind - 1], which after "--since 1h" is the value. Option
 * errors read "<cmd>: --<name>: <why>". */
const char *cli_option_name(const struct option *opts, int c);

/* Print "gitgate: <what>: <why>" to stderr; returns CLI_FAIL. */
int cli_fail(const char *what, const char *why);

/* Parse DUR: <n>s|m|h|d into seconds; 0 on success, -1 if malformed or
 * out of range (n >= 1). */
int cli_parse_duration(int64_t *out, const char *text);

/* Standard option handling shared by subcommands: true when argv holds
 * --help or -h (caller prints usage to stdout and exits 0). */
int cli_wants_help(int argc, char **argv);

#endif
