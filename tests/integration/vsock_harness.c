/*
 * vsock_harness.c — chanfs mounted in a temporary directory, the simulated
 * guest beside it, and a cleanup that leaves nothing behind.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "guest_vsock.h"
#include "vsock_harness.h"

#define VH_FUSE_MAGIC 0x65735546

static uint64_t vh_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void vh_nap(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* The fixture a fatal signal must clean up after.  A signal handler has
 * no other way to find it: the one piece of global state here. */
static struct vh *vh_current;

/* SIGTERM (meson's timeout), SIGINT, SIGHUP, SIGALRM: end the children
 * and leave a detached process that removes the directory once chanfs has
 * unmounted; then die of the signal.  Only async-signal-safe calls. */
static void vh_on_signal(int sig)
{
	struct vh *h = vh_current;
	unsigned i;

	if (h) {
		for (i = 0; i < h->nguests; i++)
			if (h->guests[i].pid > 0 && !h->guests[i].exited)
				kill(h->guests[i].pid, SIGKILL);
		if (h->chanfs > 0)
			kill(h->chanfs, SIGTERM);
		if (fork() == 0) {
			struct timespec ts = { 0, 10 * 1000 * 1000 };
			char *argv[] = { "/bin/sh", "-c", h->rmcmd, NULL };

			setsid();
			for (i = 0; i < 1000 && h->chanfs > 0 &&
			     kill(h->chanfs, 0) == 0; i++)
				nanosleep(&ts, NULL);
			execv(argv[0], argv);
			_exit(1);
		}
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

int vh_init(struct vh *h)
{
	const char *seed = getenv("CHANFS_TEST_SEED");

	memset(h, 0, sizeof(*h));
	h->chanfs_exe = getenv("CHANFS_EXE");
	h->guest_exe = getenv("CHANFS_GUEST");
	h->pollclient_exe = getenv("CHANFS_POLLCLIENT");
	if (!h->chanfs_exe || !h->guest_exe) {
		fprintf(stderr, "vh: set CHANFS_EXE and CHANFS_GUEST (meson "
		        "test does)\n");
		return -ENOENT;
	}
	h->seed = seed ? strtoull(seed, NULL, 0) :
	          ((uint64_t)time(NULL) << 16) ^ (uint64_t)getpid();
	fprintf(stderr, "vh: seed=%" PRIu64 " (CHANFS_TEST_SEED to repeat); "
	        "guest args: %s\n", h->seed,
	        getenv("CHANFS_GUEST_ARGS") ? getenv("CHANFS_GUEST_ARGS") :
	        "(default)");
	strcpy(h->dir, "/tmp/chanfs-vsock.XXXXXX");
	if (!mkdtemp(h->dir))
		return -errno;
	snprintf(h->sock, sizeof(h->sock), "%s/vu.sock", h->dir);
	snprintf(h->mnt, sizeof(h->mnt), "%s/mnt", h->dir);
	snprintf(h->log, sizeof(h->log), "%s/chanfs.log", h->dir);
	if (mkdir(h->mnt, 0700) < 0)
		return -errno;
	snprintf(h->rmcmd, sizeof(h->rmcmd), "fusermount3 -u '%s' 2>/dev/null;"
	         " umount -l '%s' 2>/dev/null; rm -rf '%s'", h->mnt, h->mnt,
	         h->dir);
	fprintf(stderr, "vh: directory %s\n", h->dir);
	h->started = true;
	signal(SIGPIPE, SIG_IGN);
	vh_current = h;
	signal(SIGTERM, vh_on_signal);
	signal(SIGINT, vh_on_signal);
	signal(SIGHUP, vh_on_signal);
	signal(SIGALRM, vh_on_signal);
	return 0;
}

/* fork + exec with the death signal; out/err are dup'd onto 1 and 2. */
static pid_t vh_spawn(char *const argv[], int out, int err)
{
	pid_t parent = getpid(), pid;

	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(1);
		if (out >= 0)
			dup2(out, 1);
		if (err >= 0)
			dup2(err, 2);
		execv(argv[0], argv);
		dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	return pid;
}

bool vh_chanfs_alive(struct vh *h)
{
	int st;

	if (h->chanfs <= 0)
		return false;
	if (waitpid(h->chanfs, &st, WNOHANG) == h->chanfs) {
		fprintf(stderr, "vh: chanfs exited (status 0x%x)\n", st);
		h->chanfs = 0;
		h->chanfs_status = st;
		h->chanfs_exited = true;
		return false;
	}
	return true;
}

static bool vh_mounted(const struct vh *h)
{
	struct statfs sf;

	return statfs(h->mnt, &sf) == 0 && sf.f_type == VH_FUSE_MAGIC;
}

static void vh_tail(const char *title, const char *path, size_t max)
{
	char *buf;
	FILE *f = fopen(path, "r");
	long sz;
	size_t n;

	if (!f)
		return;
	fseek(f, 0, SEEK_END);
	sz = ftell(f);
	if (sz > (long)max)
		fseek(f, sz - (long)max, SEEK_SET);
	else
		fseek(f, 0, SEEK_SET);
	buf = malloc(max + 1);
	if (buf) {
		n = fread(buf, 1, max, f);
		buf[n] = 0;
		fprintf(stderr, "--- %s (last %zu bytes)\n%s--- end\n", title, n,
		        buf);
		free(buf);
	}
	fclose(f);
}

/* Under AddressSanitizer freed memory sits in a quarantine of up to 256
 * MiB, which would make chanfs's peak RSS say nothing about its buffers:
 * keep it small (ignored by builds without ASan). */
static void vh_asan_small_quarantine(void)
{
	const char *old = getenv("ASAN_OPTIONS");
	char buf[512];

	if (old && strstr(old, "quarantine_size_mb"))
		return;
	snprintf(buf, sizeof(buf), "%s%squarantine_size_mb=4",
	         old ? old : "", old && *old ? ":" : "");
	setenv("ASAN_OPTIONS", buf, 1);
}

int vh_start_chanfs(struct vh *h, const char *const args[])
{
	const char *argv[64];
	unsigned n = 0, i;
	uint64_t end;
	int fd;

	argv[n++] = h->chanfs_exe;
	argv[n++] = "-f";
	argv[n++] = "-s";
	argv[n++] = h->sock;
	for (i = 0; args && args[i] && n < 60; i++)
		argv[n++] = args[i];
	argv[n++] = h->mnt;
	argv[n] = NULL;
	fd = open(h->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	vh_asan_small_quarantine();
	h->chanfs = vh_spawn((char *const *)argv, fd, fd);
	close(fd);
	if (h->chanfs < 0)
		return -errno;
	end = vh_now_ms() + 20000;
	while (!vh_mounted(h) || access(h->sock, F_OK) < 0) {
		if (!vh_chanfs_alive(h) || vh_now_ms() > end) {
			fprintf(stderr, "vh: chanfs did not mount %s\n", h->mnt);
			vh_tail("chanfs log", h->log, 4000);
			return -ECHILD;
		}
		vh_nap(10);
	}
	return 0;
}

/* The variant's features must really be negotiated, or the run tests
 * less than its name says. */
static bool vh_features_ok(const char *args, uint64_t got)
{
	static const struct {
		const char *name;
		unsigned bit;
	} f[] = {
		{ "event_idx", 29 }, { "indirect", 28 }, { "in_order", 35 },
	};
	const char *feat = args ? strstr(args, "--features") : NULL;
	char list[128];
	unsigned i;

	if (!feat)
		return true;
	snprintf(list, sizeof(list), "%s", feat + strlen("--features"));
	for (i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		if (!strstr(list, f[i].name))
			continue;
		if (!(got & (1ULL << f[i].bit))) {
			fprintf(stderr, "vh: %s was asked for but not "
			        "negotiated (features 0x%" PRIx64 ")\n",
			        f[i].name, got);
			return false;
		}
	}
	return true;
}

struct vh_guest *vh_start_guest(struct vh *h, const char *const args[])
{
	struct vh_guest *g;
	const char *argv[128];
	char extra[512], path[512], seed[32], *tok, *save = NULL;
	const char *env = getenv("CHANFS_GUEST_ARGS");
	unsigned n = 0, i;
	int out, err;

	if (h->nguests == VH_MAX_GUESTS)
		return NULL;
	g = &h->guests[h->nguests];
	memset(g, 0, sizeof(*g));
	snprintf(path, sizeof(path), "%s/guest%u.err", h->dir, h->nguests);
	memcpy(g->err_path, path, sizeof(g->err_path) - 1);
	argv[n++] = h->guest_exe;
	argv[n++] = "-s";
	argv[n++] = h->sock;
	snprintf(extra, sizeof(extra), "%s", env ? env : "");
	for (tok = strtok_r(extra, " ", &save); tok && n < 40;
	     tok = strtok_r(NULL, " ", &save))
		argv[n++] = tok;
	snprintf(seed, sizeof(seed), "%" PRIu64, h->seed + h->nguests);
	argv[n++] = "--seed";
	argv[n++] = seed;
	for (i = 0; args && args[i] && n < 126; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	/* stdout goes to a file we tail: the guest never blocks on us */
	snprintf(path, sizeof(path), "%s/guest%u.out", h->dir, h->nguests);
	out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	g->out = open(path, O_RDONLY | O_CLOEXEC);
	err = open(g->err_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	           0600);
	if (out < 0 || g->out < 0 || err < 0) {
		if (out >= 0)
			close(out);
		if (err >= 0)
			close(err);
		return NULL;
	}
	g->pid = vh_spawn((char *const *)argv, out, err);
	close(out);
	close(err);
	if (g->pid < 0)
		return NULL;
	h->nguests++;
	fprintf(stderr, "vh: guest %u:", h->nguests - 1);
	for (i = 3; i < n; i++)
		fprintf(stderr, " %s", argv[i]);
	fprintf(stderr, "\n");
	if (!vh_guest_wait(g, "ready", 1, 20000)) {
		fprintf(stderr, "vh: the guest did not get ready\n");
		vh_guest_dump(g);
		return NULL;
	}
	if (!vh_features_ok(env, vh_kv_hex(g->line, "features")))
		return NULL;
	return g;
}

/* Reap the guest if it has exited. */
static bool vh_guest_alive(struct vh_guest *g)
{
	int st;

	if (g->exited || g->pid <= 0)
		return false;
	if (waitpid(g->pid, &st, WNOHANG) == g->pid) {
		g->exited = true;
		g->status = st;
		return false;
	}
	return true;
}

/* Take in what the guest printed; when there is nothing new, nap up to
 * timeout_ms.  False once the guest has exited and all is read. */
static bool vh_guest_pump(struct vh_guest *g, int timeout_ms)
{
	char tmp[65536];
	bool alive = vh_guest_alive(g);
	ssize_t r;

	if (g->out < 0)
		return false;
	while ((r = read(g->out, tmp, sizeof(tmp))) > 0) {
		if (g->len + (size_t)r + 1 > g->cap) {
			size_t cap = g->cap ? g->cap : 65536;
			char *b;

			while (cap < g->len + (size_t)r + 1)
				cap *= 2;
			b = realloc(g->buf, cap);
			if (!b)
				return false;
			g->buf = b;
			g->cap = cap;
		}
		memcpy(g->buf + g->len, tmp, (size_t)r);
		g->len += (size_t)r;
		g->buf[g->len] = 0;
		timeout_ms = 0;
	}
	if (!alive)
		return false;
	if (timeout_ms > 0)
		vh_nap(timeout_ms > 10 ? 10 : (unsigned)timeout_ms);
	return true;
}

static bool vh_has_word(const char *line, size_t llen, const char *w,
                        size_t wlen)
{
	const char *p = line, *end = line + llen;

	while (p + wlen <= end) {
		const char *q = memmem(p, (size_t)(end - p), w, wlen);

		if (!q)
			return false;
		if ((q == line || q[-1] == ' ') &&
		    (q + wlen == end || q[wlen] == ' '))
			return true;
		p = q + 1;
	}
	return false;
}

static bool vh_line_matches(const char *line, size_t llen, const char *needle)
{
	const char *w = needle;

	while (*w) {
		size_t n;

		while (*w == ' ')
			w++;
		n = strcspn(w, " ");
		if (n && !vh_has_word(line, llen, w, n))
			return false;
		w += n;
	}
	return true;
}

/* The nth matching complete line, or NULL. */
static const char *vh_find(struct vh_guest *g, const char *needle,
                           unsigned nth, unsigned *count)
{
	const char *p = g->buf, *nl;
	unsigned k = 0;

	while (p && (nl = memchr(p, '\n', g->len - (size_t)(p - g->buf)))) {
		size_t n = (size_t)(nl - p);

		if (vh_line_matches(p, n, needle) && ++k == nth) {
			if (n >= sizeof(g->line))
				n = sizeof(g->line) - 1;
			memcpy(g->line, p, n);
			g->line[n] = 0;
			if (count)
				*count = k;
			return g->line;
		}
		p = nl + 1;
	}
	if (count)
		*count = k;
	return NULL;
}

const char *vh_guest_wait(struct vh_guest *g, const char *needle,
                          unsigned nth, int timeout_ms)
{
	uint64_t end = vh_now_ms() + (uint64_t)timeout_ms;
	const char *l;

	for (;;) {
		bool open;
		uint64_t now;

		if (g->buf && (l = vh_find(g, needle, nth, NULL)))
			return l;
		now = vh_now_ms();
		if (now >= end)
			break;
		open = vh_guest_pump(g, (int)(end - now > 10 ? 10 :
		                              end - now));
		if (!open && !(g->buf && vh_find(g, needle, nth, NULL)))
			break;
	}
	if (g->buf && (l = vh_find(g, needle, nth, NULL)))
		return l;
	fprintf(stderr, "vh: guest never printed line #%u matching \"%s\"\n",
	        nth, needle);
	return NULL;
}

unsigned vh_guest_count(struct vh_guest *g, const char *needle)
{
	unsigned k = 0;

	vh_guest_pump(g, 0);
	if (g->buf)
		vh_find(g, needle, UINT32_MAX, &k);
	return k;
}

static int vh_guest_reap(struct vh_guest *g, int timeout_ms)
{
	uint64_t end = vh_now_ms() + (uint64_t)timeout_ms;

	while (vh_guest_alive(g)) {
		if (vh_now_ms() > end)
			return -1;
		vh_guest_pump(g, 10);
	}
	vh_guest_pump(g, 0);
	if (g->exited && WIFEXITED(g->status))
		return WEXITSTATUS(g->status);
	return -1;
}

int vh_guest_wait_exit(struct vh_guest *g, int timeout_ms)
{
	return vh_guest_reap(g, timeout_ms);
}

int vh_guest_stop(struct vh_guest *g)
{
	if (!g->exited && g->pid > 0)
		kill(g->pid, SIGTERM);
	return vh_guest_reap(g, 20000);
}

void vh_guest_kill(struct vh_guest *g)
{
	if (!g->exited && g->pid > 0) {
		kill(g->pid, SIGKILL);
		vh_guest_reap(g, 20000);
	}
}

void vh_guest_dump(const struct vh_guest *g)
{
	fprintf(stderr, "--- guest stdout\n%s--- end\n", g->buf ? g->buf : "");
	vh_tail("guest stderr", g->err_path, 4000);
}

/* Remove the files a test left in dir (not directories). */
static void vh_rm_files(const char *dir)
{
	char path[512];
	struct dirent *d;
	DIR *dp = opendir(dir);

	if (!dp)
		return;
	while ((d = readdir(dp))) {
		if (d->d_type == DT_DIR)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, d->d_name);
		unlink(path);
	}
	closedir(dp);
}

/* The file mentions word (sanitizer reports). */
static bool vh_file_has(const char *path, const char *word)
{
	char line[1024];
	bool found = false;
	FILE *f = fopen(path, "r");

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, word) != NULL;
	fclose(f);
	if (found)
		fprintf(stderr, "vh: %s reports \"%s\"\n", path, word);
	return found;
}

void vh_cleanup(struct vh *h)
{
	unsigned i;
	uint64_t end;
	int st;

	if (!h->started)
		return;
	if (vh_current == h)
		vh_current = NULL;
	for (i = 0; i < h->nguests; i++) {
		struct vh_guest *g = &h->guests[i];

		/* SIGTERM first: it reports its connections as it ends */
		if (!g->exited && g->pid > 0) {
			kill(g->pid, SIGTERM);
			if (vh_guest_reap(g, 3000) < 0 && !g->exited) {
				kill(g->pid, SIGKILL);
				waitpid(g->pid, &st, 0);
				g->exited = true;
			}
		}
	}
	if (h->chanfs > 0) {
		kill(h->chanfs, SIGTERM);
		end = vh_now_ms() + 10000;
		while (vh_chanfs_alive(h) && vh_now_ms() < end)
			vh_nap(10);
		if (h->chanfs > 0) {
			fprintf(stderr, "vh: chanfs ignored SIGTERM: killing\n");
			kill(h->chanfs, SIGKILL);
			waitpid(h->chanfs, &st, 0);
			h->chanfs = 0;
			h->failed = true;
		}
	}
	/* SIGTERM is a clean end: exit 0 (a sanitizer's report would not) */
	if (h->chanfs_exited && (!WIFEXITED(h->chanfs_status) ||
	                         WEXITSTATUS(h->chanfs_status))) {
		fprintf(stderr, "vh: chanfs did not exit cleanly\n");
		h->failed = true;
	}
	if (vh_file_has(h->log, "Sanitizer") ||
	    vh_file_has(h->log, "runtime error"))
		h->failed = true;
	for (i = 0; i < h->nguests; i++)
		if (vh_file_has(h->guests[i].err_path, "Sanitizer") ||
		    vh_file_has(h->guests[i].err_path, "runtime error"))
			h->failed = true;
	if (vh_mounted(h)) {
		char cmd[256];

		fprintf(stderr, "vh: %s still mounted: fusermount3 -u\n", h->mnt);
		snprintf(cmd, sizeof(cmd), "fusermount3 -u '%s' 2>/dev/null || "
		         "umount -l '%s'", h->mnt, h->mnt);
		if (system(cmd) != 0)
			fprintf(stderr, "vh: could not unmount %s\n", h->mnt);
	}
	vh_tail("chanfs log", h->log, 6000);
	for (i = 0; i < h->nguests; i++) {
		struct vh_guest *g = &h->guests[i];

		vh_guest_pump(g, 0);
		fprintf(stderr, "--- guest %u stdout (last lines)\n%s--- end\n",
		        i, g->buf ? (g->len > 3000 ? g->buf + g->len - 3000 :
		                     g->buf) : "");
		vh_tail("guest stderr", g->err_path, 2000);
		if (g->out >= 0)
			close(g->out);
		free(g->buf);
	}
	rmdir(h->mnt);
	vh_rm_files(h->dir);
	if (rmdir(h->dir) < 0)
		fprintf(stderr, "vh: could not remove %s: %s\n", h->dir,
		        strerror(errno));
	h->started = false;
}

int vh_setup(void **state)
{
	struct vh *h = calloc(1, sizeof(*h));

	if (!h)
		return -1;
	if (vh_init(h) < 0) {
		free(h);
		return -1;
	}
	*state = h;
	return 0;
}

int vh_teardown(void **state)
{
	struct vh *h = *state;

	bool failed = false;

	if (h) {
		vh_cleanup(h);
		failed = h->failed;
		free(h);
	}
	/* a teardown failure fails the test */
	return failed ? -1 : 0;
}

/* --- host-side commands ---------------------------------------------------- */

int vh_sh(const struct vh *h, const char *script, char *out, size_t max)
{
	char *argv[] = { "/bin/sh", "-c", (char *)script, NULL };
	int p[2] = { -1, -1 }, st;
	size_t len = 0;
	pid_t pid;

	if (out && pipe2(p, O_CLOEXEC) < 0)
		return -1;
	setenv("MNT", h->mnt, 1);
	setenv("DIR", h->dir, 1);
	pid = vh_spawn(argv, out ? p[1] : 2, -1);
	if (out)
		close(p[1]);
	if (pid < 0) {
		if (out)
			close(p[0]);
		return -1;
	}
	if (out) {
		ssize_t r;

		while ((r = read(p[0], out + len, max - 1 - len)) > 0) {
			len += (size_t)r;
			if (len == max - 1)
				break;
		}
		out[len] = 0;
		close(p[0]);
	}
	if (waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}
