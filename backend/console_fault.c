/*
 * console faults: what a guest does wrong, counted and logged so that a
 * guest repeating itself cannot flood the log.
 */
#include <stdarg.h>
#include <stdio.h>

#include "chanfs/log.h"
#include "console_priv.h"

void console_fault(struct console *c, enum console_fault f,
                   const char *fmt, ...)
{
	uint64_t n = ++c->faults[f];
	char line[256];
	va_list ap;

	/* One line the first time, then at the 10th, 100th... */
	while (n % 10 == 0)
		n /= 10;
	if (n != 1)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (c->faults[f] == 1)
		log_warnx("%s", line);
	else
		log_warnx("%s (%llu times)", line,
		          (unsigned long long)c->faults[f]);
}
