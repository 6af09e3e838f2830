/*
 * log.h - the operational log (stderr), relayd style: one line per event.
 * log_warn appends strerror(errno); log_warnx does not. Never pass a token,
 * key or upstream secret to these functions. The audit log is separate.
 */
#ifndef GITGATE_LOG_H
#define GITGATE_LOG_H

enum log_level { LOG_LEVEL_WARN = 0, LOG_LEVEL_INFO = 1, LOG_LEVEL_DEBUG = 2 };

/* "log_format": text lines (default), or one JSON object per line
 * ({"time","level","msg"}) for log shippers. Set before threads start. */
enum log_format { LOG_FORMAT_TEXT = 0, LOG_FORMAT_JSON = 1 };

void log_set_level(enum log_level level);
void log_set_format(enum log_format format);
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
