/*
 * fuzz_config.c - config_parse on arbitrary bytes. The config file is
 * operator input, but it is parsed before anything else runs and its
 * error messages echo its contents, so it must never crash or overflow.
 */
#include <stddef.h>
#include <stdint.h>

#include "gitgate/config/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gg_err err = GG_ERR_INIT;
	struct config *cfg = NULL;

	if (config_parse(&cfg, "/fuzz/config.json", (const char *)data, size,
			 &err) == GG_OK)
		config_free(cfg);
	return 0;
}
