/*
 * quota.c - per-token count of requests in flight (see quota.h).
 *
 * A chained hash table: entries exist only while a key has requests in
 * flight, so there are at most as many as connections (1024), and a fixed
 * number of buckets keeps chains short without ever resizing.
 */
#include "gitgate/http/quota.h"

#include <pthread.h>
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define QUOTA_BUCKETS 1024

struct quota_entry {
	struct quota_entry *next;
	unsigned held;
	char key[]; /* NUL-terminated */
};

struct quota {
	pthread_mutex_t lock;
	unsigned limit;
	unsigned char hash_key[crypto_shorthash_KEYBYTES];
	struct quota_entry *buckets[QUOTA_BUCKETS];
};

int quota_new(struct quota **out, unsigned limit, struct gg_err *err)
{
	struct quota *q;

	*out = NULL;
	if (limit == 0)
		return gg_err_set(err, GG_EINVAL, "quota limit must be >= 1");
	if (sodium_init() < 0)
		return gg_err_set(err, GG_ERR, "libsodium failed to start");
	q = calloc(1, sizeof(*q));
	if (!q)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	pthread_mutex_init(&q->lock, NULL);
	q->limit = limit;
	randombytes_buf(q->hash_key, sizeof(q->hash_key));
	*out = q;
	return GG_OK;
}

void quota_free(struct quota *q)
{
	struct quota_entry *e, *next;
	size_t i;

	if (!q)
		return;
	for (i = 0; i < QUOTA_BUCKETS; i++)
		for (e = q->buckets[i]; e; e = next) {
			next = e->next;
			free(e);
		}
	pthread_mutex_destroy(&q->lock);
	free(q);
}

static struct quota_entry **slot_of(struct quota *q, const char *key)
{
	unsigned char h[crypto_shorthash_BYTES];
	struct quota_entry **p;
	uint64_t v;

	crypto_shorthash(h, (const unsigned char *)key, strlen(key),
			 q->hash_key);
	memcpy(&v, h, sizeof(v));
	for (p = &q->buckets[v % QUOTA_BUCKETS]; *p; p = &(*p)->next)
		if (!strcmp((*p)->key, key))
			break;
	return p; /* the entry's link, or the chain's terminating NULL */
}

int quota_take(struct quota *q, const char *key, struct gg_err *err)
{
	struct quota_entry **p, *e;
	size_t len = strlen(key);
	int ret = GG_OK;

	pthread_mutex_lock(&q->lock);
	p = slot_of(q, key);
	if (*p && (*p)->held >= q->limit) {
		ret = gg_err_set(err, GG_ELIMIT,
				 "too many requests in flight with this token "
				 "(limit %u)", q->limit);
	} else if (*p) {
		(*p)->held++;
	} else if ((e = malloc(sizeof(*e) + len + 1)) != NULL) {
		e->next = NULL;
		e->held = 1;
		memcpy(e->key, key, len + 1);
		*p = e;
	} else {
		ret = gg_err_set(err, GG_ENOMEM, "out of memory");
	}
	pthread_mutex_unlock(&q->lock);
	return ret;
}

void quota_give(struct quota *q, const char *key)
{
	struct quota_entry **p, *e = NULL;

	pthread_mutex_lock(&q->lock);
	p = slot_of(q, key);
	if (*p && --(*p)->held == 0) {
		e = *p;
		*p = e->next;
	}
	pthread_mutex_unlock(&q->lock);
	free(e);
}

unsigned quota_held(struct quota *q, const char *key)
{
	struct quota_entry **p;
	unsigned n;

	pthread_mutex_lock(&q->lock);
	p = slot_of(q, key);
	n = *p ? (*p)->held : 0;
	pthread_mutex_unlock(&q->lock);
	return n;
}

unsigned quota_limit(const struct quota *q)
{
	return q->limit;
}
