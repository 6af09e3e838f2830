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
#include "gitgate/token/revocation.h"

#include <errno.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gitgate/core/limits.h"
#include "gitgate/core/strvec.h"

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
	/* The revocation file reads these as a comment, a list separator
	 * and quoting (revoking more than the jti), so a jti holding one
	 * could not be revoked exactly. Random ids (hex, base64, UUIDs) never
	 * do; a token with one is refused as malformed (fail closed). */
	if (strpbrk(jti, "#,\"'`"))
		return gg_err_set(err, GG_EINVAL,
				  "jti may not contain '#', ',' or quotes");
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

/* Sort and drop duplicates, so lookups can bsearch. */
static void set_finish(struct revocation_set *set)
{
	strvec_sort_unique(set->jtis, &set->n);
}

/* Double the array. */
static int set_grow(struct revocation_set *set, struct gg_err *err)
{
	size_t cap = set->cap ? set->cap * 2 : 16;
	char **grown;

	if (cap > SIZE_MAX / sizeof(*grown))
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	grown = realloc(set->jtis, cap * sizeof(*grown));
	if (!grown)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	set->jtis = grown;
	set->cap = cap;
	return GG_OK;
}

static int set_add(struct revocation_set *set, const char *jti, size_t len,
		   struct gg_err *err)
{
	char *copy;
	int rc;

	/* Duplicates take no room: a file may repeat an entry many times,
	 * and a hand-written line yields a few candidates per byte. Growing
	 * unless sorting freed half the array keeps that cheap. */
	if (set->n == set->cap) {
		set_finish(set);
		if (set->cap == 0 || set->n > set->cap / 2) {
			rc = set_grow(set, err);
			if (rc != GG_OK)
				return rc;
		}
	}
	copy = strndup(jti, len);
	if (!copy)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	set->jtis[set->n++] = copy;
	return GG_OK;
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
		if (memchr(entry, '#', len) || memchr(entry, ',', len) ||
		    memchr(entry, '"', len) || memchr(entry, '\'', len) ||
		    memchr(entry, '`', len))
			return gg_err_set(err, GG_EINVAL, "token may not "
					  "contain '#', ',' or quotes");
		return GG_OK;
	}
	if (len > GG_MAX_CLAIM_STR || memchr(entry, '\0', len))
		return gg_err_set(err, GG_EINVAL, "not a jti");
	memcpy(buf, entry, len);
	buf[len] = '\0';
	return revocation_check_jti(buf, err);
}

/*
 * What one line turned into. A line is well-formed when it is one entry,
 * maybe followed by a '#' comment. Anything else is read so as to revoke
 * every entry it might mean (revoking more is the safe misreading) and
 * counted as a problem whose message says what was done.
 */
struct line {
	size_t fields; /* whitespace-separated fields before a comment */
	size_t taken;  /* candidates added to the set */
	bool bearer;   /* "Bearer " (an Authorization header) skipped */
	bool hash;     /* '#' inside a field */
	bool comma;    /* ',' inside a field */
	bool quote;    /* quotes around a field or part */
	struct gg_err why; /* why the first refused candidate was refused */
};

/* Add one candidate (set NULL: count it) if it is an entry. One that is
 * not (no jti, not a token) matches no token the proxy accepts anyway: it
 * is only remembered, as the line's message if nothing on it is taken. */
static int take(struct revocation_set *set, const char *s, size_t len,
		struct line *ln, struct gg_err *err)
{
	if (len == 0 || check_entry(s, len, &ln->why) != GG_OK)
		return GG_OK;
	ln->taken++;
	return set ? set_add(set, s, len, err) : GG_OK;
}

static bool is_quote(char c)
{
	return c == '"' || c == '\'' || c == '`';
}

/* s, and s without the quotes around it ("v4.public.…", 'jti'). */
static int take_unquoted(struct revocation_set *set, const char *s,
			 size_t len, struct line *ln, struct gg_err *err)
{
	size_t a = 0, b = len;
	int rc = take(set, s, len, ln, err);

	while (a < b && is_quote(s[a]))
		a++;
	while (b > a && is_quote(s[b - 1]))
		b--;
	if (rc != GG_OK || (a == 0 && b == len))
		return rc;
	ln->quote = true;
	return take(set, s + a, b - a, ln, err);
}

