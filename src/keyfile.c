/*
 * keyfile.c - PASERK key files: load (with relayd's permission rule for
 * secrets) and generate (O_EXCL, so an existing key is never replaced).
 *
 * The secret key and the file text that encodes it live only in
 * sodium_malloc'd memory (guard pages, mlock'd, wiped on free); the loaded
 * key is made read-only until it is freed.
 */
#include "gitgate/keyfile.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gitgate/limits.h"
#include "gitgate/paserk.h"

/* Read all of fd (at most GG_MAX_KEYFILE_LEN bytes) into buf, which has
 * room for GG_MAX_KEYFILE_LEN + 1; strip trailing whitespace; NUL-end. */
static int read_key_text(char *buf, size_t *len, int fd, const char *path,
			 struct gg_err *err)
{
	ssize_t r;

	*len = 0;
	for (;;) {
		r = read(fd, buf + *len, GG_MAX_KEYFILE_LEN + 1 - *len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return gg_err_errno(err, GG_EIO, "%s", path);
		if (r == 0)
			break;
		*len += (size_t)r;
		if (*len > GG_MAX_KEYFILE_LEN)
			return gg_err_set(err, GG_ELIMIT,
					  "%s: longer than %d bytes", path,
					  GG_MAX_KEYFILE_LEN);
	}
	while (*len && (buf[*len - 1] == '\n' || buf[*len - 1] == '\r' ||
			buf[*len - 1] == ' ' || buf[*len - 1] == '\t'))
		(*len)--;
	buf[*len] = '\0';
	return GG_OK;
}

/* Open path for reading and check it is a regular file; when secret, also
 * refuse group/other permission bits. */
static int open_key(int *fd, const char *path, bool secret, struct gg_err *err)
{
	struct stat st;
	int rc = GG_OK;

	*fd = open(path, O_RDONLY | O_CLOEXEC);
	if (*fd < 0)
		return gg_err_errno(err, GG_EIO, "%s", path);
	if (fstat(*fd, &st) != 0)
		rc = gg_err_errno(err, GG_EIO, "%s", path);
	else if (!S_ISREG(st.st_mode))
		rc = gg_err_set(err, GG_EINVAL, "%s: not a regular file", path);
	else if (secret && (st.st_mode & 077))
		rc = gg_err_set(err, GG_EINVAL,
				"%s: permissions %04o are too open (want 0600)",
				path, (unsigned)(st.st_mode & 07777));
	if (rc != GG_OK) {
		close(*fd);
		*fd = -1;
	}
	return rc;
}

void keyfile_secret_free(struct keyfile_secret *key)
{
	if (!key)
		return;
	sodium_free(key->sk); /* wipes, also when read-only */
	free(key);
}

static int decode_secret(struct keyfile_secret *key, const char *text,
			 size_t len, const char *path, struct gg_err *err)
{
	struct gg_err inner = GG_ERR_INIT;

	if (paserk_secret_decode(key->sk, text, len, &inner) != GG_OK)
		return gg_err_set(err, GG_EINVAL, "%s: %s", path, inner.msg);
	return paserk_pid(key->pid, sizeof(key->pid), key->sk + 32, 32, err);
}

int keyfile_load_secret(struct keyfile_secret **out, const char *path,
			struct gg_err *err)
{
	struct keyfile_secret *key = NULL;
	char *text = NULL;
	size_t len;
	int fd = -1, rc;

	*out = NULL;
	if (sodium_init() < 0)
		return gg_err_set(err, GG_ERR,
				  "libsodium failed to initialise");
	rc = open_key(&fd, path, true, err);
	if (rc != GG_OK)
		return rc;
	text = sodium_malloc(GG_MAX_KEYFILE_LEN + 1);
	key = calloc(1, sizeof(*key));
	if (key)
		key->sk = sodium_malloc(crypto_sign_SECRETKEYBYTES);
	if (!text || !key || !key->sk) {
		rc = gg_err_set(err, GG_ENOMEM, "out of memory");
		goto out;
	}
	rc = read_key_text(text, &len, fd, path, err);
	if (rc == GG_OK)
		rc = decode_secret(key, text, len, path, err);
	if (rc != GG_OK)
		goto out;
	sodium_mprotect_readonly(key->sk);
	*out = key;
	key = NULL;
out:
	keyfile_secret_free(key);
	sodium_free(text);
	close(fd);
	return rc;
}

int keyfile_load_public(struct token_key *out, const char *path,
			struct gg_err *err)
{
	struct gg_err inner = GG_ERR_INIT;
	char text[GG_MAX_KEYFILE_LEN + 1];
	size_t len;
	int fd, rc;

