/* The fake channel provider of the fs tests (fakedir.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "fakedir.h"

static void fakedir_host_wrote(struct chan *c)
{
	(void)c;
}

static void fakedir_host_consumed(struct chan *c, size_t n)
{
	(void)c;
	(void)n;
}

static void fakedir_host_shutdown(struct chan *c)
{
	(void)c;
}

static void fakedir_host_close(struct chan *c)
{
	struct fakedir *d = c->be_ctx;

	d->host_closes++;
}

static const struct chan_backend fakedir_be = {
	.host_wrote = fakedir_host_wrote,
	.host_consumed = fakedir_host_consumed,
	.host_shutdown = fakedir_host_shutdown,
	.host_close = fakedir_host_close,
};

static const struct chan_backend fakedir_be_parks = {
	.host_wrote = fakedir_host_wrote,
	.host_consumed = fakedir_host_consumed,
	.host_shutdown = fakedir_host_shutdown,
	.host_close = fakedir_host_close,
	.reads_parked = true,
};

static bool fakedir_digits(const char *name)
{
	size_t n = strlen(name);

	return n >= 1 && n <= 10 && strspn(name, "0123456789") == n;
}

static bool fakedir_word(const char *name)
{
	size_t n = strlen(name);

	return n >= 1 && n <= FAKEDIR_NAME_MAX &&
	       strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789") == n;
}

static bool fakedir_shared_name(const char *name)
{
	return !strcmp(name, "s0") || !strcmp(name, "s1");
}

static bool fakedir_name_ok(const struct fakedir *d, const struct chandir *dir,
                            const char *name)
{
	if (dir == d->shared)
		return fakedir_shared_name(name);
	if (dir == d->svc)
		return fakedir_word(name);
	return fakedir_digits(name);
}

/* A new channel for name in dir (the device's reference in conns), or
 * NULL when conns is full. */
static struct chan *fakedir_conn(struct fakedir *d, struct chandir *dir,
                                 const char *name)
{
	char cname[64];
	struct chan *c;

	if (d->nconns >= d->max_conns)
		return NULL;
	snprintf(cname, sizeof cname, "fake %s#%u", name, d->nconns);
	c = chan_new(d->chans, d->window,
	             d->parks && (d->nconns & 1) ? &fakedir_be_parks :
	                                           &fakedir_be, d, cname);
	if (!c)
		return NULL;
	d->conn_dir[d->nconns] = dir;
	snprintf(d->conn_name[d->nconns], sizeof d->conn_name[0], "%s", name);
	d->queued[d->nconns] = false;
	d->conns[d->nconns++] = c;
	return c;
}

/* vsock/listen's list: every name accepted, waited on or queued. */
static void fakedir_listed_add(struct fakedir *d, const char *name)
{
	unsigned i;

	for (i = 0; i < d->nlisted; i++)
		if (!strcmp(d->listed[i], name))
			return;
	if (d->nlisted < FAKEDIR_MAX_LISTED)
		snprintf(d->listed[d->nlisted++], sizeof d->listed[0], "%s",
		         name);
}

/* --- the ops ------------------------------------------------------------ */

/* Each directory's ctx is a pointer to its slot here: the ops learn both
 * the provider and which directory they serve. */
struct fakedir_slot {
	struct fakedir *d;
	struct chandir **dir;
};

static int fakedir_lookup(void *ctx, const char *name)
{
	struct fakedir_slot *s = ctx;

	s->d->lookups++;
	return fakedir_name_ok(s->d, *s->dir, name) ? 0 : -ENOENT;
}

static int fakedir_connect(void *ctx, const char *name, struct chan **out)
{
	struct fakedir_slot *s = ctx;

	if (!fakedir_name_ok(s->d, *s->dir, name))
		return -ENOENT;
	if (s->d->no_driver)
		return -ENOTCONN;
	if (!(*out = fakedir_conn(s->d, *s->dir, name)))
		return -EADDRINUSE;
	chan_ref(*out);		/* the caller's */
	return 0;
}

static int fakedir_accept(void *ctx, const char *name, struct chan **out)
{
	struct fakedir_slot *s = ctx;
	struct fakedir *d = s->d;
	unsigned i;

	if (*s->dir == d->listen)
		fakedir_listed_add(d, name);
	for (i = 0; i < d->nconns; i++) {
		if (d->queued[i] && d->conn_dir[i] == *s->dir &&
		    !strcmp(d->conn_name[i], name)) {
			/* The queue's reference becomes the caller's. */
			d->queued[i] = false;
			*out = d->conns[i];
			return 0;
		}
	}
	return -EAGAIN;
}

static void fakedir_wait(void *ctx, const char *name, bool waiting)
{
	struct fakedir_slot *s = ctx;

	if (*s->dir == s->d->listen)
		fakedir_listed_add(s->d, name);
	s->d->waits += waiting ? 1 : -1;
}

static void fakedir_shared_open_one(struct fakedir *d, const char *name,
                                    struct chan **out)
{
	unsigned i;

