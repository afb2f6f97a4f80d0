/*
 * test_engine_common.c — helpers of the engine's integration tests (see
 * test_engine.h).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chanfs/vu.h"
#include "test_engine.h"

void engine_start(struct vmm_proc *p, bool shuffle)
{
	const char *exe = getenv("CHANFS_ECHODEV");
	char cid[32];
	char *argv[8];
	int n = 0, r;

	if (!exe)
		fail_msg("CHANFS_ECHODEV is not set (run through meson test)");
	assert_int_equal(vmm_proc_init(p), 0);
	snprintf(cid, sizeof(cid), "%llu", (unsigned long long)ENGINE_CID);
	argv[n++] = (char *)exe;
	argv[n++] = "-s";
	argv[n++] = p->sock;
	argv[n++] = "--cid";
	argv[n++] = cid;
	if (shuffle)
		argv[n++] = "--shuffle";
	argv[n] = NULL;
	r = vmm_proc_spawn(p, argv, ENGINE_START_MS);
	if (r < 0) {
		vmm_proc_log_dump(p, 0);
		vmm_proc_cleanup(p);
		fail_msg("starting %s: %s", exe, strerror(-r));
	}
	print_message("echodev pid %d on %s%s\n", (int)p->pid, p->sock,
	              shuffle ? " (--shuffle)" : "");
}

void engine_stop(struct vmm_proc *p)
{
	int rc = vmm_proc_stop(p, ENGINE_STOP_MS);

	if (rc != 0) {
		vmm_proc_log_dump(p, 0);
		vmm_proc_cleanup(p);
		fail_msg("echodev did not exit cleanly on SIGTERM (status %d)",
		         rc);
	}
	vmm_proc_cleanup(p);
}

static int engine_setup(void **state, bool shuffle)
{
	struct vmm_proc *p = calloc(1, sizeof(*p));

	if (!p)
		return -1;
	engine_start(p, shuffle);
	*state = p;
	return 0;
}

int engine_group_setup(void **state)
{
	return engine_setup(state, false);
}

int engine_group_setup_shuffle(void **state)
{
	return engine_setup(state, true);
}

int engine_group_teardown(void **state)
{
	struct vmm_proc *p = *state;

	engine_stop(p);
	free(p);
	return 0;
}

struct vmm *engine_connect(struct vmm_proc *p, const struct vmm_opts *opts)
{
	struct vmm_opts o = { 0 };
	struct vmm *v;

	if (opts)
		o = *opts;
	if (!o.timeout_ms)
		o.timeout_ms = ENGINE_REPLY_MS;
	v = vmm_connect(p->sock, &o);
	if (!v) {
		vmm_proc_log_dump(p, 0);
		fail_msg("front-end could not connect and complete the "
		         "handshake: %s", strerror(errno));
	}
	return v;
}

struct vmm *engine_connect_until(struct vmm_proc *p, uint32_t request,
                                 unsigned q)
{
	struct vmm_opts o = { .need_reply = true,
	                      .timeout_ms = ENGINE_REPLY_MS };
	struct vmm *v;
	int r;

	v = vmm_connect_raw(p->sock, &o);
	if (!v)
		fail_msg("connect: %s", strerror(errno));
	r = vmm_handshake_until(v, request, q);
	if (r < 0) {
		vmm_disconnect(v);
		vmm_proc_log_dump(p, 0);
		fail_msg("handshake up to %s: %s", vu_request_name(request),
		         strerror(-r));
	}
	return v;
}

void engine_echo_ok(struct vmm_proc *p, const char *step, uint64_t bytes)
{
	struct vmm_echo_opts eo = { .bytes = bytes, .max_chunk = 8192,
	                            .rx_size = 4096, .seed = bytes };
	struct vmm_echo_result res;
	size_t mark = vmm_proc_log_size(p);
	struct vmm *v = engine_connect(p, NULL);
	int r = vmm_echo_run(v, &eo, &res);

	vmm_disconnect(v);
	if (r < 0) {
		vmm_proc_log_dump(p, mark);
		fail_msg("%s: a good front-end's data transfer failed: %s",
		         step, res.error);
	}
	print_message("  then a good front-end moved %llu bytes both ways\n",
	              (unsigned long long)res.received);
}

bool engine_rejected(struct vmm *v, uint32_t request)
{
	uint64_t ack = 0;
	int r = vmm_recv_reply(v, request, &ack, sizeof(ack));

	if (r == -ECONNRESET)
		return true;
	if (r == (int)sizeof(ack))
		return ack != 0;
	fail_msg("%s: neither an ack nor a disconnect (%s)",
	         vu_request_name(request) ? vu_request_name(request) : "?",
	         r < 0 ? strerror(-r) : "reply of the wrong size");
	return false;
}

void engine_alive(struct vmm_proc *p, const char *step)
{
	if (!vmm_proc_alive(p)) {
		vmm_proc_log_dump(p, 0);
		fail_msg("%s: echodev died (wait status 0x%x)", step,
		         p->status);
	}
}

/* The first line of s that is not a connection notice, or NULL. */
static const char *engine_rejection_line(const char *s)
{
	while (s && *s) {
		const char *nl = strchr(s, '\n');
		size_t n = nl ? (size_t)(nl - s) : strlen(s);

		if (!memmem(s, n, "front-end connected", 19) &&
		    !memmem(s, n, "front-end disconnected", 22))
			return s;
		s = nl ? nl + 1 : NULL;
	}
	return NULL;
}

void engine_logged(struct vmm_proc *p, size_t from, const char *step)
{
	const char *line = NULL;
	char *s = NULL;
	int i;

	/* the back-end logs when it gets to the message: give it time */
	for (i = 0; i < 3000 && !line; i++) {
		free(s);
		s = vmm_proc_log_since(p, from);
		line = engine_rejection_line(s);
		if (!line)
			usleep(10000);
	}
	if (line)
		print_message("  logged: %.*s\n", (int)strcspn(line, "\n"),
		              line);
	free(s);
	if (!line)
		fail_msg("%s: the rejection was not logged", step);
}
