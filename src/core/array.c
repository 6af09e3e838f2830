/*
 * array.c - doubling growth for parser-filled arrays (see array.h).
 */
#include "gitgate/core/array.h"
#include "gitgate/core/err.h"

#include <stdint.h>
#include <stdlib.h>

int array_grow(void **arr, size_t n, size_t size, size_t max)
{
	size_t cap;
	void *grown;

	if (n >= max)
		return GG_ELIMIT;
	/* Below 8, and between powers of two, the room is already there. */
	if (n != 0 && (n < 8 || (n & (n - 1)) != 0))
		return GG_OK;
	cap = n ? n * 2 : 8;
	if (size == 0 || cap > SIZE_MAX / size)
		return GG_ENOMEM;
	/* The old pointer is not touched after realloc, on either path:
	 * gcc's -Wuse-after-free (debug builds) then has nothing to say. */
	grown = realloc(*arr, cap * size);
	if (!grown)
		return GG_ENOMEM;
	*arr = grown;
	return GG_OK;
}
