/*
 * revocation.c - the revoked-jti set and its file.
 *
 * The set is a sorted array searched with bsearch: the proxy looks up one
 * jti per request and reloads the whole file on change, so a flat array is
 * both the fastest and the simplest structure. jtis are public identifiers,
 * so plain strcmp is fine.
 *
 * Writers serialise on an flock(2) of "<path>.lock" rather than of the file
 * itself: the file is replaced by rename, so a lock on it would be a lock on
 * an inode that the next writer no longer opens.
 */
#include "gitgate/revocation.h"

#include <errno.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gitgate/limits.h"

struct revocation_set {
	char **jtis; /* sorted, unique, owned; whole tokens among them */
	size_t n;
	size_t cap;
	size_t problems; /* lines skipped or read only in part */
	char first_problem[GG_ERR_MSG_MAX + 32]; /* "line N: " + a message */
};

#define TOKEN_PREFIX "v4.public."

/* Printable ASCII without spaces: what a jti, and a token, is made of. */
static bool printable_word(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (s[i] <= ' ' || s[i] > '~')
			return false;
	return true;
}

int revocation_check_jti(const char *jti, struct gg_err *err)
{
	size_t len = strnlen(jti, GG_MAX_CLAIM_STR + 1);

	if (len == 0 || len > GG_MAX_CLAIM_STR)
		return gg_err_set(err, GG_EINVAL, "jti must be 1-%d characters",
				  GG_MAX_CLAIM_STR);
	if (jti[0] == '#')
		return gg_err_set(err, GG_EINVAL, "jti may not start with '#'");
	if (!printable_word(jti, len))
		return gg_err_set(err, GG_EINVAL,
				  "jti must be printable ASCII without spaces");
	return GG_OK;
}

void revocation_free(struct revocation_set *set)
{
	size_t i;

	if (!set)
		return;
	for (i = 0; i < set->n; i++)
		free(set->jtis[i]);
	free(set->jtis);
	free(set);
}

static int set_add(struct revocation_set *set, const char *jti, size_t len,
		   struct gg_err *err)
{
	char **grown, *copy;
	size_t cap;

	if (set->n == set->cap) {
		cap = set->cap ? set->cap * 2 : 16;
		if (cap > SIZE_MAX / sizeof(*grown))
			return gg_err_set(err, GG_ENOMEM, "out of memory");
		grown = realloc(set->jtis, cap * sizeof(*grown));
		if (!grown)
			return gg_err_set(err, GG_ENOMEM, "out of memory");
		set->jtis = grown;
		set->cap = cap;
	}
	copy = strndup(jti, len);
	if (!copy)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	set->jtis[set->n++] = copy;
	return GG_OK;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sort and drop duplicates, so lookups can bsearch. */
static void set_finish(struct revocation_set *set)
{
	size_t i, j = 0;

	if (set->n == 0)
		return;
	qsort(set->jtis, set->n, sizeof(*set->jtis), cmp_str);
	for (i = 1; i < set->n; i++) {
		if (!strcmp(set->jtis[i], set->jtis[j]))
			free(set->jtis[i]);
		else
			set->jtis[++j] = set->jtis[i];
	}
	set->n = j + 1;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static void note_problem(struct revocation_set *set, size_t lineno,
			 const char *what)
{
	if (set->problems++ == 0)
		snprintf(set->first_problem, sizeof(set->first_problem),
			 "line %zu: %s", lineno, what);
}

/* An entry as the file may hold it: a jti, or a whole token (the same
 * characters, a token's length). */
static int check_entry(const char *entry, size_t len, struct gg_err *err)
{
	char buf[GG_MAX_CLAIM_STR + 1];

	if (len > strlen(TOKEN_PREFIX) &&
	    !memcmp(entry, TOKEN_PREFIX, strlen(TOKEN_PREFIX))) {
		if (len > GG_MAX_TOKEN_LEN)
			return gg_err_set(err, GG_EINVAL,
					  "token longer than %d bytes",
					  GG_MAX_TOKEN_LEN);
		if (!printable_word(entry, len))
			return gg_err_set(err, GG_EINVAL,
					  "token must be printable ASCII");
		return GG_OK;
	}
	if (len > GG_MAX_CLAIM_STR || memchr(entry, '\0', len))
		return gg_err_set(err, GG_EINVAL, "not a jti");
	memcpy(buf, entry, len);
	buf[len] = '\0';
	return revocation_check_jti(buf, err);
}

/* One line without its '\n': trim, skip comments, take the first field. */
static int parse_line(struct revocation_set *set, const char *line, size_t len,
		      size_t lineno, struct gg_err *err)
{
	struct gg_err inner = GG_ERR_INIT;
	size_t n = 0, rest;

	while (len && is_space(*line)) {
		line++;
		len--;
	}
	while (len && is_space(line[len - 1]))
		len--;
	if (len == 0 || line[0] == '#')
		return GG_OK;
	while (n < len && !is_space(line[n]))
		n++;
	if (check_entry(line, n, &inner) != GG_OK) {
		note_problem(set, lineno, inner.msg);
		return GG_OK;
	}
	for (rest = n; rest < len && is_space(line[rest]); rest++)
		;
	if (rest < len && line[rest] != '#')
		note_problem(set, lineno, "only the first field is read "
			     "(a comment starts with '#')");
	return set_add(set, line, n, err);
}

int revocation_parse(struct revocation_set **out, const char *text, size_t len,
		     struct gg_err *err)
{
	struct revocation_set *set;
	const char *p = text, *end = text + len, *nl;
	size_t lineno = 0;
	int rc = GG_OK;

	*out = NULL;
	if (len > GG_MAX_REVOCATIONS_LEN)
		return gg_err_set(err, GG_ELIMIT,
				  "revocations longer than %d bytes",
				  GG_MAX_REVOCATIONS_LEN);
	set = calloc(1, sizeof(*set));
	if (!set)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	while (p < end && rc == GG_OK) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			nl = end;
		rc = parse_line(set, p, (size_t)(nl - p), ++lineno, err);
		p = nl + 1;
	}
	if (rc != GG_OK) {
		revocation_free(set);
		return rc;
	}
	set_finish(set);
	*out = set;
	return GG_OK;
}

/* Read the whole file into *out (malloc'd, NUL-terminated). A missing file
 * is GG_ENOTFOUND without a message, so callers can treat it as empty. */
static int read_all(char **out, size_t *outlen, const char *path,
		    struct gg_err *err)
{
	char *buf = NULL;
	size_t len = 0;
	ssize_t r;
	int fd, rc;