/* s, and the part of it before a '#' (a comment missing its space). */
static int take_part(struct revocation_set *set, const char *s, size_t len,
		     struct line *ln, struct gg_err *err)
{
	const char *hash = memchr(s, '#', len);
	int rc = take_unquoted(set, s, len, ln, err);

	if (rc != GG_OK || !hash || hash == s)
		return rc;
	ln->hash = true;
	return take_unquoted(set, s, (size_t)(hash - s), ln, err);
}

/* One field: as written, and each comma-separated part of it ("a,b", a
 * pasted list). Each byte of input adds at most a few entries, so the
 * set stays proportional to the file, which is capped. */
static int take_field(struct revocation_set *set, const char *f, size_t len,
		      struct line *ln, struct gg_err *err)
{
	const char *p = f, *end = f + len, *comma;
	int rc = take_part(set, f, len, ln, err);

	if (rc != GG_OK || !memchr(f, ',', len))
		return rc;
	ln->comma = true;
	for (;;) {
		comma = memchr(p, ',', (size_t)(end - p));
		if (!comma)
			comma = end;
		rc = take_part(set, p, (size_t)(comma - p), ln, err);
		if (rc != GG_OK || comma == end)
			return rc;
		p = comma + 1;
	}
}

/* Skip word (any case) and the spaces after it when an entry follows:
 * "Bearer v4.public.…" pasted from an Authorization header. */
static bool skip_word(const char **line, size_t *len, const char *word)
{
	size_t n = strlen(word), i = n;

	if (*len <= n || strncasecmp(*line, word, n) || !is_space((*line)[n]))
		return false;
	while (i < *len && is_space((*line)[i]))
		i++;
	if (i == *len || (*line)[i] == '#')
		return false;
	*line += i;
	*len -= i;
	return true;
}

/* The line's problem, or NULL when it is well-formed. A line that takes
 * nothing says why its first candidate was refused (as it always did). */
static const char *line_problem(const struct line *ln)
{
	if (ln->taken == 0)
		return ln->why.msg;
	if (ln->fields > 1)
		return "several fields: each is revoked (a comment starts "
		       "with '#')";
	if (ln->bearer)
		return "'Bearer' before the entry: what follows it is revoked";
	if (ln->hash)
		return "'#' inside an entry: revoked the part before it (a "
		       "comment needs a space before '#')";
	if (ln->comma)
		return "',' inside an entry: revoked each part between "
		       "commas";
	if (ln->quote)
		return "quotes around an entry: revoked it without them";
	return NULL;
}

/* Every field before a comment. With set NULL, only fills ln. */
static int take_fields(struct revocation_set *set, const char *line,
		       size_t len, struct line *ln, struct gg_err *err)
{
	size_t n;
	int rc = GG_OK;

	while (rc == GG_OK && len && line[0] != '#') {
		for (n = 0; n < len && !is_space(line[n]); n++)
			;
		ln->fields++;
		rc = take_field(set, line, n, ln, err);
		for (line += n, len -= n; len && is_space(*line); len--)
			line++;
	}
	return rc;
}

/* One line without its '\n': trim, skip comments, take every field
 * before a comment. A strict parse takes nothing from a line that is not
 * well-formed, so it reads each line dry first. */
static int parse_line(struct revocation_set *set, const char *line, size_t len,
		      size_t lineno, bool strict, struct gg_err *err)
{
	struct line ln = { .why = GG_ERR_INIT }, again = ln;
	const char *problem;
	int rc;

	while (len && is_space(*line)) {
		line++;
		len--;
	}
	while (len && is_space(line[len - 1]))
		len--;
	if (len == 0 || line[0] == '#')
		return GG_OK;
	ln.bearer = skip_word(&line, &len, "authorization:");
	ln.bearer |= skip_word(&line, &len, "bearer");
	rc = take_fields(strict ? NULL : set, line, len, &ln, err);
	problem = line_problem(&ln);
	if (problem)
		note_problem(set, lineno, problem);
	if (rc != GG_OK || !strict || problem)
		return rc;
	return take_fields(set, line, len, &again, err);
}

