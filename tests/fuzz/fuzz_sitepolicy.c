/*
 * fuzz_sitepolicy.c - sitepolicy_parse on arbitrary bytes, then the merge
 * for one repository. The policy is operator input, but its problems are
 * located by re-walking the text and echo its contents, so no input may
 * crash, overflow or run away.
 */
#include <stddef.h>
#include <stdint.h>

#include "gitgate/push/sitepolicy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sitepolicy_problems probs = {NULL, 0, 0};
	struct sitepolicy_opts opts = {NULL, NULL, &probs};
	struct gg_err err = GG_ERR_INIT;
	struct sitepolicy_rules *rules = NULL;
	struct sitepolicy *pol = NULL;

	if (sitepolicy_parse(&pol, "/fuzz/policy.json", (const char *)data,
			     size, &opts, &err) == GG_OK &&
	    sitepolicy_for_repo(&rules, pol, "acme/infra", &err) == GG_OK)
		sitepolicy_rules_free(rules);
	sitepolicy_problems_release(&probs);
	sitepolicy_free(pol);
	return 0;
}
