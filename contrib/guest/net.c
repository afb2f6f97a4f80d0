/*
 * Sockets: addresses, listening (a child per connection) and connecting
 * (with retries while nobody listens yet).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE	/* accept4 */
#endif
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/vm_sockets.h>

#include "guest.h"

bool guest_parse_addr(const char *s, unsigned default_cid,
			     struct guest_addr *a)
{
	struct sockaddr_vm *vm = (struct sockaddr_vm *)&a->ss;
	const char *colon;
	unsigned cid = default_cid, port;

	memset(a, 0, sizeof(*a));
	if (!strncmp(s, "unix:", 5)) {
		struct sockaddr_un *un = (struct sockaddr_un *)&a->ss;

		if (!s[5] || strlen(s + 5) >= sizeof(un->sun_path))
			return false;
		un->sun_family = AF_UNIX;
		strcpy(un->sun_path, s + 5);
		a->len = sizeof(*un);
		return true;
	}
	colon = strchr(s, ':');
	if (colon) {
		char cidbuf[16];

		if ((size_t)(colon - s) >= sizeof(cidbuf))
			return false;
		memcpy(cidbuf, s, (size_t)(colon - s));
		cidbuf[colon - s] = '\0';
		if (!guest_parse_uint(cidbuf, &cid))
			return false;
		s = colon + 1;
	}
	if (!guest_parse_uint(s, &port))
		return false;
	vm->svm_family = AF_VSOCK;
	vm->svm_cid = cid;
	vm->svm_port = port;
	a->len = sizeof(*vm);
	return true;
}

/* This machine's vsock CID, or VMADDR_CID_ANY when there is none. */
static unsigned guest_local_cid(void)
{
	unsigned int cid = VMADDR_CID_ANY;
	int fd = open("/dev/vsock", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return VMADDR_CID_ANY;
	if (ioctl(fd, IOCTL_VM_SOCKETS_GET_LOCAL_CID, &cid) < 0)
		cid = VMADDR_CID_ANY;
	close(fd);
	return cid;
}

/* CID "any" is "*"; with resolve_any, our own CID instead (a connected
 * socket's local address says "any" on Linux). */
static void guest_addr_str(const struct sockaddr_storage *ss, char *buf,
			   size_t len, bool resolve_any)
{
	if (ss->ss_family == AF_VSOCK) {
		const struct sockaddr_vm *vm = (const struct sockaddr_vm *)ss;
		unsigned cid = vm->svm_cid;

		if (cid == VMADDR_CID_ANY && resolve_any)
			cid = guest_local_cid();
		if (cid == VMADDR_CID_ANY)
			snprintf(buf, len, "*:%u", vm->svm_port);
		else
			snprintf(buf, len, "%u:%u", cid, vm->svm_port);
	} else if (ss->ss_family == AF_UNIX) {
		const struct sockaddr_un *un = (const struct sockaddr_un *)ss;

		snprintf(buf, len, "unix:%s", un->sun_path[0] ? un->sun_path : "-");
	} else {
		snprintf(buf, len, "?");
	}
}

/* "LOCAL PEER" of a connected socket, for reports. */
void guest_conn_label(int fd, char *buf, size_t len)
{
	struct sockaddr_storage l, p;
	socklen_t ll = sizeof(l), pl = sizeof(p);
	char ls[128], ps[128];

	memset(&l, 0, sizeof(l));
	memset(&p, 0, sizeof(p));
	if (getsockname(fd, (struct sockaddr *)&l, &ll) < 0)
		l.ss_family = AF_UNSPEC;
	if (getpeername(fd, (struct sockaddr *)&p, &pl) < 0)
		p.ss_family = AF_UNSPEC;
	guest_addr_str(&l, ls, sizeof(ls), true);
	guest_addr_str(&p, ps, sizeof(ps), false);
	snprintf(buf, len, "%s %s", ls, ps);
}

/* ---- listen and connect ---- */

int guest_listen(const struct guest_addr *a, const struct guest_opts *o)
{
	char where[128];
	int lfd, fd, rc;
	pid_t pid;

	guest_addr_str(&a->ss, where, sizeof(where), false);
	lfd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0) {
		guest_err("listen %s: socket: %s", where, strerror(errno));
		return 1;
	}
	if (a->ss.ss_family == AF_UNIX)
		unlink(((const struct sockaddr_un *)&a->ss)->sun_path);
	if (bind(lfd, (const struct sockaddr *)&a->ss, a->len) < 0 ||
	    listen(lfd, GUEST_BACKLOG) < 0) {
		guest_err("listen %s: %s", where, strerror(errno));
		close(lfd);
		return 1;
	}
	guest_say(o, "listening %s %s", where, guest_role_names[o->role]);
	if (o->background) {
		pid = fork();
		if (pid < 0) {
			guest_err("listen %s: fork: %s", where, strerror(errno));
			return 1;
		}
		if (pid > 0)
			_exit(0);	/* the caller goes on: we listen */
		setsid();
	}
	if (!o->once)
		signal(SIGCHLD, SIG_IGN);	/* children reap themselves */
	for (;;) {
		fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			/* A connection reset before we took it is the
			 * peer's business; anything else is ours. */
			if (errno == EINTR || errno == ECONNRESET ||
			    errno == ECONNABORTED || errno == EPROTO)
				continue;
			guest_err("listen %s: accept: %s", where, strerror(errno));
			if (errno == EMFILE || errno == ENFILE || errno == ENOMEM) {
				guest_sleep_ms(100);
				continue;
			}
			close(lfd);
			return 1;
		}
		if (o->once) {
			close(lfd);
			rc = guest_serve(fd, o);
			close(fd);
			return rc ? 1 : 0;
		}
		pid = fork();
		if (pid == 0) {
			close(lfd);
			rc = guest_serve(fd, o);
			close(fd);
			_exit(rc ? 1 : 0);
		}
		if (pid < 0)
			guest_err("listen %s: fork: %s", where, strerror(errno));
		close(fd);
	}
}

