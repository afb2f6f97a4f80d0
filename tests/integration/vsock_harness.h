/*
 * vsock_harness — the fixture of the vsock integration tests: the real
 * chanfs binary mounted in a temporary directory, the simulated guest
 * (chanfs-simguest) as a child process whose result lines we read, and
 * cleanup that leaves no mount and no process behind.
 *
 * Paths come from the environment (set by tests/integration/meson.build):
 * CHANFS_EXE, CHANFS_GUEST, CHANFS_POLLCLIENT; CHANFS_GUEST_ARGS (extra
 * chanfs-simguest options for this run's virtqueue variant, e.g. "--layout b
 * --features in_order,event_idx,indirect"); CHANFS_TEST_SEED (else one
 * from the clock; printed).
 *
 * Children get PR_SET_PDEATHSIG(SIGTERM): if the test dies, chanfs still
 * unmounts itself and the guest ends.  Spawn children from the main thread
 * only (the death signal follows the thread that forked).  SIGTERM (meson's
 * timeout), SIGINT, SIGHUP and SIGALRM stop the children and remove the
 * temporary directory before the test dies of them.
 */
#ifndef CHANFS_TESTS_VSOCK_HARNESS_H
#define CHANFS_TESTS_VSOCK_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define VH_MAX_GUESTS 8
/* Generous bounds against hangs (never a measurement). */
#define VH_TIMEOUT_MS 120000

struct vh_guest {
	pid_t pid;
	int out;               /* its stdout (a file we tail) */
	char *buf;             /* everything it printed so far */
	size_t len, cap;
	bool exited;
	int status;            /* wait status once exited */
	char err_path[160];    /* its stderr */
	char line[2048];       /* the last line vh_guest_wait matched */
};

struct vh {
	char dir[64];          /* private temporary directory */
	char sock[96], mnt[96], log[96];
	pid_t chanfs;
	bool chanfs_exited;
	int chanfs_status;     /* wait status once it exited */
	bool failed;           /* cleanup found chanfs unclean or a sanitizer
	                          report in a log */
	bool started;
	uint64_t seed;
	const char *chanfs_exe, *guest_exe, *pollclient_exe;
	struct vh_guest guests[VH_MAX_GUESTS];
	unsigned nguests;
	char path[256];        /* vh_path's result */
	char rmcmd[512];       /* cleanup after a fatal signal */
};

/* Fill in paths and the seed (printed); no process yet.  Returns 0 or
 * -errno (a missing environment variable gives -ENOENT, with a message). */
int vh_init(struct vh *h);
/* Start chanfs -f -s SOCK [args...] MNT (args NULL-terminated) and wait
 * for the mount.  0 or -errno (its log is printed). */
int vh_start_chanfs(struct vh *h, const char *const args[]);
/* Start chanfs-simguest -s SOCK CHANFS_GUEST_ARGS --seed SEED [args...]
 * (NULL-terminated) and wait for its "ready" line.  NULL on failure (its
 * output is printed). */
struct vh_guest *vh_start_guest(struct vh *h, const char *const args[]);
/* Stop every guest (SIGTERM, then SIGKILL), stop chanfs (SIGTERM: it
 * unmounts), unmount by force if it did not, print the logs' tails, remove
 * the directory.  Sets h->failed when chanfs did not exit 0 or a log holds
 * a sanitizer report. */
void vh_cleanup(struct vh *h);

/* Wait until the guest printed at least nth (1-based) lines containing
 * every space-separated word of needle as a whole word; return the nth
 * such line (copied into g->line), or NULL on timeout or guest exit. */
const char *vh_guest_wait(struct vh_guest *g, const char *needle,
                          unsigned nth, int timeout_ms);
/* Count the lines printed so far that match needle (no waiting). */
unsigned vh_guest_count(struct vh_guest *g, const char *needle);
/* Wait for the guest to exit by itself; returns its exit code, or -1
 * (signal or timeout). */
int vh_guest_wait_exit(struct vh_guest *g, int timeout_ms);
/* SIGTERM and wait: its exit code, or -1. */
int vh_guest_stop(struct vh_guest *g);
/* SIGKILL and reap (a VMM that dies). */
void vh_guest_kill(struct vh_guest *g);
/* Print everything the guest printed (for failure reports). */
void vh_guest_dump(const struct vh_guest *g);

/* cmocka fixtures: *state becomes a struct vh after vh_init; teardown
 * runs vh_cleanup (also when the test failed) and fails when it set
 * h->failed. */
int vh_setup(void **state);
int vh_teardown(void **state);

/* Values of "key=value" words in a result line: 0/false if absent. */
bool vh_kv(const char *line, const char *key, char *val, size_t len);
uint64_t vh_kv_u64(const char *line, const char *key);
uint64_t vh_kv_hex(const char *line, const char *key);

/* MNT/rel, in h->path (valid until the next call). */
const char *vh_path(struct vh *h, const char *rel);
/* Run /bin/sh -c script with MNT and DIR in its environment; its stdout
 * goes to out (NUL-terminated, up to max - 1 bytes) when out is not NULL,
 * else to our stderr.  Returns the exit code, or -1. */
int vh_sh(const struct vh *h, const char *script, char *out, size_t max);
/* Run pollclient with args (a shell word list; $MNT is the mount) and
 * print its output; its exit code, or -1. */
int vh_pollclient(const struct vh *h, const char *args);
/* The whole status file (malloc'd), or NULL. */
char *vh_status(const struct vh *h);
/* chanfs's peak resident set (VmHWM) in KiB, or -1. */
long vh_chanfs_hwm_kb(const struct vh *h);
/* chanfs log: its size, and its text from offset (malloc'd). */
size_t vh_log_size(const struct vh *h);
char *vh_log_since(const struct vh *h, size_t off);
/* True while chanfs runs. */
bool vh_chanfs_alive(struct vh *h);

/* Raise RLIMIT_NOFILE's soft limit to at least n (up to the hard limit).
 * Returns the new soft limit. */
long vh_raise_nofile(long n);
/* read()/write() the whole buffer (write: loops over short counts).
 * Returns the count or -errno. */
ssize_t vh_write_all(int fd, const void *buf, size_t len);
/* Write total bytes of the seed's data stream (guest_data_fill) to fd in
 * blocking writes of chunk bytes (at most 1 MiB), each of which must
 * return its whole count.  Returns the stream's FNV-1a, or 0 when a write
 * fell short (printed). */
uint64_t vh_write_stream(const struct vh *h, int fd, uint64_t total,
                         size_t chunk);
/* FNV-1a of a file's bytes; *len gets its size.  0 on error. */
uint64_t vh_file_fnv(const char *path, uint64_t *len);

#endif