	memset(out, 0, sizeof(*out));
	rc = open_key(&fd, path, false, err);
	if (rc != GG_OK)
		return rc;
	rc = read_key_text(text, &len, fd, path, err);
	close(fd);
	if (rc != GG_OK)
		return rc;
	if (paserk_public_decode(out->pk, text, len, &inner) != GG_OK)
		return gg_err_set(err, GG_EINVAL, "%s: %s", path, inner.msg);
	return paserk_pid(out->pid, sizeof(out->pid), out->pk, 32, err);
}

/* ---- generate --------------------------------------------------------- */

static char *join(const char *dir, const char *name)
{
	size_t a = strlen(dir), b = strlen(name);
	char *s = malloc(a + b + 2);

	if (!s)
		return NULL;
	memcpy(s, dir, a);
	s[a] = '/';
	memcpy(s + a + 1, name, b + 1);
	return s;
}

static int ensure_dir(const char *dir, struct gg_err *err)
{
	struct stat st;

	if (mkdir(dir, 0700) == 0)
		return GG_OK;
	if (errno != EEXIST)
		return gg_err_errno(err, GG_EIO, "%s", dir);
	if (stat(dir, &st) != 0)
		return gg_err_errno(err, GG_EIO, "%s", dir);
	if (!S_ISDIR(st.st_mode))
		return gg_err_set(err, GG_EINVAL, "%s: not a directory", dir);
	return GG_OK;
}

/* Create path exclusively with exactly mode (fchmod undoes the umask). */
static int create_excl(int *fd, const char *path, mode_t mode,
		       struct gg_err *err)
{
	*fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		   mode);
	if (*fd < 0 && errno == EEXIST)
		return gg_err_set(err, GG_EEXISTS,
				  "%s exists (refusing to overwrite)", path);
	if (*fd < 0)
		return gg_err_errno(err, GG_EIO, "%s", path);
	if (fchmod(*fd, mode) != 0) {
		close(*fd);
		*fd = -1;
		unlink(path);
		return gg_err_errno(err, GG_EIO, "%s", path);
	}
	return GG_OK;
}

static int write_line(int fd, const char *text, const char *path,
		      struct gg_err *err)
{
	size_t len = strlen(text), done = 0;
	ssize_t w;

	while (done < len) {
		w = write(fd, text + done, len - done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return gg_err_errno(err, GG_EIO, "%s", path);
		done += (size_t)w;
	}
	if (write(fd, "\n", 1) != 1 || fsync(fd) != 0)
		return gg_err_errno(err, GG_EIO, "%s", path);
	return GG_OK;
}

/* PASERK texts of a fresh key pair; sec is sodium_malloc'd by the caller. */
static int new_pair(char *sec, char pub[PASERK_PUBLIC_SIZE], struct gg_err *err)
{
	unsigned char pk[crypto_sign_PUBLICKEYBYTES];
	unsigned char *sk;
	int rc;

	sk = sodium_malloc(crypto_sign_SECRETKEYBYTES);
	if (!sk)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	crypto_sign_keypair(pk, sk);
	rc = paserk_secret_encode(sec, PASERK_SECRET_SIZE, sk,
				  crypto_sign_SECRETKEYBYTES, err);
	if (rc == GG_OK)
		rc = paserk_public_encode(pub, PASERK_PUBLIC_SIZE, pk,
					  sizeof(pk), err);
	sodium_free(sk);
	return rc;
}

int keyfile_generate(const char *dir, struct gg_err *err)
{
	char *spath = NULL, *ppath = NULL, *sec = NULL;
	char pub[PASERK_PUBLIC_SIZE];
	int sfd = -1, pfd = -1, rc, created = 0;

	/* sodium_malloc aborts if libsodium is not initialised yet. */
	if (sodium_init() < 0)
		return gg_err_set(err, GG_ERR,
				  "libsodium failed to initialise");
	spath = join(dir, "signing.key");
	ppath = join(dir, "verify.pub");
	sec = sodium_malloc(PASERK_SECRET_SIZE);
	if (!spath || !ppath || !sec) {
		rc = gg_err_set(err, GG_ENOMEM, "out of memory");
		goto out;
	}
	rc = ensure_dir(dir, err);
	if (rc == GG_OK)
		rc = new_pair(sec, pub, err);
	/* Claim both names before writing either, so a refusal leaves no
	 * half-made pair behind. */
	if (rc == GG_OK)
		rc = create_excl(&sfd, spath, 0600, err);
	if (rc == GG_OK) {
		created = 1;
		rc = create_excl(&pfd, ppath, 0644, err);
	}
	if (rc == GG_OK) {
		created = 2;
		rc = write_line(sfd, sec, spath, err);
	}
	if (rc == GG_OK)
		rc = write_line(pfd, pub, ppath, err);
out:
	if (sfd >= 0 && close(sfd) != 0 && rc == GG_OK)
		rc = gg_err_errno(err, GG_EIO, "%s", spath);
	if (pfd >= 0 && close(pfd) != 0 && rc == GG_OK)
		rc = gg_err_errno(err, GG_EIO, "%s", ppath);
	if (rc != GG_OK && created >= 1)
		unlink(spath);
	if (rc != GG_OK && created >= 2)
		unlink(ppath);
	sodium_free(sec);
	free(spath);
	free(ppath);
	return rc;
}