static int guest_connect_one(const struct guest_addr *a,
			     const struct guest_opts *o)
{
	char where[128];
	int fd, rc;

	guest_addr_str(&a->ss, where, sizeof(where), false);
	for (;;) {
		fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			guest_err("connect %s: socket: %s", where, strerror(errno));
			return 1;
		}
		if (a->ss.ss_family == AF_VSOCK) {
			struct timeval tv = { GUEST_CONNECT_TIMEOUT_S, 0 };

			setsockopt(fd, AF_VSOCK, SO_VM_SOCKETS_CONNECT_TIMEOUT,
				   &tv, sizeof(tv));
		}
		if (connect(fd, (const struct sockaddr *)&a->ss, a->len) == 0)
			break;
		rc = errno;
		close(fd);
		if (rc == EINTR)
			continue;
		/* Nobody listening yet (RST: ECONNRESET on vsock), or no
		 * transport loaded yet (ENODEV): worth a retry if asked. */
		if (o->retry_ms && (rc == ECONNREFUSED || rc == ECONNRESET ||
				    rc == ETIMEDOUT || rc == ENODEV ||
				    rc == ENOENT || rc == ENETUNREACH)) {
			guest_sleep_ms(o->retry_ms);
			continue;
		}
		guest_err("connect %s: %s", where, strerror(rc));
		return 1;
	}
	rc = guest_serve(fd, o);
	close(fd);
	return rc ? 1 : 0;
}

int guest_connect(const struct guest_addr *a, const struct guest_opts *o)
{
	unsigned i, started = 0, failed = 0;
	int status;
	pid_t *pids;

	if (o->count <= 1)
		return guest_connect_one(a, o);
	pids = calloc(o->count, sizeof(*pids));
	if (!pids) {
		guest_err("connect: %s", strerror(errno));
		return 1;
	}
	for (i = 0; i < o->count; i++) {
		pids[started] = fork();
		if (pids[started] == 0)
			_exit(guest_connect_one(a, o));
		if (pids[started] < 0) {
			guest_err("connect: fork: %s", strerror(errno));
			failed++;
			continue;
		}
		started++;
	}
	/* Our own children only: the caller may have others. */
	for (i = 0; i < started; i++) {
		while (waitpid(pids[i], &status, 0) < 0)
			if (errno != EINTR) {
				status = -1;
				break;
			}
		if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status))
			failed++;
	}
	free(pids);
	return failed ? 1 : 0;
}

int guest_cid(void)
{
	unsigned cid = guest_local_cid();

	if (cid == VMADDR_CID_ANY) {
		guest_err("cid: no vsock CID from /dev/vsock");
		return 1;
	}
	printf("%u\n", cid);
	return 0;
}

