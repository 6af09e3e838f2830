/*
 * tls.c - the HTTPS listener's certificate: load, check, swap (tls.h).
 *
 * GnuTLS does the parsing. The pair is handed to libmicrohttpd through a
 * certificate callback rather than MHD_OPTION_HTTPS_MEM_CERT/KEY: those
 * are read once when the daemon starts, and replacing the daemon to load
 * a renewed certificate would drop every open connection.
 */
#include "gitgate/http/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gitgate/config/config.h"
#include "gitgate/core/filesig.h"
#include "gitgate/core/limits.h"
#include "gitgate/core/timeutil.h"

/* Chains longer than this are a mistake (a CA bundle in the wrong file). */
#define TLS_MAX_CHAIN 8

const char tls_priorities[] =
	"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:%SERVER_PRECEDENCE";

struct tls_cert {
	gnutls_pcert_st pcerts[TLS_MAX_CHAIN];
	unsigned npcerts;
	gnutls_privkey_t key;
	int64_t not_before, not_after;
	char serial[2 * 20 + 1]; /* RFC 5280: at most 20 octets */
	struct tls_cert *retired_next; /* tls_server's list of old pairs */
};

/* ---- reading ------------------------------------------------------- */

/* The certificate file is public: a plain bounded read, errno named. */
static int read_cert_file(gnutls_datum_t *out, const char *path,
			  struct gg_err *err)
{
	unsigned char *buf = NULL;
	size_t len = 0;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	struct stat st;
	int ret = GG_OK;

	if (fd < 0)
		return gg_err_errno(err, GG_EIO, "tls.cert_file: %s", path);
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		ret = gg_err_set(err, GG_EINVAL,
				 "tls.cert_file: %s: not a regular file", path);
		goto out;
	}
	buf = malloc(GG_MAX_TLS_FILE_LEN + 1);
	if (!buf) {
		ret = gg_err_set(err, GG_ENOMEM, "out of memory");
		goto out;
	}
	while ((n = read(fd, buf + len, GG_MAX_TLS_FILE_LEN + 1 - len)) > 0)
		len += (size_t)n;
	if (n < 0)
		ret = gg_err_errno(err, GG_EIO, "tls.cert_file: %s", path);
	else if (len > GG_MAX_TLS_FILE_LEN)
		ret = gg_err_set(err, GG_ELIMIT,
				 "tls.cert_file: %s: larger than %d bytes",
				 path, GG_MAX_TLS_FILE_LEN);
out:
	close(fd);
	if (ret) {
		free(buf);
		return ret;
	}
	out->data = buf;
	out->size = (unsigned)len;
	return GG_OK;
}

/* ---- checks -------------------------------------------------------- */

static void format_time(char *out, size_t outsz, int64_t t)
{
	struct gg_err ignored = GG_ERR_INIT;

	if (timeutil_format_rfc3339(out, outsz, t, &ignored) != 0)
		snprintf(out, outsz, "@%lld", (long long)t);
}

static int check_validity(struct tls_cert *c, const char *path, int64_t now,
			  struct gg_err *err)
{
	char when[TIMEUTIL_RFC3339_SIZE + 8];

	if (c->not_after < now) {
		format_time(when, sizeof(when), c->not_after);
		return gg_err_set(err, GG_EEXPIRED,
				  "tls.cert_file: %s: certificate expired on %s",
				  path, when);
	}
	if (c->not_before > now) {
		format_time(when, sizeof(when), c->not_before);
		return gg_err_set(err, GG_ENOTYET,
				  "tls.cert_file: %s: certificate not valid "
				  "before %s",
				  path, when);
	}
	return GG_OK;
}

/* The key is the leaf's when both name the same public key. */
static int check_key_matches(gnutls_x509_crt_t leaf, gnutls_x509_privkey_t key,
			     const char *cert_file, const char *key_file,
			     struct gg_err *err)
{
	unsigned char a[64], b[64];
	size_t alen = sizeof(a), blen = sizeof(b);

	if (gnutls_x509_crt_get_key_id(leaf, GNUTLS_KEYID_USE_SHA256, a,
				       &alen) < 0 ||
	    gnutls_x509_privkey_get_key_id(key, GNUTLS_KEYID_USE_SHA256, b,
					   &blen) < 0 ||
	    alen != blen || memcmp(a, b, alen) != 0)
		return gg_err_set(err, GG_EINVAL,
				  "tls.key_file: %s: not the key of the "
				  "certificate in %s",
				  key_file, cert_file);
	return GG_OK;
}

static void read_leaf_facts(struct tls_cert *c, gnutls_x509_crt_t leaf)
{
	unsigned char serial[20];
	size_t n = sizeof(serial), i;

	c->not_before = (int64_t)gnutls_x509_crt_get_activation_time(leaf);
	c->not_after = (int64_t)gnutls_x509_crt_get_expiration_time(leaf);
	c->serial[0] = '\0';
	if (gnutls_x509_crt_get_serial(leaf, serial, &n) < 0)
		return;
	for (i = 0; i < n && i < sizeof(serial); i++)
		snprintf(c->serial + 2 * i, 3, "%02x", serial[i]);
}

