/*
 * vsock's two directories of channels (chandir.h): vsock/<port> connects
 * to a guest port, vsock/listen/<port> accepts the guest's connections to
 * a host port.  Only the device's public calls (vsock.h) are used here.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>

#include "chanfs/chandir.h"
#include "chanfs/log.h"
#include "chanfs/vsock.h"

/* vsock/listen lists the ports listening now (the first 256). */
#define VSOCK_DIR_LISTED 256

/* A port name is canonical decimal: no sign, no leading zero, below
 * VMADDR_PORT_ANY (-1U, "any port" in the vsock API). */
static int vsock_dir_port(const char *dir, const char *name, uint32_t *port)
{
	uint64_t v = 0;
	const char *p;

	if (!*name || (name[0] == '0' && name[1]))
		goto bad;
	for (p = name; *p; p++) {
		if (*p < '0' || *p > '9')
			goto bad;
		v = v * 10 + (uint64_t)(*p - '0');
		if (v >= UINT32_MAX)
			goto bad;
	}
	*port = (uint32_t)v;
	return 0;
bad:
	log_info("vsock: %s/%s: not a port number (0..4294967294)", dir,
	         name);
	return -ENOENT;
}

static int vsock_dir_lookup(void *ctx, const char *name)
{
	uint32_t port;

	(void)ctx;
	return vsock_dir_port("vsock", name, &port);
}

static int vsock_dir_listen_lookup(void *ctx, const char *name)
{
	uint32_t port;

	(void)ctx;
	return vsock_dir_port("vsock/listen", name, &port);
}

static int vsock_dir_connect(void *ctx, const char *name, struct chan **out)
{
	uint32_t port;

	if (vsock_dir_port("vsock", name, &port) < 0)
		return -ENOENT;
	return vsock_connect(ctx, port, out);
}

static int vsock_dir_accept(void *ctx, const char *name, struct chan **out)
{
	uint32_t port;

	if (vsock_dir_port("vsock/listen", name, &port) < 0)
		return -ENOENT;
	return vsock_accept(ctx, port, out);
}

static void vsock_dir_wait(void *ctx, const char *name, bool waiting)
{
	uint32_t port;

	if (vsock_dir_port("vsock/listen", name, &port) == 0)
		vsock_accept_wait(ctx, port, waiting);
}

static void vsock_dir_list(void *ctx, void (*add)(void *arg, const char *name),
                           void *arg)
{
	uint32_t ports[VSOCK_DIR_LISTED];
	char name[12];
	size_t n, i;

	n = vsock_listening(ctx, ports, VSOCK_DIR_LISTED);
	for (i = 0; i < n && i < VSOCK_DIR_LISTED; i++) {
		snprintf(name, sizeof name, "%u", ports[i]);
		add(arg, name);
	}
}

static void vsock_dir_status(void *ctx, FILE *out)
{
	vsock_status(ctx, out);
}

/* A guest connection was queued on port: its waiting opens may go on. */
static void vsock_dir_incoming(void *arg, uint32_t port)
{
	char name[12];

	snprintf(name, sizeof name, "%u", port);
	chandir_ready(arg, name);
}

/* vsock lists nothing of its own: each open of a port is a new
 * connection (listen, its subdirectory, is listed by fs/). */
static const struct chandir_ops vsock_dir_ops = {
	.lookup = vsock_dir_lookup,
	.open = vsock_dir_connect,
	.status = vsock_dir_status,
};

static const struct chandir_ops vsock_dir_listen_ops = {
	.lookup = vsock_dir_listen_lookup,
	.list = vsock_dir_list,
	.open = vsock_dir_accept,
	.wait = vsock_dir_wait,
};

int vsock_register(struct vsock *v, struct chandirs *r)
{
	struct chandir *listen;

	if (!chandir_add(r, "vsock", CHANDIR_CONNECT, 0, &vsock_dir_ops, v))
		return -errno;
	listen = chandir_add(r, "vsock/listen", CHANDIR_ACCEPT, 0,
	                     &vsock_dir_listen_ops, v);
	if (!listen)
		return -errno;
	vsock_on_incoming(v, vsock_dir_incoming, listen);
	return 0;
}
