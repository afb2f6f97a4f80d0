/*
 * qmp: one command to QEMU's QMP monitor (a UNIX socket given with
 * -qmp unix:PATH,server=on,wait=off): the greeting, qmp_capabilities,
 * then {"execute": COMMAND}; it succeeds when QEMU answers "return".
 * Events QEMU sends meanwhile (STOP, RESUME) are skipped.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "e2e_client.h"

/* The next line from QEMU that is not an event; 0 or -1 (reported). */
static int client_qmp_answer(int fd, const char *what, char *line, size_t n)
{
	int r;

	do {
		r = client_read_line(fd, line, n);
		if (r <= 0) {
			client_fail("qmp %s: no answer (%s)", what,
				    r ? strerror(-r) : "EOF");
			return -1;
		}
	} while (strstr(line, "\"event\""));
	if (!strstr(line, "\"return\"")) {
		client_fail("qmp %s: %s", what, line);
		return -1;
	}
	return 0;
}

int client_qmp(const char *path, const char *command)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char line[4096], req[256];
	int fd, rc = 1;

	if (strlen(path) >= sizeof(sa.sun_path) ||
	    strlen(command) > sizeof(req) - 32) {
		client_fail("qmp: path or command too long");
		return 1;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		client_fail("qmp: connect %s: %s", path, strerror(errno));
		goto out;
	}
	if (client_read_line(fd, line, sizeof(line)) <= 0 || !strstr(line, "\"QMP\"")) {
		client_fail("qmp: %s: no greeting", path);
		goto out;
	}
	snprintf(req, sizeof(req), "{\"execute\": \"qmp_capabilities\"}\n");
	if (client_write_all(fd, req, strlen(req)) ||
	    client_qmp_answer(fd, "qmp_capabilities", line, sizeof(line)))
		goto out;
	snprintf(req, sizeof(req), "{\"execute\": \"%s\"}\n", command);
	if (client_write_all(fd, req, strlen(req)) ||
	    client_qmp_answer(fd, command, line, sizeof(line)))
		goto out;
	client_note("qmp %s: %s", command, line);
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	return rc;
}