/* ---- loading ------------------------------------------------------- */

static int parse_chain(gnutls_x509_crt_t **crts, unsigned *n,
		       const char *path, struct gg_err *err)
{
	gnutls_datum_t pem = { NULL, 0 };
	int ret = read_cert_file(&pem, path, err), rc;

	if (ret)
		return ret;
	rc = gnutls_x509_crt_list_import2(crts, n, &pem, GNUTLS_X509_FMT_PEM,
					  0);
	free(pem.data);
	if (rc == GNUTLS_E_BASE64_DECODING_ERROR ||
	    rc == GNUTLS_E_NO_CERTIFICATE_FOUND || (rc >= 0 && *n == 0))
		return gg_err_set(err, GG_EINVAL,
				  "tls.cert_file: %s: no PEM certificate in it",
				  path);
	if (rc < 0)
		return gg_err_set(err, GG_EINVAL, "tls.cert_file: %s: %s",
				  path, gnutls_strerror(rc));
	if (*n > TLS_MAX_CHAIN)
		return gg_err_set(err, GG_ELIMIT,
				  "tls.cert_file: %s: more than %d "
				  "certificates",
				  path, TLS_MAX_CHAIN);
	return GG_OK;
}

/* Parse the private key; the file's bytes are wiped whatever happens. */
static int parse_key(gnutls_x509_privkey_t *out, const char *path,
		     struct gg_err *err)
{
	char label[GG_ERR_MSG_MAX];
	char *text = NULL;
	size_t len = 0;
	gnutls_datum_t pem;
	int ret, rc;

	snprintf(label, sizeof(label), "tls.key_file: %s", path);
	ret = config_read_secret_file(&text, &len, path, label,
				      GG_MAX_TLS_FILE_LEN, err);
	if (ret)
		return ret;
	rc = gnutls_x509_privkey_init(out);
	if (rc >= 0) {
		pem.data = (unsigned char *)text;
		pem.size = (unsigned)len;
		rc = gnutls_x509_privkey_import2(*out, &pem,
						 GNUTLS_X509_FMT_PEM, NULL, 0);
	}
	config_secret_free(text); /* wipes */
	if (rc < 0)
		/* GnuTLS's reason only: it never quotes the key. */
		return gg_err_set(err, GG_EINVAL,
				  "tls.key_file: %s: not a PEM private key "
				  "without a passphrase (%s)",
				  path, gnutls_strerror(rc));
	return GG_OK;
}

/* Hand crts and key over to c in GnuTLS's handshake form. */
static int adopt(struct tls_cert *c, gnutls_x509_crt_t *crts, unsigned n,
		 gnutls_x509_privkey_t *key, struct gg_err *err)
{
	int rc;

	c->npcerts = n;
	rc = gnutls_pcert_import_x509_list(c->pcerts, crts, &c->npcerts, 0);
	if (rc < 0) {
		c->npcerts = 0;
		return gg_err_set(err, GG_EINVAL, "tls: %s",
				  gnutls_strerror(rc));
	}
	rc = gnutls_privkey_init(&c->key);
	if (rc >= 0)
		rc = gnutls_privkey_import_x509(
			c->key, *key, GNUTLS_PRIVKEY_IMPORT_AUTO_RELEASE);
	if (rc < 0)
		return gg_err_set(err, GG_EINVAL, "tls.key_file: %s",
				  gnutls_strerror(rc));
	*key = NULL; /* c->key owns it now */
	return GG_OK;
}

static void free_chain(gnutls_x509_crt_t *crts, unsigned n)
{
	unsigned i;

	for (i = 0; i < n; i++)
		gnutls_x509_crt_deinit(crts[i]);
	gnutls_free(crts);
}

int tls_cert_load(struct tls_cert **out, const char *cert_file,
		  const char *key_file, int64_t now, struct gg_err *err)
{
	gnutls_x509_crt_t *crts = NULL;
	gnutls_x509_privkey_t key = NULL;
	struct tls_cert *c = calloc(1, sizeof(*c));
	unsigned n = 0;
	int ret;

	*out = NULL;
	if (!c)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	ret = parse_chain(&crts, &n, cert_file, err);
	if (ret)
		goto out;
	read_leaf_facts(c, crts[0]);
	ret = check_validity(c, cert_file, now, err);
	if (ret == 0)
		ret = parse_key(&key, key_file, err);
	if (ret == 0)
		ret = check_key_matches(crts[0], key, cert_file, key_file, err);
	if (ret == 0)
		ret = adopt(c, crts, n, &key, err);
	if (ret == 0) {
		*out = c;
		c = NULL;
	}
out:
	if (key)
		gnutls_x509_privkey_deinit(key); /* GnuTLS zeroes key mpis */
	free_chain(crts, n);
	tls_cert_free(c);
	return ret;
}

