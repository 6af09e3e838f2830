/*
 * size.h - byte sizes as operators write them in JSON files ("50M") and as
 * gitgate shows them in reasons ("120.0 MiB"). Pure.
 *
 * Syntax: one or more decimal digits, then at most one unit letter: B
 * (bytes, the same as none), K, M or G, binary multiples (50M = 50 MiB =
 * 52428800 bytes), upper case only. Nothing else: no sign, space,
 * fraction, "MB"/"MiB", or lower case ("m" could be read as milli).
 * Zero is refused: a limit of nothing is a mistake, not a policy.
 */
#ifndef GITGATE_SIZE_H
#define GITGATE_SIZE_H

#include <stddef.h>
#include <stdint.h>

#include "gitgate/core/err.h"

/* Room for any size_format result: "1023.9 EiB" and the NUL. */
#define SIZE_FORMAT_MAX 16

/* Parse text as above into bytes. GG_EINVAL with err->msg `"<text>" is not
 * a size ...`, `... is zero ...` or `... is too large ...` (over
 * UINT64_MAX bytes); the text is shown sanitised and shortened. */
int size_parse(uint64_t *out, const char *text, struct gg_err *err);

/* bytes as "512 B" below 1 KiB, else with one decimal in the largest unit
 * it reaches: "1.5 KiB", "50.0 MiB", "2.0 GiB" (KiB .. EiB). Always
 * NUL-terminated, cut to bufsz. */
void size_format(char *buf, size_t bufsz, uint64_t bytes);

#endif
