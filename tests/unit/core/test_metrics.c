/* test_metrics.c - the registry renders what was recorded, in valid
 * Prometheus text: fixed label sets (unknown values fold into "other"),
 * cumulative histogram buckets whose +Inf equals _count, and no sample
 * for a label value that never happened where the family is sparse. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gitgate/core/err.h"
#include "gitgate/core/metrics.h"

static char *render(void)
{
	struct gg_err err = GG_ERR_INIT;
	char *text = NULL;
	size_t len = 0;

	ck_assert_int_eq(metrics_render(&text, &len, &err), 0);
	ck_assert_uint_eq(strlen(text), len);
	return text;
}

/* The sample line "name{labels} value" must be present exactly. */
static void has(const char *text, const char *line)
{
	char want[512];

	snprintf(want, sizeof(want), "\n%s\n", line);
	ck_assert_msg(strstr(text, want), "missing line: %s", line);
}

static void lacks(const char *text, const char *needle)
{
	ck_assert_msg(!strstr(text, needle), "unexpected: %s", needle);
}

START_TEST(requests_by_service_decision_status)
{
	char *t;

	metrics_reset();
	metrics_request("git-upload-pack", "allow", 200, 12, 100, 5000);
	metrics_request("git-upload-pack", "allow", 200, 7, 50, 1000);
	metrics_request("git-receive-pack", "deny", 403, 1, 0, 30);
	metrics_request(NULL, "deny", 404, 0, 0, 20);
	metrics_request("git-upload-pack", "deny", 418, 0, 0, 0); /* odd */
	t = render();
	has(t, "gitgate_requests_total{service=\"git-upload-pack\","
	       "decision=\"allow\",status=\"200\"} 2");
	has(t, "gitgate_requests_total{service=\"git-receive-pack\","
	       "decision=\"deny\",status=\"403\"} 1");
	has(t, "gitgate_requests_total{service=\"none\",decision=\"deny\","
	       "status=\"404\"} 1");
	has(t, "gitgate_requests_total{service=\"git-upload-pack\","
	       "decision=\"deny\",status=\"other\"} 1");
	/* sparse: nothing was answered 500 */
	lacks(t, "status=\"500\"");
	has(t, "gitgate_request_bytes_received_total{service="
	       "\"git-upload-pack\"} 150");
	has(t, "gitgate_request_bytes_sent_total{service="
	       "\"git-upload-pack\"} 6000");
	free(t);
}
END_TEST

START_TEST(histogram_is_cumulative)
{
	char *t;

	metrics_reset();
	metrics_request("git-upload-pack", "allow", 200, 3, 0, 0);
	metrics_request("git-upload-pack", "allow", 200, 5, 0, 0); /* = le */
	metrics_request("git-upload-pack", "allow", 200, 6, 0, 0);
	metrics_request("git-upload-pack", "allow", 200, 999999, 0, 0);
	t = render();
	has(t, "gitgate_request_duration_seconds_bucket{service="
	       "\"git-upload-pack\",le=\"0.005\"} 2");
	has(t, "gitgate_request_duration_seconds_bucket{service="
	       "\"git-upload-pack\",le=\"0.01\"} 3");
	has(t, "gitgate_request_duration_seconds_bucket{service="
	       "\"git-upload-pack\",le=\"300\"} 3");
	has(t, "gitgate_request_duration_seconds_bucket{service="
	       "\"git-upload-pack\",le=\"+Inf\"} 4");
	has(t, "gitgate_request_duration_seconds_count{service="
	       "\"git-upload-pack\"} 4");
	has(t, "gitgate_request_duration_seconds_sum{service="
	       "\"git-upload-pack\"} 1000.013000");
	/* a negative duration (a clock step) counts as 0, not as huge */
	metrics_audit_append(-5, true);
	free(t);
	t = render();
	has(t, "gitgate_audit_append_seconds_bucket{le=\"0.0001\"} 1");
	has(t, "gitgate_audit_append_seconds_sum 0.000000");
	free(t);
}
END_TEST

