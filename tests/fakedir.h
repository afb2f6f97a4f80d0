/*
 * fakedir — a fake channel provider for the fs tests (test_fs_stream.c's
 * harness and fuzz_fuse): it registers directories through chandir.h as a
 * device does, and the test plays each channel's guest side with the chan
 * device calls (chan_opened, chan_guest_send...) on d->conns[i].
 *
 * Directories, in registration order:
 *   vsock          CONNECT  names: 1..10 decimal digits; every open is a
 *                           new channel in CONNECTING (-ENOTCONN while
 *                           no_driver, -EADDRINUSE when conns is full)
 *   vsock/listen   ACCEPT   names as vsock; lists every name accepted,
 *                           waited on or queued so far (at most
 *                           FAKEDIR_MAX_LISTED)
 *   shared         SHARED, CHANDIR_ATOMIC | CHANDIR_NO_LINGER
 *                           names s0 and s1 (listed); an open makes the
 *                           name's channel (OPEN) unless it has one, and
 *                           every open shares it; release drops the open's
 *                           reference (counted in releases)
 *   parentless/svc ACCEPT   unlisted (no list op), parent not registered;
 *                           names: 1..31 of [a-z0-9]
 * Every directory's status op prints "fakedir <path>\n"; vsock's prints
 * "fake vsock device\n" before it.
 *
 * Channels are numbered 0, 1, ... in creation order, named
 * "fake <name>#<number>"; conns[i] holds the device's reference until
 * fakedir_forget.  With parks set, the odd-numbered ones take parked
 * writes (chan_park: the test's guest side reads them with
 * chan_guest_peek), the even ones do not.  Everything runs on the loop
 * thread.
 */
#ifndef CHANFS_TEST_FAKEDIR_H
#define CHANFS_TEST_FAKEDIR_H

#include <stdbool.h>
#include <stdint.h>

#include "chanfs/chan.h"
#include "chanfs/chandir.h"

#define FAKEDIR_MAX_CONNS 64
#define FAKEDIR_MAX_LISTED 16
#define FAKEDIR_NAME_MAX 31

struct fakedir {
	struct chan_set *chans;
	uint32_t window;
	unsigned max_conns;        /* at most FAKEDIR_MAX_CONNS */
	bool no_driver;            /* vsock opens fail -ENOTCONN */
	bool parks;                /* odd channels take parked writes */
	struct chandir *vsock, *listen, *shared, *svc;
	struct chan *conns[FAKEDIR_MAX_CONNS];  /* the device's references */
	struct chandir *conn_dir[FAKEDIR_MAX_CONNS];
	char conn_name[FAKEDIR_MAX_CONNS][FAKEDIR_NAME_MAX + 1];
	bool queued[FAKEDIR_MAX_CONNS];  /* waiting to be accepted (the
	                                    queue holds a reference) */
	unsigned nconns;
	unsigned host_closes;      /* chan_backend host_close calls */
	unsigned releases;         /* shared's release op calls */
	unsigned lookups;          /* lookup op calls (one per FUSE LOOKUP) */
	int waits;                 /* wait(true) minus wait(false) */
	char listed[FAKEDIR_MAX_LISTED][FAKEDIR_NAME_MAX + 1];
	unsigned nlisted;
};

/* Register the four directories in r; channels are made in chans with
 * windows of window bytes, at most max_conns of them (0:
 * FAKEDIR_MAX_CONNS).  0 or -errno from chandir_add. */
int fakedir_register(struct fakedir *d, struct chandirs *r,
                     struct chan_set *chans, uint32_t window,
                     unsigned max_conns);
/* A guest connection to name in dir (d->listen or d->svc), established,
 * with args (NULL: none), queued for accept and announced with
 * chandir_ready.  Returns its number, or -1 when conns is full or name
 * is not a valid name of dir. */
int fakedir_incoming(struct fakedir *d, struct chandir *dir, const char *name,
                     const char *args);
/* The test's channels are over: reset each (ECONNRESET), drop the
 * device's and the queue's references, start numbering over. */
void fakedir_forget(struct fakedir *d);

#endif
