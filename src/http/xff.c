/*
 * xff.c - X-Forwarded-For, walked from the right (see xff.h).
 */
#include "gitgate/http/xff.h"

#include <stdbool.h>
#include <string.h>

static bool ows(char c)
{
	return c == ' ' || c == '\t';
}

/* One element, text[0..len), without the spaces around it. */
static void trim(const char **text, size_t *len)
{
	while (*len > 0 && ows(**text)) {
		(*text)++;
		(*len)--;
	}
	while (*len > 0 && ows((*text)[*len - 1]))
		(*len)--;
}

/* The walk's state: the leftmost address seen so far, and whether the
 * client has been found (an address that is no trusted proxy). */
struct walk {
	struct cidr_addr addr;
	bool seen;
	bool done;
};

/* Walk one header value from the right. */
static int walk_value(struct walk *w, const char *value,
		      const struct cidr *trusted, size_t ntrusted,
		      struct gg_err *err)
{
	struct gg_err inner = GG_ERR_INIT;
	size_t end = strlen(value), start, len;
	const char *elem;

	while (!w->done) {
		start = end;
		while (start > 0 && value[start - 1] != ',')
			start--;
		elem = value + start;
		len = end - start;
		trim(&elem, &len);
		if (len > 0) {
			if (cidr_addr_parse(&w->addr, elem, len, &inner) !=
			    GG_OK)
				return gg_err_set(err, GG_EINVAL,
						  "malformed X-Forwarded-For: "
						  "%s",
						  inner.msg);
			w->seen = true;
			w->done = !cidr_list_contains(trusted, ntrusted,
						      &w->addr);
		}
		if (start == 0)
			break;
		end = start - 1; /* before the comma */
	}
	return GG_OK;
}

int xff_resolve(struct cidr_addr *out, const struct cidr_addr *peer,
		const char *const *values, size_t nvalues,
		const struct cidr *trusted, size_t ntrusted,
		struct gg_err *err)
{
	struct walk w = { .seen = false, .done = false };
	size_t i;
	int rc;

	if (nvalues == 0 || !cidr_list_contains(trusted, ntrusted, peer)) {
		*out = *peer;
		return GG_OK;
	}
	for (i = nvalues; i > 0 && !w.done; i--) {
		rc = walk_value(&w, values[i - 1], trusted, ntrusted, err);
		if (rc != GG_OK)
			return rc;
	}
	if (!w.seen)
		return gg_err_set(err, GG_EINVAL,
				  "malformed X-Forwarded-For: no address");
	*out = w.addr;
	return GG_OK;
}
