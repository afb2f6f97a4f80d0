/*
 * The port table and the `serial` channel directory: one channel per port,
 * OPEN for the daemon's life and shared by every host open; the transports
 * (serial_sock.c, console.c) are its device side.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "chanfs/chan.h"
#include "chanfs/chandir.h"
#include "chanfs/serial.h"

struct serial_port {
	struct serial *s;
	char name[CHANDIR_NAME_MAX + 1];
	struct chan *c;           /* the port's one channel (device ref) */
	const struct serial_port_ops *ops;
	void *ctx;
	unsigned opens;           /* host files open on the port */
	TAILQ_ENTRY(serial_port) link;
};

struct serial {
	struct loop *loop;
	struct chan_set *chans;
	uint32_t window;
	struct chandir *dir;
	TAILQ_HEAD(, serial_port) ports;
};

/* --- the channel's device side: hand the host's calls to the transport -- */

static void serial_chan_host_wrote(struct chan *c)
{
	struct serial_port *p = c->be_ctx;

	if (p->ops->host_wrote)
		p->ops->host_wrote(p->ctx);
}

static void serial_chan_host_consumed(struct chan *c, size_t n)
{
	struct serial_port *p = c->be_ctx;

	if (p->ops->host_consumed)
		p->ops->host_consumed(p->ctx, n);
}

/* A port has no half-close: every open shares it, and the port outlives
 * them all (fs/ gives SHARED references back through release, never
 * chan_close). */
static const struct chan_backend serial_chan_backend = {
	.host_wrote = serial_chan_host_wrote,
	.host_consumed = serial_chan_host_consumed,
};

/* --- the `serial` directory ---------------------------------------------- */

static struct serial_port *serial_find(struct serial *s, const char *name)
{
	struct serial_port *p;

	TAILQ_FOREACH(p, &s->ports, link)
		if (!strcmp(p->name, name))
			return p;
	return NULL;
}

static int serial_dir_lookup(void *ctx, const char *name)
{
	return serial_find(ctx, name) ? 0 : -ENOENT;
}

static void serial_dir_list(void *ctx, void (*add)(void *arg, const char *name),
                            void *arg)
{
	struct serial *s = ctx;
	struct serial_port *p;

	TAILQ_FOREACH(p, &s->ports, link)
		add(arg, p->name);
}

static int serial_dir_open(void *ctx, const char *name, struct chan **out)
{
	struct serial_port *p = serial_find(ctx, name);

	if (!p)
		return -ENOENT;
	chan_ref(p->c);
	*out = p->c;
	if (p->opens++ == 0 && p->ops->host_open)
		p->ops->host_open(p->ctx, true);
	return 0;
}

static void serial_dir_release(void *ctx, const char *name, struct chan *c)
{
	struct serial_port *p = serial_find(ctx, name);

	/* The reference goes back whatever the name says: it is c's. */
	if (p && p->c == c && p->opens > 0 && --p->opens == 0 &&
	    p->ops->host_open)
		p->ops->host_open(p->ctx, false);
	chan_unref(c);
}

static void serial_dir_status(void *ctx, FILE *out)
{
	struct serial *s = ctx;
	struct serial_port *p;

	TAILQ_FOREACH(p, &s->ports, link) {
		fprintf(out, "serial %s", p->name);
		if (p->ops->status)
			p->ops->status(p->ctx, out);
		fprintf(out, ", %u open%s\n", p->opens,
		        p->opens == 1 ? "" : "s");
	}
}

static const struct chandir_ops serial_dir_ops = {
	.lookup = serial_dir_lookup,
	.list = serial_dir_list,
	.open = serial_dir_open,
	.release = serial_dir_release,
	.status = serial_dir_status,
};

/* --- the table ----------------------------------------------------------- */

struct serial *serial_new(struct loop *l, struct chan_set *chans,
                          uint32_t window)
{
	struct serial *s;

	if (!chans || window == 0 || (window & (window - 1))) {
		errno = EINVAL;
		return NULL;
	}
	s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->loop = l;
	s->chans = chans;
	s->window = window;
	TAILQ_INIT(&s->ports);
	return s;
}

int serial_register(struct serial *s, struct chandirs *r)
{
	/* A close does not wait for the guest: what a file wrote stays
	 * queued in the port, which outlives the file and every socket
	 * outage, so there is nothing a lingering close could report. */
	struct chandir *d = chandir_add(r, "serial", CHANDIR_SHARED,
	                                CHANDIR_ATOMIC | CHANDIR_NO_LINGER,
	                                &serial_dir_ops, s);

	if (!d)
		return -errno;
	s->dir = d;
	return 0;
}

void serial_free(struct serial *s)
{
	struct serial_port *p;

	if (!s)
		return;
	while ((p = TAILQ_FIRST(&s->ports))) {
		TAILQ_REMOVE(&s->ports, p, link);
		/* Opens still held (a test's) see the port go. */
		chan_reset(p->c, ECONNRESET);
		chan_unref(p->c);
		free(p);
	}
	free(s);
}

/* A port name is a file name the guest side also knows: the directory's
 * component rule, and only [A-Za-z0-9._-] (serial.h). */
bool serial_port_name_ok(const char *name)
{
	static const char chars[] = "abcdefghijklmnopqrstuvwxyz"
	                            "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-";

	return chandir_name_ok(name) && name[strspn(name, chars)] == '\0';
}

struct serial_port *serial_port_add(struct serial *s, const char *name,
                                    const struct serial_port_ops *ops,
                                    void *ctx)
{
	static const struct serial_port_ops no_ops;
	struct serial_port *p;
	char cname[sizeof ((struct chan *)0)->name];

	if (!name || !serial_port_name_ok(name)) {
		errno = EINVAL;
		return NULL;
	}
	if (serial_find(s, name)) {
		errno = EEXIST;
		return NULL;
	}
	p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	snprintf(cname, sizeof cname, "serial %s", name);
	p->c = chan_new(s->chans, s->window, &serial_chan_backend, p, cname);
	if (!p->c) {
		free(p);
		return NULL;
	}
	/* Open from the start: the port exists whether or not its
	 * transport is up (serial.h). */
	chan_opened(p->c);
	p->s = s;
	strcpy(p->name, name);
	p->ops = ops ? ops : &no_ops;
	p->ctx = ctx;
	TAILQ_INSERT_TAIL(&s->ports, p, link);
	return p;
}

struct chan *serial_port_chan(struct serial_port *p)
{
	return p->c;
}

const char *serial_port_name(const struct serial_port *p)
{
	return p->name;
}

bool serial_port_host_open(const struct serial_port *p)
{
	return p->opens > 0;
}
