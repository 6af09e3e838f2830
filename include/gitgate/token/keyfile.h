/*
 * keyfile.h - key files on disk, as PASERK strings (one line).
 *
 * signing.key holds "k4.secret.…" and must not be group/world accessible;
 * verify.pub holds "k4.public.…". Secret material is kept in sodium_malloc'd
 * memory and wiped on free.
 */
#ifndef GITGATE_KEYFILE_H
#define GITGATE_KEYFILE_H

#include "gitgate/core/err.h"
#include "gitgate/token/token.h"

struct keyfile_secret {
	unsigned char *sk; /* 64 bytes, sodium_malloc'd */
	char pid[64];      /* k4.pid of the matching public key */
};

/* Both loaders refuse anything but a regular file ("<path>: not a regular
 * file") without blocking on a FIFO, and name a key of the other kind
 * ("<path>: is a public key (k4.public); ..."), never its contents.
 * The secret loader also refuses a file readable or writable by
 * group/others: "<path>: permissions 0644 are too open (want 0600)". */
int keyfile_load_secret(struct keyfile_secret **out, const char *path,
			struct gg_err *err);
void keyfile_secret_free(struct keyfile_secret *key);

/* Load one k4.public file into key (pk + pid). */
int keyfile_load_public(struct token_key *out, const char *path,
			struct gg_err *err);

/* Generate a key pair into dir: signing.key (0600, O_EXCL) and verify.pub
 * (0644, O_EXCL). Refuses to overwrite either ("… exists"). dir and any
 * missing parents are created with mode 0700; existing ones are left
 * alone. */
int keyfile_generate(const char *dir, struct gg_err *err);

#endif
