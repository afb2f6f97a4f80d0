/*
 * vmm_proc — run a back-end (chanfs-echodev, chanfs) as a child process for
 * an integration test: a private temporary directory for its socket and
 * log, start and wait for the socket, check it is alive, count its open
 * fds, read its log, stop it by PID and collect its exit status.
 */
#ifndef CHANFS_TESTS_VMM_PROC_H
#define CHANFS_TESTS_VMM_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct vmm_proc {
	pid_t pid;             /* 0 when not running */
	int status;            /* wait status once it has exited */
	bool exited;
	char dir[64];          /* private temporary directory */
	char sock[96];         /* dir/vu.sock: pass it to the back-end */
	char log[96];          /* dir/log: its stdout and stderr */
};

/* Create the temporary directory and fill in the paths.  0 or -errno. */
int vmm_proc_init(struct vmm_proc *p);
/* Start argv[0] with argv (NULL-terminated), stdout and stderr appended to
 * p->log, and wait up to timeout_ms for p->sock to appear.  Returns 0,
 * -ETIMEDOUT (the child is stopped again), -ECHILD (it exited first: see
 * its log), -errno. */
int vmm_proc_spawn(struct vmm_proc *p, char *const argv[], int timeout_ms);
/* True while the child runs (reaps it when it has exited). */
bool vmm_proc_alive(struct vmm_proc *p);
/* Number of entries in /proc/PID/fd, or -errno. */
int vmm_proc_fd_count(const struct vmm_proc *p);
/* SIGTERM, wait up to timeout_ms, then SIGKILL.  Returns the exit code
 * (0..255), or -1 if it died of a signal or had to be killed.  The
 * temporary directory stays (the log may be read) until vmm_proc_cleanup. */
int vmm_proc_stop(struct vmm_proc *p, int timeout_ms);
/* Stop the child if it still runs (SIGKILL) and remove the directory. */
void vmm_proc_cleanup(struct vmm_proc *p);
/* Current log size in bytes (an offset for vmm_proc_log_since). */
size_t vmm_proc_log_size(const struct vmm_proc *p);
/* The log from offset from to its end, NUL-terminated, malloc'd (free it);
 * NULL on error. */
char *vmm_proc_log_since(const struct vmm_proc *p, size_t from);
/* Print the log from offset from to stderr (for failure reports). */
void vmm_proc_log_dump(const struct vmm_proc *p, size_t from);

#endif
