#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chanfs/log.h"

/* Logging is process-wide by nature (stderr); these two are set once at
 * startup and only read afterwards. */
static const char *log_prog = "chanfs";
static bool log_dbg;

void log_init(const char *prog, bool debug)
{
	if (prog)
		log_prog = prog;
	log_dbg = debug;
}

bool log_debug_enabled(void)
{
	return log_dbg;
}

static void log_vline(const char *fmt, va_list ap, int err)
{
	char line[1024];
	int n = vsnprintf(line, sizeof line, fmt, ap);

	if (n < 0)
		return;
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
	log_vline(fmt, ap, err);
	va_end(ap);
	errno = err;
}

void log_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vline(fmt, ap, 0);
	va_end(ap);
}

void log_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vline(fmt, ap, 0);
	va_end(ap);
}

void log_debug(const char *fmt, ...)
{
	va_list ap;

	if (!log_dbg)
		return;
	va_start(ap, fmt);
	log_vline(fmt, ap, 0);
	va_end(ap);
}

void fatal(const char *fmt, ...)
{
	int err = errno;
	va_list ap;

	va_start(ap, fmt);
	log_vline(fmt, ap, err);
	va_end(ap);
	exit(1);
}

void fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vline(fmt, ap, 0);
	va_end(ap);
	exit(1);
}
