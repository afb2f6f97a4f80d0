/*
 * vmm_proc.c — child back-end processes for integration tests.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vmm_proc.h"

static void vmm_proc_nap(void)
{
	struct timespec ts = { 0, 10 * 1000 * 1000 };

	nanosleep(&ts, NULL);
}

int vmm_proc_init(struct vmm_proc *p)
{
	memset(p, 0, sizeof(*p));
	strcpy(p->dir, "/tmp/chanfs-test.XXXXXX");
	if (!mkdtemp(p->dir))
		return -errno;
	snprintf(p->sock, sizeof(p->sock), "%s/vu.sock", p->dir);
	snprintf(p->log, sizeof(p->log), "%s/log", p->dir);
	return 0;
}

int vmm_proc_spawn(struct vmm_proc *p, char *const argv[], int timeout_ms)
{
	struct stat st;
	int waited = 0, fd;
	pid_t pid;

	fd = open(p->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		close(fd);
		return -errno;
	}
	if (pid == 0) {
		dup2(fd, 1);
		dup2(fd, 2);
		execv(argv[0], argv);
		dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(fd);
	p->pid = pid;
	p->exited = false;
	while (stat(p->sock, &st) < 0) {
		if (!vmm_proc_alive(p))
			return -ECHILD;
		if (waited >= timeout_ms) {
			vmm_proc_stop(p, 1000);
			return -ETIMEDOUT;
		}
		vmm_proc_nap();
		waited += 10;
	}
	return 0;
}

bool vmm_proc_alive(struct vmm_proc *p)
{
	int st;

	if (!p->pid || p->exited)
		return false;
	if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
		p->status = st;
		p->exited = true;
		return false;
	}
	return true;
}

int vmm_proc_fd_count(const struct vmm_proc *p)
{
	char path[64];
	struct dirent *d;
	DIR *dir;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)p->pid);
	dir = opendir(path);
	if (!dir)
		return -errno;
	while ((d = readdir(dir)))
		if (d->d_name[0] != '.')
			n++;
	closedir(dir);
	return n;
}

int vmm_proc_stop(struct vmm_proc *p, int timeout_ms)
{
	int waited = 0;
	bool killed = false;

	if (!p->pid)
		return -1;
	if (vmm_proc_alive(p))
		kill(p->pid, SIGTERM);
	while (vmm_proc_alive(p)) {
		if (waited >= timeout_ms && !killed) {
			kill(p->pid, SIGKILL);
			killed = true;
		}
		vmm_proc_nap();
		waited += 10;
	}
	p->pid = 0;
	if (killed || !WIFEXITED(p->status))
		return -1;
	return WEXITSTATUS(p->status);
}

void vmm_proc_cleanup(struct vmm_proc *p)
{
	if (p->pid && vmm_proc_alive(p)) {
		kill(p->pid, SIGKILL);
		waitpid(p->pid, NULL, 0);
	}
	p->pid = 0;
	if (p->dir[0]) {
		unlink(p->sock);
		unlink(p->log);
		rmdir(p->dir);
		p->dir[0] = 0;
	}
}

size_t vmm_proc_log_size(const struct vmm_proc *p)
{
	struct stat st;

	return stat(p->log, &st) < 0 ? 0 : (size_t)st.st_size;
}

char *vmm_proc_log_since(const struct vmm_proc *p, size_t from)
{
	size_t end = vmm_proc_log_size(p), n;
	char *buf;
	FILE *f;

	if (from > end)
		from = end;
	buf = malloc(end - from + 1);
	if (!buf)
		return NULL;
	f = fopen(p->log, "r");
	if (!f || fseek(f, (long)from, SEEK_SET) < 0) {
		if (f)
			fclose(f);
		free(buf);
		return NULL;
	}
	n = fread(buf, 1, end - from, f);
	buf[n] = 0;
	fclose(f);
	return buf;
}

void vmm_proc_log_dump(const struct vmm_proc *p, size_t from)
{
	char *s = vmm_proc_log_since(p, from);

	fprintf(stderr, "--- back-end log\n%s--- end of log\n", s ? s : "");
	free(s);
}
