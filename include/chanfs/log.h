/*
 * log — one line per event: on stderr ("chanfs: LINE"), or, once the daemon
 * is in the background (stderr is /dev/null then), on syslog.
 *
 * Every rejection of outside input logs exactly one line that names what was
 * wrong and where it came from ("vu: SET_VRING_NUM: queue 3 out of range").
 * log_debug lines appear only with -d (protocol traces).
 */
#ifndef CHANFS_LOG_H
#define CHANFS_LOG_H

#include <stdbool.h>

/* Set the program name used as line prefix and whether debug lines print. */
void log_init(const char *prog, bool debug);
/* From now on send every line to syslog instead of stderr: facility
 * LOG_DAEMON, ident the program name, with the pid (the journal catches
 * it); the same text without the "chanfs: " prefix.  Priorities: log_warn,
 * log_warnx LOG_WARNING; log_info LOG_INFO; log_debug LOG_DEBUG; fatal,
 * fatalx LOG_ERR.  Call once, after going to the background. */
void log_to_syslog(void);
/* True when debug lines are enabled (lets callers skip building traces). */
bool log_debug_enabled(void);

/* log_warn appends ": strerror(errno)"; the x variants do not. */
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Log and exit(1). Only for startup failures, never for outside input. */
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
