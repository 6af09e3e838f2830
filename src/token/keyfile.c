/*
 * keyfile.c - PASERK key files: load (with relayd's permission rule for
 * secrets) and generate (O_EXCL, so an existing key is never replaced).
 *
 * The secret key and the file text that encodes it live only in
 * sodium_malloc'd memory (guard pages, mlock'd, wiped on free); the loaded
 * key is made read-only until it is freed.
 */
#include "gitgate/token/keyfile.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gitgate/core/limits.h"
#include "gitgate/token/paserk.h"

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

/* Open path for reading and check it is a regular file. O_NONBLOCK makes
 * the open itself return at once for a FIFO (which would otherwise wait for
 * a writer forever) so fstat can refuse it; for a regular file the flag
 * changes nothing. *mode gets the permission bits for the caller to judge
 * after it has seen the contents (see check_secret). */
static int open_key(int *fd, mode_t *mode, const char *path, struct gg_err *err)
{
	struct stat st;
	int rc = GG_OK;

	*fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (*fd < 0)
		return gg_err_errno(err, GG_EIO, "%s", path);
	if (fstat(*fd, &st) != 0)
		rc = gg_err_errno(err, GG_EIO, "%s", path);
	else if (!S_ISREG(st.st_mode))
		rc = gg_err_set(err, GG_EINVAL, "%s: not a regular file", path);
	if (rc != GG_OK) {
		close(*fd);
		*fd = -1;
		return rc;
	}
	*mode = st.st_mode & 07777;
	return GG_OK;
}

/* open_key + read_key_text; buf as for read_key_text. */
static int load_text(char *buf, size_t *len, mode_t *mode, const char *path,
		     struct gg_err *err)
{
	int fd, rc;

	rc = open_key(&fd, mode, path, err);
	if (rc != GG_OK)
		return rc;
	rc = read_key_text(buf, len, fd, path, err);
	close(fd);
	return rc;
}

static bool has_prefix(const char *text, size_t len, const char *prefix)
{
	size_t n = strlen(prefix);

	return len >= n && !memcmp(text, prefix, n);
}

void keyfile_secret_free(struct keyfile_secret *key)
{
	if (!key)
		return;
	sodium_free(key->sk); /* wipes, also when read-only */
	free(key);
}

/* Passing verify.pub to mint is an easy slip: say so before the
 * permission rule (verify.pub is 0644 by design) can hide it behind a
 * "too open" complaint. Then the permission rule: no group/other bits. */
static int check_secret(const char *text, size_t len, mode_t mode,
			const char *path, struct gg_err *err)
{
	if (has_prefix(text, len, "k4.public."))
		return gg_err_set(err, GG_EINVAL,
				  "%s: is a public key (k4.public); a signing "
				  "key (k4.secret, e.g. signing.key) is needed",
				  path);
	if (mode & 077)
		return gg_err_set(err, GG_EINVAL,
				  "%s: permissions %04o are too open (want "
				  "0600)",
				  path, (unsigned)mode);
	return GG_OK;
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
	mode_t mode = 0777; /* set by load_text; "too open" until then */
	int rc;

	*out = NULL;
	if (sodium_init() < 0)
		return gg_err_set(err, GG_ERR,
				  "libsodium failed to initialise");
	text = sodium_malloc(GG_MAX_KEYFILE_LEN + 1);
	key = calloc(1, sizeof(*key));
	if (key)
		key->sk = sodium_malloc(crypto_sign_SECRETKEYBYTES);
	if (!text || !key || !key->sk) {
		rc = gg_err_set(err, GG_ENOMEM, "out of memory");
		goto out;
	}
	rc = load_text(text, &len, &mode, path, err);
	if (rc == GG_OK)
		rc = check_secret(text, len, mode, path, err);
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
	return rc;
}

static int decode_public(struct token_key *out, const char *text, size_t len,
			 const char *path, struct gg_err *err)
{
	struct gg_err inner = GG_ERR_INIT;

	/* The symmetric slip: name the kind, never the contents. */
	if (has_prefix(text, len, "k4.secret."))
		return gg_err_set(err, GG_EINVAL,
				  "%s: is a signing key (k4.secret); a public "
				  "key (k4.public, e.g. verify.pub) is needed",
				  path);
	if (paserk_public_decode(out->pk, text, len, &inner) != GG_OK)
		return gg_err_set(err, GG_EINVAL, "%s: %s", path, inner.msg);
	return paserk_pid(out->pid, sizeof(out->pid), out->pk, 32, err);
}

int keyfile_load_public(struct token_key *out, const char *path,
			struct gg_err *err)
{
	char text[GG_MAX_KEYFILE_LEN + 1];
	size_t len = 0;
	mode_t mode = 0;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = load_text(text, &len, &mode, path, err);
	if (rc == GG_OK)
		rc = decode_public(out, text, len, path, err);
	/* The file may have been a signing key given by mistake. */
	sodium_memzero(text, sizeof(text));
	return rc;
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

/* One component of ensure_dir. A directory made here gets exactly 0700
 * (chmod undoes the umask): it holds the signing key. One that exists is
 * left exactly as it is, never loosened or tightened. */
static int make_dir(const char *path, struct gg_err *err)
{
	struct stat st;

	if (stat(path, &st) != 0) {
		if (errno != ENOENT)
			return gg_err_errno(err, GG_EIO, "%s", path);
		if (mkdir(path, 0700) == 0)
			return chmod(path, 0700) == 0
				       ? GG_OK
				       : gg_err_errno(err, GG_EIO, "%s", path);
		/* Lost a race with someone creating it: judge theirs. */
		if (errno != EEXIST || stat(path, &st) != 0)
			return gg_err_errno(err, GG_EIO, "%s", path);
	}
	if (!S_ISDIR(st.st_mode))
		return gg_err_set(err, GG_EINVAL, "%s: not a directory", path);
	return GG_OK;
}

/* "mkdir -p dir": `keygen --out /etc/gitgate/keys` on a fresh host must
 * not need a separate mkdir step. */
static int ensure_dir(const char *dir, struct gg_err *err)
{
	char *path = strdup(dir), *p, save;
	int rc = GG_OK;

	if (!path)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	p = path;
	for (;;) {
		p += strspn(p, "/");
		if (*p == '\0')
			break;
		p += strcspn(p, "/");
		save = *p;
		*p = '\0';
		rc = make_dir(path, err);
		*p = save;
		if (rc != GG_OK)
			break;
	}
	free(path);
	return rc;
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
