#include "gitgate/http/admin.h"

#include <microhttpd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gitgate/core/log.h"
#include "gitgate/core/metrics.h"
#include "gitgate/http/listener.h"

/* A probe or a scrape every few seconds from a handful of clients: a
 * small pool, and short timeouts so an idle scraper cannot hold it. */
#define ADMIN_MAX_CONNECTIONS 16
#define ADMIN_CONN_TIMEOUT_S 10
#define ADMIN_READY_MAX 2048

struct admin {
	struct MHD_Daemon *daemon;
	int fd;
	admin_ready_fn ready;
	void *cls;
};

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status,
			     const char *type, void *body, size_t len,
			     enum MHD_ResponseMemoryMode mode)
{
	struct MHD_Response *resp =
		MHD_create_response_from_buffer(len, body, mode);
	enum MHD_Result ret;

	if (!resp) {
		if (mode == MHD_RESPMEM_MUST_FREE)
			free(body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, "Content-Type", type);
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(resp, "Allow", "GET, HEAD");
	ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result text(struct MHD_Connection *conn, unsigned status,
			    const char *msg)
{
	return reply(conn, status, "text/plain; charset=utf-8", (void *)msg,
		     strlen(msg), MHD_RESPMEM_MUST_COPY);
}

static enum MHD_Result answer_metrics(struct MHD_Connection *conn)
{
	struct gg_err err = GG_ERR_INIT;
	char *body;
	size_t len;

	if (metrics_render(&body, &len, &err) != 0)
		return text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
			    "out of memory\n");
	return reply(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; "
					"charset=utf-8",
		     body, len, MHD_RESPMEM_MUST_FREE);
}

static enum MHD_Result answer_ready(struct admin *a,
				    struct MHD_Connection *conn)
{
	char why[ADMIN_READY_MAX];

	why[0] = '\0';
	if (a->ready(a->cls, why, sizeof(why)) == 0)
		return text(conn, MHD_HTTP_OK, "ready\n");
	return text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, why);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
				  const char *url, const char *method,
				  const char *version, const char *upload_data,
				  size_t *upload_data_size, void **con_cls)
{
	struct admin *a = cls;
	bool get = !strcmp(method, "GET") || !strcmp(method, "HEAD");

	(void)version;
	(void)upload_data;
	/* No body is read: answer on the first call, dropping any. */
	if (!*con_cls) {
		*con_cls = a;
		if (get)
			return MHD_YES;
	}
	*upload_data_size = 0;
	if (strcmp(url, "/metrics") && strcmp(url, "/healthz") &&
	    strcmp(url, "/readyz"))
		return text(conn, MHD_HTTP_NOT_FOUND,
			    "not found: the admin listener serves /metrics, "
			    "/healthz and /readyz\n");
	if (!get)
		return text(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
			    "method not allowed\n");
	if (!strcmp(url, "/metrics"))
		return answer_metrics(conn);
	if (!strcmp(url, "/readyz"))
		return answer_ready(a, conn);
	return text(conn, MHD_HTTP_OK, "ok\n");
}

int admin_new(struct admin **out, const char *host, unsigned short port,
	      admin_ready_fn ready, void *cls, struct gg_err *err)
{
	struct admin *a = calloc(1, sizeof(*a));

	*out = NULL;
	if (!a)
		return gg_err_set(err, GG_ENOMEM, "out of memory");
	a->ready = ready;
	a->cls = cls;
	a->fd = listener_open("admin_listen", host, port, err);
	if (a->fd < 0) {
		int ret = a->fd;

		free(a);
		return ret;
	}
	a->daemon = MHD_start_daemon(
		MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ITC |
			MHD_USE_ERROR_LOG,
		0, NULL, NULL, on_request, a,
		MHD_OPTION_EXTERNAL_LOGGER, listener_mhd_log, "admin http",
		MHD_OPTION_LISTEN_SOCKET, a->fd,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned)ADMIN_MAX_CONNECTIONS,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)ADMIN_CONN_TIMEOUT_S,
		MHD_OPTION_END);
	if (!a->daemon) {
		admin_free(a);
		return gg_err_set(err, GG_ERR,
				  "admin_listen: cannot start HTTP server");
	}
	*out = a;
	return GG_OK;
}

void admin_free(struct admin *a)
{
	if (!a)
		return;
	/* Quiesced first, the socket is ours again to close, once: a stop
	 * alone would have libmicrohttpd close it too. */
	if (a->daemon && MHD_quiesce_daemon(a->daemon) < 0)
		a->fd = -1; /* not handed back: the stop closes it */
	if (a->daemon)
		MHD_stop_daemon(a->daemon);
	if (a->fd >= 0)
		close(a->fd);
	free(a);
}
