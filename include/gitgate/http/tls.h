/*
 * tls.h - the certificate and key of the sandbox-facing HTTPS listener
 * (config "tls"), checked at load and swapped on reload.
 *
 * struct tls_cert is one loaded pair, immutable once loaded: the chain
 * (leaf first) and the private key, in GnuTLS's form for a handshake. A
 * pair is loaded only when both files parse, the key is the leaf's
 * (same public key), the leaf is valid now, and the key file is private
 * (regular, no group/other bits, as config_read_secret_file checks). The
 * key file's bytes are wiped once parsed; no message ever holds them.
 *
 * struct tls_server is what the listener serves: the current pair for new
 * handshakes. A reload loads a new pair beside it and swaps it in; a
 * handshake already under way or a connection already open keeps the
 * pair it started with, which is why replaced pairs are retired, not
 * freed, until tls_server_free (after the daemon has stopped). A failed
 * reload keeps the current pair.
 */
#ifndef GITGATE_TLS_H
#define GITGATE_TLS_H

#include <gnutls/abstract.h>
#include <stddef.h>
#include <stdint.h>

#include "gitgate/core/err.h"

struct tls_cert;

/*
 * Load cert_file and key_file, judged valid at time now (Unix seconds).
 * Messages name the file and the reason, for example
 *   "tls.cert_file: /p/cert.pem: certificate expired on 2026-01-01T00:00:00Z"
 *   "tls.cert_file: /p/cert.pem: certificate not valid before ..."
 *   "tls.cert_file: /p/cert.pem: no PEM certificate in it"
 *   "tls.key_file: /p/key.pem: permissions 0644 are too open (want 0600)"
 *   "tls.key_file: /p/key.pem: not the key of the certificate in /p/cert.pem"
 */
int tls_cert_load(struct tls_cert **out, const char *cert_file,
		  const char *key_file, int64_t now, struct gg_err *err);
void tls_cert_free(struct tls_cert *c);

/* The leaf's validity period, Unix seconds. */
int64_t tls_cert_not_before(const struct tls_cert *c);
int64_t tls_cert_not_after(const struct tls_cert *c);

/* One line for the log: "serial 1a2b..., expires 2026-12-09T10:00:00Z". */
void tls_cert_describe(const struct tls_cert *c, char *buf, size_t bufsz);

/* Does libmicrohttpd here serve HTTPS? GG_OK or GG_ERR saying it does not. */
int tls_check_support(struct gg_err *err);

/* The GnuTLS priority string: TLS 1.2 and 1.3 only. */
extern const char tls_priorities[];

struct tls_server;

/*
 * Load the pair and make it the one tls_server_retrieve hands out. Only
 * one tls_server may exist at a time (GnuTLS's callback has no payload):
 * a second is refused with GG_EEXISTS.
 */
int tls_server_new(struct tls_server **out, const char *cert_file,
		   const char *key_file, struct gg_err *err);

/*
 * Reload when either file changed (or always when force): 1 when a new
 * pair is now served, 0 when nothing changed, negative when the new files
 * were refused (err says why; the current pair stays). A refused change
 * is not tried again until a file changes again.
 */
int tls_server_refresh(struct tls_server *ts, int force, struct gg_err *err);

/* The pair now served (borrowed; valid until tls_server_free). */
const struct tls_cert *tls_server_current(struct tls_server *ts);

/* Call after the daemon has stopped: frees every pair ever served. */
void tls_server_free(struct tls_server *ts);

/* For MHD_OPTION_HTTPS_CERT_CALLBACK: the current pair, for each new
 * handshake. */
int tls_server_retrieve(gnutls_session_t session,
			const gnutls_datum_t *req_ca_rdn, int nreqs,
			const gnutls_pk_algorithm_t *pk_algos,
			int pk_algos_length, gnutls_pcert_st **pcert,
			unsigned int *pcert_length, gnutls_privkey_t *privkey);

#endif
