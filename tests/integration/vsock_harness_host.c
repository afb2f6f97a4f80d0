/*
 * vsock_harness_host.c — host-side helpers of the vsock integration
 * tests: result-line values, paths, chanfs's status, log and memory, fd
 * limits, whole writes, file checksums.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "guest_vsock.h"
#include "vsock_harness.h"

bool vh_kv(const char *line, const char *key, char *val, size_t len)
{
	size_t kl = strlen(key);
	const char *p = line;

	while ((p = strstr(p, key))) {
		if ((p == line || p[-1] == ' ') && p[kl] == '=') {
			size_t n = strcspn(p + kl + 1, " \n");

			if (n >= len)
				n = len - 1;
			memcpy(val, p + kl + 1, n);
			val[n] = 0;
			return true;
		}
		p += kl;
	}
	if (len)
		val[0] = 0;
	return false;
}

uint64_t vh_kv_u64(const char *line, const char *key)
{
	char v[64];

	return vh_kv(line, key, v, sizeof(v)) ? strtoull(v, NULL, 10) : 0;
}

uint64_t vh_kv_hex(const char *line, const char *key)
{
	char v[64];

	return vh_kv(line, key, v, sizeof(v)) ? strtoull(v, NULL, 16) : 0;
}

const char *vh_path(struct vh *h, const char *rel)
{
	snprintf(h->path, sizeof(h->path), "%s/%s", h->mnt, rel);
	return h->path;
}

uint64_t vh_write_stream(const struct vh *h, int fd, uint64_t total,
                         size_t chunk)
{
	static uint8_t buf[1u << 20];
	uint64_t off, fnv = GUEST_FNV_INIT;
	ssize_t n;

	if (chunk > sizeof(buf))
		chunk = sizeof(buf);
	for (off = 0; off < total; off += chunk) {
		guest_data_fill(h->seed, off, buf, chunk);
		fnv = guest_fnv1a(fnv, buf, chunk);
		/* one write, the whole count: parked until all is taken */
		n = write(fd, buf, chunk);
		if (n != (ssize_t)chunk) {
			fprintf(stderr, "write at %llu: %zd (%s)\n",
			        (unsigned long long)off, n, strerror(errno));
			return 0;
		}
	}
	return fnv;
}

int vh_pollclient(const struct vh *h, const char *args)
{
	char cmd[512], out[4096];
	int r;

	snprintf(cmd, sizeof(cmd), "'%s' %s", h->pollclient_exe, args);
	r = vh_sh(h, cmd, out, sizeof(out));
	fprintf(stderr, "pollclient %s:\n%s", args, out);
	return r;
}

char *vh_status(const struct vh *h)
{
	char path[256];
	FILE *f;
	char *buf = NULL;
	size_t len = 0, cap = 0, n;

	snprintf(path, sizeof(path), "%s/status", h->mnt);
	f = fopen(path, "r");
	if (!f)
		return NULL;
	for (;;) {
		if (len + 4096 + 1 > cap) {
			char *b = realloc(buf, cap ? cap * 2 : 8192);

			if (!b)
				break;
			buf = b;
			cap = cap ? cap * 2 : 8192;
		}
		n = fread(buf + len, 1, 4096, f);
		len += n;
		if (!n)
			break;
	}
	fclose(f);
	if (buf)
		buf[len] = 0;
	return buf;
}

long vh_chanfs_hwm_kb(const struct vh *h)
{
	char path[64], line[256];
	FILE *f;
	long kb = -1;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)h->chanfs);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

size_t vh_log_size(const struct vh *h)
{
	struct stat st;

	return stat(h->log, &st) < 0 ? 0 : (size_t)st.st_size;
}

char *vh_log_since(const struct vh *h, size_t off)
{
	size_t end = vh_log_size(h), n;
	char *buf;
	FILE *f;

	if (off > end)
		off = end;
	buf = malloc(end - off + 1);
	if (!buf)
		return NULL;
	f = fopen(h->log, "r");
	if (!f || fseek(f, (long)off, SEEK_SET) < 0) {
		if (f)
			fclose(f);
		free(buf);
		return NULL;
	}
	n = fread(buf, 1, end - off, f);
	buf[n] = 0;
	fclose(f);
	return buf;
}

long vh_raise_nofile(long n)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return -1;
	if ((long)rl.rlim_cur < n) {
		rl.rlim_cur = rl.rlim_max == RLIM_INFINITY ||
		              (long)rl.rlim_max >= n ? (rlim_t)n : rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	return (long)rl.rlim_cur;
}

ssize_t vh_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	size_t done = 0;

	while (done < len) {
		ssize_t w = write(fd, p + done, len - done);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return done ? (ssize_t)done : -errno;
		}
		if (w == 0)
			return (ssize_t)done;
		done += (size_t)w;
	}
	return (ssize_t)done;
}

uint64_t vh_file_fnv(const char *path, uint64_t *len)
{
	uint64_t h = GUEST_FNV_INIT, n = 0;
	char buf[65536];
	ssize_t r;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return 0;
	while ((r = read(fd, buf, sizeof(buf))) > 0) {
		h = guest_fnv1a(h, buf, (size_t)r);
		n += (uint64_t)r;
	}
	close(fd);
	if (len)
		*len = n;
	return r < 0 ? 0 : h;
}
