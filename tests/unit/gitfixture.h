/*
 * gitfixture.h - shared by the Check suites that build real repositories
 * with the git CLI (test_mirror.c, test_push.c): run shell commands in the
 * test's scratch directory, make and remove that directory, and the
 * sanitizer settings those suites need.
 *
 * Include after declaring the suite's scratch directory:
 *     static char tmp[1024];
 *     #include "gitfixture.h"
 *
 * LeakSanitizer: two leaks inside libgit2 1.5.1 as packaged (Debian 12),
 * not in gitgate, are ignored; both match only allocations libgit2 makes
 * internally, so nothing of ours can hide behind them:
 *  - the pcre2 match data of regex matches it runs (pcre2 10.42); mirror.c
 *    avoids the path that hit it on every fetch, this covers the rest
 *    (also in tests/lsan.supp);
 *  - 64 bytes when an ancestry walk (git_graph_descendant_of) stops at a
 *    commit missing from the repository (error path of the merge-base
 *    search), which mirror_is_ancestor hits on a stale mirror.
 * The second one is matched by function name, which needs full stacks:
 * libgit2 has no frame pointers, so the fast unwinder stops inside it.
 * Only read by ASan builds (ASAN_OPTIONS still overrides).
 */
#ifndef GITGATE_TEST_GITFIXTURE_H
#define GITGATE_TEST_GITFIXTURE_H

#include <check.h>
#include <git2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "fast_unwind_on_malloc=0";
}

const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
	return "leak:libpcre2-8.so\n"
	       "leak:git_graph_reachable_from_any\n";
}

/* Run a shell command in tmp; fail the test unless it exits 0. */
static void run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void run(const char *fmt, ...)
{
	char cmd[8192], full[9300];
	va_list ap;
	int n, st;

	va_start(ap, fmt);
	n = vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	ck_assert(n > 0 && (size_t)n < sizeof(cmd));
	n = snprintf(full, sizeof(full), "cd '%s' && { %s\n}", tmp, cmd);
	ck_assert(n > 0 && (size_t)n < sizeof(full));
	st = system(full);
	ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
		      "command failed (status %d): %s", st, cmd);
}

/* Run a shell command in tmp and capture its stdout (trailing newline
 * dropped); fail the test unless it exits 0. */
static void capture(char *out, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void capture(char *out, size_t size, const char *fmt, ...)
{
	char cmd[8192], full[9300];
	size_t len = 0, n;
	va_list ap;
	FILE *f;
	int st;

	va_start(ap, fmt);
	n = (size_t)vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	ck_assert(n > 0 && n < sizeof(cmd));
	n = (size_t)snprintf(full, sizeof(full), "cd '%s' && { %s\n}", tmp,
			     cmd);
	ck_assert(n < sizeof(full));
	f = popen(full, "r");
	ck_assert_ptr_nonnull(f);
	for (;;) {
		n = fread(out + len, 1, size - 1 - len, f);
		if (n == 0)
			break;
		len += n;
	}
	out[len] = '\0';
	st = pclose(f);
	ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
		      "command failed (status %d): %s", st, cmd);
	ck_assert_msg(len < size - 1, "output too long: %s", cmd);
	while (len > 0 && out[len - 1] == '\n')
		out[--len] = '\0';
}

/*
 * The helpers below are static inline: a suite including this header without
 * using one of them must still build without an unused-function warning.
 */

/* Make a fresh scratch directory /tmp/gg-test-<name>-XXXXXX in tmp and point
 * HOME at it, so that neither git nor libgit2 reads the user's config. */
static inline void gitfixture_scratch(const char *name)
{
	snprintf(tmp, sizeof(tmp), "/tmp/gg-test-%s-XXXXXX", name);
	ck_assert_ptr_nonnull(mkdtemp(tmp));
	ck_assert_int_eq(setenv("HOME", tmp, 1), 0);
}

/* Remove the scratch directory; a failure is only reported (teardown). */
static inline void gitfixture_remove_scratch(void)
{
	char cmd[1200];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
	if (tmp[0] && system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", tmp);
}

/* The object id (40 hex) that what names in the repository at gitdir
 * (absolute, or relative to tmp). */
static inline void gitfixture_rev(char out[41], const char *gitdir,
				  const char *what)
{
	char buf[256];

	capture(buf, sizeof(buf), "git --git-dir='%s' rev-parse --verify '%s'",
		gitdir, what);
	ck_assert_uint_eq(strlen(buf), 40);
	memcpy(out, buf, 41);
}

/* Run the suite with fixed git identities and dates (object ids are the
 * same on every run) and no GIT_* variables leaking in from the caller;
 * returns the process exit status. */
static int gitfixture_main(Suite *suite)
{
	SRunner *sr = srunner_create(suite);
	int failed;

	setenv("GIT_AUTHOR_NAME", "Test", 1);
	setenv("GIT_AUTHOR_EMAIL", "test@example.com", 1);
	setenv("GIT_COMMITTER_NAME", "Test", 1);
	setenv("GIT_COMMITTER_EMAIL", "test@example.com", 1);
	setenv("GIT_AUTHOR_DATE", "2024-01-01T00:00:00Z", 1);
	setenv("GIT_COMMITTER_DATE", "2024-01-01T00:00:00Z", 1);
	setenv("GIT_CONFIG_NOSYSTEM", "1", 1);
	setenv("GIT_TERMINAL_PROMPT", "0", 1);
	unsetenv("GIT_DIR");
	unsetenv("GIT_WORK_TREE");
	unsetenv("GIT_INDEX_FILE");
	unsetenv("GIT_OBJECT_DIRECTORY");
	unsetenv("GIT_ALTERNATE_OBJECT_DIRECTORIES");
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	/* Undo every mirror_global_init (one per test under CK_FORK=no). */
	while (git_libgit2_shutdown() > 0)
		;
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

#endif