	for (i = 0; i < d->nconns; i++) {
		if (d->conn_dir[i] == d->shared &&
		    !strcmp(d->conn_name[i], name)) {
			*out = d->conns[i];
			return;
		}
	}
	if ((*out = fakedir_conn(d, d->shared, name)))
		chan_opened(*out);
}

static int fakedir_shared_open(void *ctx, const char *name, struct chan **out)
{
	struct fakedir_slot *s = ctx;

	if (!fakedir_shared_name(name))
		return -ENOENT;
	fakedir_shared_open_one(s->d, name, out);
	if (!*out)
		return -ENOMEM;
	chan_ref(*out);
	return 0;
}

static void fakedir_shared_release(void *ctx, const char *name,
                                   struct chan *c)
{
	struct fakedir_slot *s = ctx;

	(void)name;
	s->d->releases++;
	chan_unref(c);
}

static void fakedir_list_listen(void *ctx,
                                void (*add)(void *arg, const char *name),
                                void *arg)
{
	struct fakedir_slot *s = ctx;
	unsigned i;

	for (i = 0; i < s->d->nlisted; i++)
		add(arg, s->d->listed[i]);
}

static void fakedir_list_shared(void *ctx,
                                void (*add)(void *arg, const char *name),
                                void *arg)
{
	(void)ctx;
	add(arg, "s0");
	add(arg, "s1");
}

static void fakedir_status(void *ctx, FILE *out)
{
	struct fakedir_slot *s = ctx;

	if (*s->dir == s->d->vsock)
		fputs("fake vsock device\n", out);
	fprintf(out, "fakedir %s\n", (*s->dir)->path);
}

static const struct chandir_ops fakedir_vsock_ops = {
	.lookup = fakedir_lookup,
	.open = fakedir_connect,
	.status = fakedir_status,
};

static const struct chandir_ops fakedir_listen_ops = {
	.lookup = fakedir_lookup,
	.list = fakedir_list_listen,
	.open = fakedir_accept,
	.wait = fakedir_wait,
	.status = fakedir_status,
};

static const struct chandir_ops fakedir_shared_ops = {
	.lookup = fakedir_lookup,
	.list = fakedir_list_shared,
	.open = fakedir_shared_open,
	.release = fakedir_shared_release,
	.status = fakedir_status,
};

static const struct chandir_ops fakedir_svc_ops = {
	.lookup = fakedir_lookup,
	.open = fakedir_accept,
	.wait = fakedir_wait,
	.status = fakedir_status,
};

/* One slot per directory; a test process has one provider at a time. */
static struct fakedir_slot fakedir_slots[4];

int fakedir_register(struct fakedir *d, struct chandirs *r,
                     struct chan_set *chans, uint32_t window,
                     unsigned max_conns)
{
	static const struct {
		const char *path;
		enum chandir_mode mode;
		unsigned flags;
		const struct chandir_ops *ops;
	} dirs[] = {
		{ "vsock", CHANDIR_CONNECT, 0, &fakedir_vsock_ops },
		{ "vsock/listen", CHANDIR_ACCEPT, 0, &fakedir_listen_ops },
		{ "shared", CHANDIR_SHARED, CHANDIR_ATOMIC | CHANDIR_NO_LINGER,
		  &fakedir_shared_ops },
		{ "parentless/svc", CHANDIR_ACCEPT, 0, &fakedir_svc_ops },
	};
	struct chandir **slot[] = { &d->vsock, &d->listen, &d->shared,
	                            &d->svc };
	unsigned i;

	memset(d, 0, sizeof *d);
	d->chans = chans;
	d->window = window;
	d->max_conns = max_conns && max_conns < FAKEDIR_MAX_CONNS
	                       ? max_conns : FAKEDIR_MAX_CONNS;
	for (i = 0; i < 4; i++) {
		fakedir_slots[i] = (struct fakedir_slot){ d, slot[i] };
		*slot[i] = chandir_add(r, dirs[i].path, dirs[i].mode,
		                       dirs[i].flags, dirs[i].ops,
		                       &fakedir_slots[i]);
		if (!*slot[i])
			return -errno;
	}
	return 0;
}

int fakedir_incoming(struct fakedir *d, struct chandir *dir, const char *name,
                     const char *args)
{
	struct chan *c;

	if (!fakedir_name_ok(d, dir, name) || !(c = fakedir_conn(d, dir, name)))
		return -1;
	if (args && chan_set_args(c, args) < 0)
		return -1;
	chan_opened(c);
	chan_ref(c);		/* the accept queue's */
	d->queued[d->nconns - 1] = true;
	if (dir == d->listen)
		fakedir_listed_add(d, name);
	chandir_ready(dir, name);
	return (int)d->nconns - 1;
}

void fakedir_forget(struct fakedir *d)
{
	unsigned i;

	for (i = 0; i < d->nconns; i++) {
		chan_reset(d->conns[i], ECONNRESET);
		if (d->queued[i])
			chan_unref(d->conns[i]);	/* the queue's */
		chan_unref(d->conns[i]);
		d->queued[i] = false;
	}
	d->nconns = 0;
	d->no_driver = false;
	d->host_closes = 0;
	d->releases = 0;
	d->lookups = 0;
}