void tls_cert_free(struct tls_cert *c)
{
	unsigned i;

	if (!c)
		return;
	for (i = 0; i < c->npcerts; i++)
		gnutls_pcert_deinit(&c->pcerts[i]);
	if (c->key)
		gnutls_privkey_deinit(c->key);
	free(c);
}

int64_t tls_cert_not_before(const struct tls_cert *c)
{
	return c->not_before;
}

int64_t tls_cert_not_after(const struct tls_cert *c)
{
	return c->not_after;
}

void tls_cert_describe(const struct tls_cert *c, char *buf, size_t bufsz)
{
	char when[TIMEUTIL_RFC3339_SIZE + 8];

	format_time(when, sizeof(when), c->not_after);
	snprintf(buf, bufsz, "serial %s, expires %s",
		 c->serial[0] ? c->serial : "?", when);
}

int tls_check_support(struct gg_err *err)
{
	if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
		return gg_err_set(err, GG_ERR,
				  "tls: this libmicrohttpd was built without "
				  "HTTPS support");
	return GG_OK;
}

/* ---- the served pair ----------------------------------------------- */

struct tls_server {
	char *cert_file, *key_file;
	struct filesig cert_sig, key_sig; /* as last tried */
	struct tls_cert *current;
	struct tls_cert *retired; /* served before; handshakes may hold them */
};

/* GnuTLS's retrieve callback has no payload: the one server, published
 * under this lock, swapped by the thread that reloads. */
static pthread_mutex_t served_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tls_server *served;

int tls_server_new(struct tls_server **out, const char *cert_file,
		   const char *key_file, struct gg_err *err)
{
	struct tls_server *ts = calloc(1, sizeof(*ts));
	int ret;

	*out = NULL;
	if (!ts)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	ts->cert_file = strdup(cert_file);
	ts->key_file = strdup(key_file);
	if (!ts->cert_file || !ts->key_file) {
		tls_server_free(ts);
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	}
	ts->cert_sig = filesig_of(cert_file);
	ts->key_sig = filesig_of(key_file);
	ret = tls_cert_load(&ts->current, cert_file, key_file,
			    timeutil_now(), err);
	pthread_mutex_lock(&served_lock);
	if (ret == 0 && served)
		ret = gg_err_set(err, GG_EEXISTS, "tls: already serving");
	if (ret == 0)
		served = ts;
	pthread_mutex_unlock(&served_lock);
	if (ret) {
		tls_server_free(ts);
		return ret;
	}
	*out = ts;
	return GG_OK;
}

static bool files_changed(struct tls_server *ts)
{
	struct filesig cert = filesig_of(ts->cert_file);
	struct filesig key = filesig_of(ts->key_file);
	bool changed = !filesig_equal(&cert, &ts->cert_sig) ||
		       !filesig_equal(&key, &ts->key_sig);

	ts->cert_sig = cert;
	ts->key_sig = key;
	return changed;
}

int tls_server_refresh(struct tls_server *ts, int force, struct gg_err *err)
{
	struct tls_cert *next = NULL;
	int ret;

	if (!files_changed(ts) && !force)
		return 0;
	ret = tls_cert_load(&next, ts->cert_file, ts->key_file,
			    timeutil_now(), err);
	if (ret)
		return ret;
	pthread_mutex_lock(&served_lock);
	ts->current->retired_next = ts->retired;
	ts->retired = ts->current;
	ts->current = next;
	pthread_mutex_unlock(&served_lock);
	return 1;
}

const struct tls_cert *tls_server_current(struct tls_server *ts)
{
	const struct tls_cert *c;

	pthread_mutex_lock(&served_lock);
	c = ts->current;
	pthread_mutex_unlock(&served_lock);
	return c;
}

void tls_server_free(struct tls_server *ts)
{
	struct tls_cert *c, *next;

	if (!ts)
		return;
	pthread_mutex_lock(&served_lock);
	if (served == ts)
		served = NULL;
	pthread_mutex_unlock(&served_lock);
	for (c = ts->retired; c; c = next) {
		next = c->retired_next;
		tls_cert_free(c);
	}
	tls_cert_free(ts->current);
	free(ts->cert_file);
	free(ts->key_file);
	free(ts);
}

int tls_server_retrieve(gnutls_session_t session,
			const gnutls_datum_t *req_ca_rdn, int nreqs,
			const gnutls_pk_algorithm_t *pk_algos,
			int pk_algos_length, gnutls_pcert_st **pcert,
			unsigned int *pcert_length, gnutls_privkey_t *privkey)
{
	int ret = -1;

	(void)session;
	(void)req_ca_rdn;
	(void)nreqs;
	(void)pk_algos;
	(void)pk_algos_length;
	pthread_mutex_lock(&served_lock);
	if (served && served->current) {
		/* Borrowed by GnuTLS (it frees nothing it got from a
		 * retrieve_function2): retired pairs stay until shutdown. */
		*pcert = served->current->pcerts;
		*pcert_length = served->current->npcerts;
		*privkey = served->current->key;
		ret = 0;
	}
	pthread_mutex_unlock(&served_lock);
	return ret;
}
