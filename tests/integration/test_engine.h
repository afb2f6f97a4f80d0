/*
 * test_engine.h — what the engine's integration tests share: starting
 * chanfs-echodev (path from $CHANFS_ECHODEV) in a private directory,
 * connecting a well-behaved front-end and moving data through it, and
 * recognising a rejected message.
 *
 * The tests are cmocka groups; each group's setup starts one echodev and
 * its teardown stops it and requires a clean exit (status 0, which under
 * the sanitizers also means no leak was reported).
 */
#ifndef CHANFS_TEST_ENGINE_H
#define CHANFS_TEST_ENGINE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "vmm.h"
#include "vmm_echo.h"
#include "vmm_proc.h"

/* Generous bounds for a loaded machine; they only stop a hang. */
#define ENGINE_START_MS 30000
#define ENGINE_STOP_MS 30000
#define ENGINE_REPLY_MS 30000

#define ENGINE_CID 0x0123456789abcdefULL

/* Start chanfs-echodev --cid ENGINE_CID (plus --shuffle when asked) as
 * p.  Fails the test (cmocka) when it cannot. */
void engine_start(struct vmm_proc *p, bool shuffle);
/* Stop it and require exit status 0; dumps its log otherwise. */
void engine_stop(struct vmm_proc *p);
/* cmocka group setup/teardown around engine_start/engine_stop; *state is
 * the struct vmm_proc. */
int engine_group_setup(void **state);
int engine_group_setup_shuffle(void **state);
int engine_group_teardown(void **state);

/* Connect a front-end with default options but opts' overrides (NULL ok),
 * requiring success. */
struct vmm *engine_connect(struct vmm_proc *p, const struct vmm_opts *opts);
/* A connection that has run the handshake up to (not including) request
 * for queue q, with NEED_REPLY negotiated so rejections show as acks. */
struct vmm *engine_connect_until(struct vmm_proc *p, uint32_t request,
                                 unsigned q);
/* A well-behaved front-end connects, and bytes go through queue 0 and
 * come back on queue 1 equal; step names the situation for messages. */
void engine_echo_ok(struct vmm_proc *p, const char *step, uint64_t bytes);
/* After sending a NEED_REPLY message for request on v: true if the
 * back-end rejected it (a non-zero ack, or it closed the connection),
 * false if it acked success.  Fails the test if it does neither. */
bool engine_rejected(struct vmm *v, uint32_t request);
/* The back-end must still run; fails the test naming step otherwise. */
void engine_alive(struct vmm_proc *p, const char *step);
/* The back-end logged at least one line since log offset from. */
void engine_logged(struct vmm_proc *p, size_t from, const char *step);

#endif
