/*
 * strvec.c - sorted arrays of owned C strings (see strvec.h).
 */
#include "gitgate/core/strvec.h"

#include <stdlib.h>
#include <string.h>

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void strvec_sort_unique(char **v, size_t *n)
{
	size_t i, j = 0;

	if (*n == 0)
		return;
	qsort(v, *n, sizeof(*v), cmp_str);
	for (i = 1; i < *n; i++) {
		if (strcmp(v[i], v[j]))
			v[++j] = v[i];
		else
			free(v[i]);
	}
	*n = j + 1;
}

bool strvec_contains(char *const *v, size_t n, const char *s)
{
	return n > 0 && bsearch(&s, v, n, sizeof(*v), cmp_str) != NULL;
}
