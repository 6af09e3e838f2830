/*
 * strvec.h - sorted arrays of owned C strings, searched with bsearch.
 *
 * The revocation list and the mirror's ref names are both sets of strings
 * built whole, then looked up: a sorted array is the smallest and fastest
 * structure for that, and this is its one sort-and-search.
 */
#ifndef GITGATE_STRVEC_H
#define GITGATE_STRVEC_H

#include <stdbool.h>
#include <stddef.h>

/* Sort v[0..*n) by strcmp and free all but one of each run of equal
 * strings; *n becomes the number kept. */
void strvec_sort_unique(char **v, size_t *n);

/* Is s in v[0..n), sorted as strvec_sort_unique leaves it? */
bool strvec_contains(char *const *v, size_t n, const char *s);

#endif