	*out = NULL;
	*outlen = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return GG_ENOTFOUND;
		return gg_err_errno(err, GG_EIO, "%s", path);
	}
	/* One byte more than the cap tells "too long" from "exactly max". */
	buf = malloc(GG_MAX_REVOCATIONS_LEN + 2);
	if (!buf) {
		rc = gg_err_set(err, GG_ENOMEM, "out of memory");
		goto out;
	}
	for (;;) {
		r = read(fd, buf + len, GG_MAX_REVOCATIONS_LEN + 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = gg_err_errno(err, GG_EIO, "%s", path);
			goto out;
		}
		if (r == 0)
			break;
		len += (size_t)r;
		if (len > GG_MAX_REVOCATIONS_LEN) {
			rc = gg_err_set(err, GG_ELIMIT,
					"%s: longer than %d bytes", path,
					GG_MAX_REVOCATIONS_LEN);
			goto out;
		}
	}
	buf[len] = '\0';
	*out = buf;
	*outlen = len;
	buf = NULL;
	rc = GG_OK;
out:
	free(buf);
	close(fd);
	return rc;
}

int revocation_load(struct revocation_set **out, const char *path,
		    struct gg_err *err)
{
	struct gg_err inner = GG_ERR_INIT;
	char *text;
	size_t len;
	int rc;

	*out = NULL;
	rc = read_all(&text, &len, path, err);
	if (rc == GG_ENOTFOUND)
		return revocation_parse(out, "", 0, err);
	if (rc != GG_OK)
		return rc;
	rc = revocation_parse(out, text, len, &inner);
	free(text);
	if (rc != GG_OK)
		return gg_err_set(err, rc, "%s: %s", path, inner.msg);
	return GG_OK;
}

bool revocation_contains(const struct revocation_set *set, const char *jti)
{
	if (!set || set->n == 0 || !jti)
		return false;
	return bsearch(&jti, set->jtis, set->n, sizeof(*set->jtis), cmp_str) !=
	       NULL;
}

size_t revocation_count(const struct revocation_set *set)
{
	return set ? set->n : 0;
}

struct counted {
	const char *s;
	size_t len;
};

/* bsearch order for a counted string against a NUL-terminated one. */
static int cmp_counted(const void *key, const void *elem)
{
	const struct counted *k = key;
	const char *e = *(char *const *)elem;
	int c = strncmp(k->s, e, k->len);

	if (c)
		return c;
	/* The first len bytes match, so e is at least that long: the key is
	 * equal, or a prefix of e and sorts before it. */
	return e[k->len] == '\0' ? 0 : -1;
}

bool revocation_contains_token(const struct revocation_set *set,
			       const char *token, size_t len)
{
	struct counted key = { token, len };

	if (!set || set->n == 0 || !token || memchr(token, '\0', len))
		return false;
	return bsearch(&key, set->jtis, set->n, sizeof(*set->jtis),
		       cmp_counted) != NULL;
}

size_t revocation_problems(const struct revocation_set *set,
			   const char **first)
{
	if (first)
		*first = set ? set->first_problem : "";
	return set ? set->problems : 0;
}

/* ---- append ----------------------------------------------------------- */