START_TEST(fixed_label_sets_fold_unknowns)
{
	char *t;

	metrics_reset();
	metrics_token_refused("expired");
	metrics_token_refused(metrics_token_reason(GG_EBADSIG));
	metrics_token_refused("acme/secret-repo"); /* never a label */
	metrics_policy_refused(NULL);
	metrics_policy_refused("secret:github-pat");
	metrics_policy_refused("protected_path");
	metrics_policy_refused("made_up");
	metrics_upstream_error("timeout");
	metrics_upstream_error("weird");
	metrics_cache_result("hit");
	metrics_cache_result("hit");
	metrics_cache_result("bogus"); /* dropped */
	t = render();
	has(t, "gitgate_token_refusals_total{reason=\"expired\"} 1");
	has(t, "gitgate_token_refusals_total{reason=\"bad_signature\"} 1");
	has(t, "gitgate_token_refusals_total{reason=\"other\"} 1");
	has(t, "gitgate_token_refusals_total{reason=\"revoked\"} 0");
	lacks(t, "acme");
	has(t, "gitgate_policy_refusals_total{rule=\"token\"} 1");
	has(t, "gitgate_policy_refusals_total{rule=\"secret\"} 1");
	has(t, "gitgate_policy_refusals_total{rule=\"protected_path\"} 1");
	has(t, "gitgate_policy_refusals_total{rule=\"other\"} 1");
	lacks(t, "github-pat");
	has(t, "gitgate_upstream_errors_total{kind=\"timeout\"} 1");
	has(t, "gitgate_upstream_errors_total{kind=\"other\"} 1");
	has(t, "gitgate_fetch_cache_requests_total{result=\"hit\"} 2");
	has(t, "gitgate_fetch_cache_requests_total{result=\"miss\"} 0");
	free(t);
}
END_TEST

START_TEST(gauges_and_process)
{
	char *t;

	metrics_reset();
	metrics_in_flight_add(1);
	metrics_in_flight_add(1);
	metrics_in_flight_add(-1);
	metrics_mirror_fetch(1500, 4096, true);
	metrics_mirror_fetch(20, 0, false);
	metrics_set_build_info("9.9.9", "1.5.1", "7.88.1", "0.9.75");
	t = render();
	has(t, "gitgate_requests_in_flight 1");
	has(t, "gitgate_mirror_fetch_seconds_count 2");
	has(t, "gitgate_mirror_fetch_bytes_total 4096");
	has(t, "gitgate_mirror_fetch_failures_total 1");
	has(t, "gitgate_build_info{version=\"9.9.9\",libgit2=\"1.5.1\","
	       "libcurl=\"7.88.1\",libmicrohttpd=\"0.9.75\"} 1");
	ck_assert_ptr_nonnull(strstr(t, "\nprocess_resident_memory_bytes "));
	ck_assert_ptr_nonnull(strstr(t, "\nprocess_open_fds "));
	free(t);
}
END_TEST

/* Every family has HELP and TYPE before its samples, each once, and
 * every non-comment line is "name[{...}] value". */
START_TEST(text_format_is_well_formed)
{
	char *t, *line, *save = NULL;
	char last_type[128] = "";
	int types = 0;

	metrics_reset();
	metrics_request("git-upload-pack", "allow", 200, 1, 1, 1);
	t = render();
	ck_assert(t[strlen(t) - 1] == '\n');
	for (line = strtok_r(t, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		if (!strncmp(line, "# TYPE ", 7)) {
			ck_assert_msg(strcmp(line, last_type) != 0, "%s", line);
			snprintf(last_type, sizeof(last_type), "%s", line);
			types++;
			continue;
		}
		if (!strncmp(line, "# HELP ", 7))
			continue;
		ck_assert_msg(line[0] != '#' && strchr(line, ' '), "%s", line);
	}
	ck_assert_int_ge(types, 15);
	free(t);
}
END_TEST

static Suite *metrics_suite(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, requests_by_service_decision_status);
	tcase_add_test(tc, histogram_is_cumulative);
	tcase_add_test(tc, fixed_label_sets_fold_unknowns);
	tcase_add_test(tc, gauges_and_process);
	tcase_add_test(tc, text_format_is_well_formed);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(metrics_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
