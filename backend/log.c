#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "chanfs/log.h"

/* Logging is process-wide by nature (stderr or syslog); these are set once
 * at startup and only read afterwards. */
static const char *log_prog = "chanfs";
static bool log_dbg;
static bool log_sys;

void log_init(const char *prog, bool debug)
{
	if (prog)
		log_prog = prog;
	log_dbg = debug;
}

void log_to_syslog(void)
{
	/* LOG_NDELAY: connect now; without a log socket glibc tries again
	 * at every line, so a journal started later still gets them. */
	openlog(log_prog, LOG_PID | LOG_NDELAY, LOG_DAEMON);
	log_sys = true;
}

bool log_debug_enabled(void)
{
	return log_dbg;
}

static void log_vline(int prio, const char *fmt, va_list ap, int err)
{
	char line[1024];
	int n = vsnprintf(line, sizeof line, fmt, ap);

	if (n < 0)
		return;
	if (log_sys) {
		/* syslog's ident and pid take the place of the prefix. */
		if (err)
			syslog(prio, "%s: %s", line, strerror(err));
		else
			syslog(prio, "%s", line);
		return;
	}
	if (err)
		fprintf(stderr, "%s: %s: %s\n", log_prog, line, strerror(err));
	else
		fprintf(stderr, "%s: %s\n", log_prog, line);
}

void log_warn(const char *fmt, ...)
{
	int err = errno;
	va_list ap;

	va_start(ap, fmt);
	log_vline(LOG_WARNING, fmt, ap, err);
	va_end(ap);
	errno = err;
}

void log_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vline(LOG_WARNING, fmt, ap, 0);
	va_end(ap);
}

void log_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vline(LOG_INFO, fmt, ap, 0);
	va_end(ap);
}

void log_debug(const char *fmt, ...)
{
	va_list ap;

	if (!log_dbg)
		return;
	va_start(ap, fmt);
	log_vline(LOG_DEBUG, fmt, ap, 0);
	va_end(ap);
}

void fatal(const char *fmt, ...)
{
	int err = errno;
	va_list ap;

	va_start(ap, fmt);
	log_vline(LOG_ERR, fmt, ap, err);
	va_end(ap);
	exit(1);
}

void fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vline(LOG_ERR, fmt, ap, 0);
	va_end(ap);
	exit(1);
}