/* "<path><suffix>" in a fresh allocation. */
static char *path_with(const char *path, const char *suffix)
{
	size_t a = strlen(path), b = strlen(suffix);
	char *s = malloc(a + b + 1);

	if (!s)
		return NULL;
	memcpy(s, path, a);
	memcpy(s + a, suffix, b + 1);
	return s;
}

static int write_all(int fd, const char *buf, size_t len)
{
	ssize_t w;

	while (len) {
		w = write(fd, buf, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		buf += w;
		len -= (size_t)w;
	}
	return 0;
}

/* Make the rename durable: fsync the directory holding path. */
static void sync_dir(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir;
	int fd;

	if (!slash)
		dir = strdup(".");
	else if (slash == path)
		dir = strdup("/");
	else
		dir = strndup(path, (size_t)(slash - path));
	if (!dir)
		return;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
	free(dir);
}

/* Is jti among the first n of batch? */
static bool in_batch(const char *const *batch, size_t n, const char *jti)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!strcmp(batch[i], jti))
			return true;
	return false;
}

/* Write old text plus the new jtis to a temp file, then rename over path. */
static int replace_file(const char *path, const char *old, size_t oldlen,
			const char *const *jtis, size_t n,
			const struct revocation_set *have, struct gg_err *err)
{
	char *tmp = path_with(path, ".XXXXXX");
	struct stat st;
	mode_t mode = 0644;
	int fd = -1, rc = GG_OK, fail = 0;
	size_t i;

	if (!tmp)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	if (stat(path, &st) == 0)
		mode = st.st_mode & 07777;
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		rc = gg_err_errno(err, GG_EIO, "%s: cannot create temp file",
				  path);
		goto out;
	}
	fail |= fchmod(fd, mode);
	fail |= write_all(fd, old, oldlen);
	if (oldlen && old[oldlen - 1] != '\n')
		fail |= write_all(fd, "\n", 1);
	for (i = 0; i < n; i++) {
		if (revocation_contains(have, jtis[i]) ||
		    in_batch(jtis, i, jtis[i]))
			continue;
		fail |= write_all(fd, jtis[i], strlen(jtis[i]));
		fail |= write_all(fd, "\n", 1);
	}
	fail |= fsync(fd);
	fail |= close(fd);
	fd = -1;
	if (fail || rename(tmp, path) != 0) {
		rc = gg_err_errno(err, GG_EIO, "%s: cannot write", path);
		unlink(tmp);
		goto out;
	}
	sync_dir(path);
out:
	if (fd >= 0)
		close(fd);
	free(tmp);
	return rc;
}

/* Does the batch add anything the file does not already hold? */
static bool adds_something(const struct revocation_set *have,
			   const char *const *jtis, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!revocation_contains(have, jtis[i]))
			return true;
	return false;
}

/* The old text is kept verbatim, lines not understood included: they are
 * the operator's to fix, and must not hold up a revocation. Only a file
 * that cannot be read whole (too long) is refused. */
static int parse_existing(struct revocation_set **out, const char *path,
			  const char *text, size_t len, struct gg_err *err)
{
	struct gg_err inner = GG_ERR_INIT;
	int rc;

	rc = revocation_parse(out, text ? text : "", len, &inner);
	if (rc != GG_OK)
		return gg_err_set(err, rc, "%s: %s", path, inner.msg);
	return GG_OK;
}

int revocation_append(const char *path, const char *const *jtis, size_t n,
		      struct gg_err *err)
{
	struct revocation_set *have = NULL;
	char *lockpath = NULL, *old = NULL;
	size_t oldlen = 0, i;
	int lockfd = -1, rc;

	for (i = 0; i < n; i++) {
		rc = revocation_check_jti(jtis[i], err);
		if (rc != GG_OK)
			return rc;
	}
	lockpath = path_with(path, ".lock");
	if (!lockpath)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	lockfd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (lockfd < 0) {
		rc = gg_err_errno(err, GG_EIO, "%s", lockpath);
		goto out;
	}
	for (;;) {
		rc = flock(lockfd, LOCK_EX);
		if (rc == 0 || errno != EINTR)
			break;
	}
	if (rc != 0) {
		rc = gg_err_errno(err, GG_EIO, "%s: cannot lock", lockpath);
		goto out;
	}
	/* Under the lock, the file is exactly what the last writer left. */
	rc = read_all(&old, &oldlen, path, err);
	if (rc == GG_ENOTFOUND)
		rc = GG_OK;
	if (rc == GG_OK)
		rc = parse_existing(&have, path, old, oldlen, err);
	if (rc == GG_OK && adds_something(have, jtis, n))
		rc = replace_file(path, old ? old : "", oldlen, jtis, n, have,
				  err);
out:
	revocation_free(have);
	free(old);
	if (lockfd >= 0)
		close(lockfd); /* releases the lock */
	free(lockpath);
	return rc;
}
