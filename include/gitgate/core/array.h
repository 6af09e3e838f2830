/*
 * array.h - growth of the plain C arrays that parsers fill one element at
 * a time (push commands, report entries, ...).
 *
 * Invariant: an array of n elements built only through array_grow has room
 * for at least n + 1 of them after array_grow(&a, n, ...) returns GG_OK.
 * Capacity goes 8, 16, 32, ...: memory is reallocated only at those sizes,
 * so the array needs no separate capacity field.
 */
#ifndef GITGATE_ARRAY_H
#define GITGATE_ARRAY_H

#include <stddef.h>

/*
 * Make room for element n (0-based) of the array *arr of elements of
 * size bytes. *arr is replaced only on success; on failure it is left as
 * it was, still owned by the caller. Returns GG_OK, GG_ELIMIT when n has
 * reached max, or GG_ENOMEM. Sets no message: the caller names what it was
 * collecting, which this helper cannot know.
 */
int array_grow(void **arr, size_t n, size_t size, size_t max);

#endif