/* strict: take only the entries of well-formed lines (what `revoke` may
 * count as already written); problems are counted the same either way. */
static int parse_text(struct revocation_set **out, const char *text,
		      size_t len, bool strict, struct gg_err *err)
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
		rc = parse_line(set, p, (size_t)(nl - p), ++lineno, strict,
				err);
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

int revocation_parse(struct revocation_set **out, const char *text, size_t len,
		     struct gg_err *err)
{
	return parse_text(out, text, len, false, err);
}

static int regular_file(int fd, const char *path, struct gg_err *err)
{
	struct stat st;

	if (fstat(fd, &st) != 0)
		return gg_err_errno(err, GG_EIO, "%s", path);
	if (S_ISDIR(st.st_mode))
		return gg_err_set(err, GG_EIO, "%s: %s", path, strerror(EISDIR));
	if (!S_ISREG(st.st_mode))
		return gg_err_set(err, GG_EINVAL, "%s: not a regular file",
				  path);
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
	/* O_NONBLOCK: a FIFO put there would block open() (and the proxy's
	 * polling thread with it) until a writer came; fstat refuses it. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		if (errno == ENOENT)
			return GG_ENOTFOUND;
		return gg_err_errno(err, GG_EIO, "%s", path);
	}
	rc = regular_file(fd, path, err);
	if (rc != GG_OK)
		goto out;
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
	return set && jti && strvec_contains(set->jtis, set->n, jti);
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

/* Free the entries of all[0..n) that are copies, not set's own (which
 * appear in all in their order). */
static void free_copies(char **all, size_t n, const struct revocation_set *set)
{
	size_t i, k = 0;

	for (i = 0; i < n; i++) {
		if (k < set->n && all[i] == set->jtis[k])
			k++;
		else
			free(all[i]);
	}
}

/* Both arrays are sorted and unique: merge them in one pass. */
int revocation_merge(struct revocation_set *set,
		     const struct revocation_set *from, struct gg_err *err)
{
	char **all;
	size_t i = 0, j = 0, n = 0;
	int c;

	if (!from || from->n == 0)
		return GG_OK;
	if (set->n > SIZE_MAX / sizeof(*all) - from->n)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	all = malloc((set->n + from->n) * sizeof(*all));
	if (!all)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	while (i < set->n || j < from->n) {
		if (i == set->n)
			c = 1;
		else if (j == from->n)
			c = -1;
		else
			c = strcmp(set->jtis[i], from->jtis[j]);
		if (c <= 0) {
			all[n++] = set->jtis[i++];
			j += c == 0;
			continue;
		}
		all[n] = strdup(from->jtis[j++]);
		if (!all[n]) {
			free_copies(all, n, set);
			free(all);
			return gg_err_set(err, GG_ENOMEM, "out of memory");
		}
		n++;
	}
	free(set->jtis);
	set->jtis = all;
	set->cap = set->n + from->n;
	set->n = n;
	return GG_OK;
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

/* The bytes replace_file adds to oldlen. */
static size_t added_len(const char *old, size_t oldlen, const char *const *jtis,
			size_t n, const struct revocation_set *have)
{
	size_t i, len = oldlen && old[oldlen - 1] != '\n';

	for (i = 0; i < n; i++)
		if (!revocation_contains(have, jtis[i]) &&
		    !in_batch(jtis, i, jtis[i]))
			len += strlen(jtis[i]) + 1;
	return len;
}

/* The old text is kept verbatim, lines not understood included: they are
 * the operator's to fix, and must not hold up a revocation. Only a file
 * that cannot be read whole (too long) is refused. strict: see
 * parse_text. */
static int parse_existing(struct revocation_set **out, const char *path,
			  const char *text, size_t len, bool strict,
			  struct gg_err *err)
{
	struct gg_err inner = GG_ERR_INIT;
	int rc;

	rc = parse_text(out, text ? text : "", len, strict, &inner);
	if (rc != GG_OK)
		return gg_err_set(err, rc, "%s: %s", path, inner.msg);
	return GG_OK;
}

/* The list the file holds once written, read as the proxy reads it. Built
 * before writing, so nothing can fail after the revocation is made. */
static int written_set(struct revocation_set **out, const char *path,
		       const char *old, size_t oldlen, const char *const *jtis,
		       size_t n, struct gg_err *err)
{
	size_t i;
	int rc = parse_existing(out, path, old, oldlen, false, err);

	for (i = 0; rc == GG_OK && i < n; i++)
		rc = set_add(*out, jtis[i], strlen(jtis[i]), err);
	if (rc != GG_OK) {
		revocation_free(*out);
		*out = NULL;
		return rc;
	}
	set_finish(*out);
	return GG_OK;
}

/* Take the writers' lock: flock(2) of "<path>.lock", held until *fd is
 * closed. */
static int lock_writers(int *fd, const char *path, struct gg_err *err)
{
	char *lockpath = path_with(path, ".lock");
	int rc;

	if (!lockpath)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	*fd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (*fd < 0) {
		rc = gg_err_errno(err, GG_EIO, "%s", lockpath);
		free(lockpath);
		return rc;
	}
	for (;;) {
		rc = flock(*fd, LOCK_EX);
		if (rc == 0 || errno != EINTR)
			break;
	}
	if (rc != 0)
		rc = gg_err_errno(err, GG_EIO, "%s: cannot lock", lockpath);
	free(lockpath);
	return rc;
}

/* Write the jtis the file does not hold yet. It is compared with the
 * entries of its well-formed lines only: "abc#note" revokes "abc" too,
 * but `revoke abc` still writes "abc", so the file says what was done
 * even after that line is fixed or removed. */
static int add_new(const char *path, const char *old, size_t oldlen,
		   const char *const *jtis, size_t n, struct gg_err *err)
{
	struct revocation_set *exact = NULL;
	int rc = parse_existing(&exact, path, old, oldlen, true, err);

	if (rc != GG_OK || !adds_something(exact, jtis, n))
		goto out;
	/* A file the proxy cannot read (too long) would revoke nothing. */
	if (added_len(old, oldlen, jtis, n, exact) >
	    GG_MAX_REVOCATIONS_LEN - oldlen) {
		rc = gg_err_set(err, GG_ELIMIT,
				"%s: would be longer than %d bytes", path,
				GG_MAX_REVOCATIONS_LEN);
		goto out;
	}
	rc = replace_file(path, old, oldlen, jtis, n, exact, err);
out:
	revocation_free(exact);
	return rc;
}

int revocation_append(struct revocation_set **out, const char *path,
		      const char *const *jtis, size_t n, struct gg_err *err)
{
	struct revocation_set *written = NULL;
	char *old = NULL;
	size_t oldlen = 0, i;
	int lockfd = -1, rc;

	if (out)
		*out = NULL;
	for (i = 0; i < n; i++) {
		rc = revocation_check_jti(jtis[i], err);
		if (rc != GG_OK)
			return rc;
	}
	rc = lock_writers(&lockfd, path, err);
	/* Under the lock, the file is exactly what the last writer left. */
	if (rc == GG_OK)
		rc = read_all(&old, &oldlen, path, err);
	if (rc == GG_ENOTFOUND)
		rc = GG_OK;
	if (rc == GG_OK && out)
		rc = written_set(&written, path, old, oldlen, jtis, n, err);
	if (rc == GG_OK)
		rc = add_new(path, old ? old : "", oldlen, jtis, n, err);
	if (rc == GG_OK && out) {
		*out = written;
		written = NULL;
	}
	revocation_free(written);
	free(old);
	if (lockfd >= 0)
		close(lockfd); /* releases the lock */
	return rc;
}
