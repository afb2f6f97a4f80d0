/*
 * fuzz_options — the command line parser (daemon_options_parse) against any
 * argument vector.
 *
 * The input is the arguments after argv[0], separated by NUL bytes (at
 * most FUZZ_OPTIONS_MAX_ARGS; an input that does not end in NUL has its
 * last argument ended for it).  Each input is parsed twice and must give
 * the same result both times: state getopt keeps between calls (a group
 * of short options left half-read by an error) must not leak into the
 * next parse.  Whatever the input: the result is 0,
 * DAEMON_OPTIONS_DONE or -EINVAL; on 0 the socket and mountpoint are absolute
 * paths, the mountpoint a directory, the vsock settings within their
 * documented ranges, every -l port listed and every --serial port valid,
 * once, on an absolute path; daemon_options_free releases
 * everything (ASan's leak check).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chanfs/serial.h"
#include "options.h"

#define FUZZ_OPTIONS_MAX_ARGS 64

#define CHECK(c) do { \
	if (!(c)) { \
		fprintf(stderr, "fuzz_options: %s:%d: check failed: %s\n", \
		        __FILE__, __LINE__, #c); \
		abort(); \
	} \
} while (0)

static void check_parsed(const struct daemon_options *o)
{
	struct stat st;

	CHECK(o->socket && o->socket[0] == '/');
	CHECK(o->mountpoint && o->mountpoint[0] == '/');
	CHECK(stat(o->mountpoint, &st) == 0 && S_ISDIR(st.st_mode));
	CHECK(o->vsock.guest_cid >= 3 && o->vsock.guest_cid < 0xffffffffULL);
	CHECK(o->vsock.buf_size >= 4096 &&
	      !(o->vsock.buf_size & (o->vsock.buf_size - 1)));
	CHECK(o->vsock.connect_timeout_ms > 0);
	CHECK(o->vsock.close_timeout_ms > 0);
	CHECK(o->vsock.backlog >= 1);
	CHECK(o->nlisten == 0 || o->listen);
	/* Every --serial port: a valid name given once, an absolute socket
	 * path that fits an address, not the vhost-user socket. */
	for (unsigned i = 0; i < o->nserial; i++) {
		const struct serial_sock_spec *sp = &o->serial[i];

		CHECK(serial_port_name_ok(sp->name));
		CHECK(sp->path[0] == '/' && strlen(sp->path) < 108);
		CHECK(!strchr(sp->path, ','));
		CHECK(strcmp(sp->path, o->socket));
		for (unsigned j = 0; j < i; j++)
			CHECK(strcmp(o->serial[j].name, sp->name) &&
			      strcmp(o->serial[j].path, sp->path));
	}
	if (o->debug)
		CHECK(o->foreground);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *argv[FUZZ_OPTIONS_MAX_ARGS + 2];
	struct daemon_options o, o2;
	char *buf;
	size_t pos = 0;
	int argc = 0, rc, again;

	/* One copy, so every argument is its own NUL-ended string inside
	 * an allocation ASan watches. */
	buf = malloc(size + 1);
	CHECK(buf);
	memcpy(buf, data, size);
	buf[size] = '\0';
	argv[argc++] = "chanfs";
	while (pos < size && argc < FUZZ_OPTIONS_MAX_ARGS + 1) {
		argv[argc++] = buf + pos;
		pos += strlen(buf + pos) + 1;
	}
	argv[argc] = NULL;

	rc = daemon_options_parse(&o, argc, argv);
	CHECK(rc == 0 || rc == DAEMON_OPTIONS_DONE || rc == -EINVAL);
	if (rc == 0)
		check_parsed(&o);
	again = daemon_options_parse(&o2, argc, argv);
	CHECK(again == rc);
	if (rc == 0) {
		CHECK(!strcmp(o.socket, o2.socket));
		CHECK(!strcmp(o.mountpoint, o2.mountpoint));
		CHECK(!memcmp(&o.vsock, &o2.vsock, sizeof o.vsock));
		CHECK(o.nlisten == o2.nlisten && o.debug == o2.debug &&
		      o.foreground == o2.foreground);
		CHECK(!o.nlisten || !memcmp(o.listen, o2.listen,
		                            o.nlisten * sizeof *o.listen));
		CHECK(o.nserial == o2.nserial);
		for (unsigned i = 0; i < o.nserial; i++)
			CHECK(!strcmp(o.serial[i].name, o2.serial[i].name) &&
			      !strcmp(o.serial[i].path, o2.serial[i].path) &&
			      o.serial[i].listen == o2.serial[i].listen);
		CHECK(!o.fuse_opts == !o2.fuse_opts);
		CHECK(!o.fuse_opts || !strcmp(o.fuse_opts, o2.fuse_opts));
	}
	daemon_options_free(&o);
	daemon_options_free(&o2);
	free(buf);
	fflush(stdout);
	return 0;
}
