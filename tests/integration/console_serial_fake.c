/*
 * A stand-in for backend/serial.c (serial.h) while it is being written:
 * the port table with the contract the console device relies on — one
 * channel per port, OPEN for the table's life, the `serial` directory's
 * open/release telling the transport of the first open and the last
 * close, status lines through the transport's op.  Only the console
 * device test links it; it goes when the real table lands.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "chanfs/chan.h"
#include "chanfs/chandir.h"
#include "chanfs/serial.h"

#define FAKE_MAX_PORTS 32

struct serial_port {
	struct serial *s;
	char name[CHANDIR_NAME_MAX + 1];
	const struct serial_port_ops *ops;
	void *ctx;
	struct chan *chan;
	unsigned opens;
};

struct serial {
	struct chan_set *chans;
	uint32_t window;
	struct serial_port *ports[FAKE_MAX_PORTS];
	unsigned n;
};

static void fake_host_wrote(struct chan *c)
{
	struct serial_port *p = c->be_ctx;

	if (p->ops->host_wrote)
		p->ops->host_wrote(p->ctx);
}

static void fake_host_consumed(struct chan *c, size_t n)
{
	struct serial_port *p = c->be_ctx;

	if (p->ops->host_consumed)
		p->ops->host_consumed(p->ctx, n);
}

static void fake_host_nop(struct chan *c)
{
	(void)c;
}

static const struct chan_backend fake_backend = {
	.host_wrote = fake_host_wrote,
	.host_consumed = fake_host_consumed,
	.host_shutdown = fake_host_nop,
	.host_close = fake_host_nop,
};

struct serial *serial_new(struct loop *l, struct chan_set *chans,
                          uint32_t window)
{
	struct serial *s = calloc(1, sizeof *s);

	(void)l;
	if (!s)
		return NULL;
	s->chans = chans;
	s->window = window;
	return s;
}

static struct serial_port *fake_find(struct serial *s, const char *name)
{
	unsigned i;

	for (i = 0; i < s->n; i++)
		if (!strcmp(s->ports[i]->name, name))
			return s->ports[i];
	return NULL;
}

static int fake_lookup(void *ctx, const char *name)
{
	return fake_find(ctx, name) ? 0 : -ENOENT;
}

static int fake_open(void *ctx, const char *name, struct chan **out)
{
	struct serial_port *p = fake_find(ctx, name);

	if (!p)
		return -ENOENT;
	chan_ref(p->chan);
	if (p->opens++ == 0 && p->ops->host_open)
		p->ops->host_open(p->ctx, true);
	*out = p->chan;
	return 0;
}

static void fake_release(void *ctx, const char *name, struct chan *c)
{
	struct serial_port *p = fake_find(ctx, name);

	chan_unref(c);
	if (p && --p->opens == 0 && p->ops->host_open)
		p->ops->host_open(p->ctx, false);
}

static void fake_status(void *ctx, FILE *out)
{
	struct serial *s = ctx;
	unsigned i;

	for (i = 0; i < s->n; i++) {
		fprintf(out, "serial %s:", s->ports[i]->name);
		if (s->ports[i]->ops->status)
			s->ports[i]->ops->status(s->ports[i]->ctx, out);
		fputc('\n', out);
	}
}

static const struct chandir_ops fake_ops = {
	.lookup = fake_lookup,
	.open = fake_open,
	.release = fake_release,
	.status = fake_status,
};

int serial_register(struct serial *s, struct chandirs *r)
{
	return chandir_add(r, "serial", CHANDIR_SHARED, CHANDIR_ATOMIC,
	                   &fake_ops, s) ? 0 : -errno;
}

void serial_free(struct serial *s)
{
	unsigned i;

	if (!s)
		return;
	for (i = 0; i < s->n; i++) {
		chan_closed(s->ports[i]->chan);
		chan_unref(s->ports[i]->chan);
		free(s->ports[i]);
	}
	free(s);
}

struct serial_port *serial_port_add(struct serial *s, const char *name,
                                    const struct serial_port_ops *ops,
                                    void *ctx)
{
	struct serial_port *p;

	if (!chandir_name_ok(name) || s->n == FAKE_MAX_PORTS) {
		errno = EINVAL;
		return NULL;
	}
	if (fake_find(s, name)) {
		errno = EEXIST;
		return NULL;
	}
	if (!(p = calloc(1, sizeof *p)))
		return NULL;
	p->s = s;
	snprintf(p->name, sizeof p->name, "%s", name);
	p->ops = ops;
	p->ctx = ctx;
	p->chan = chan_new(s->chans, s->window, &fake_backend, p, name);
	if (!p->chan) {
		free(p);
		return NULL;
	}
	chan_opened(p->chan);
	s->ports[s->n++] = p;
	return p;
}

struct chan *serial_port_chan(struct serial_port *p)
{
	return p->chan;
}

const char *serial_port_name(const struct serial_port *p)
{
	return p->name;
}

bool serial_port_host_open(const struct serial_port *p)
{
	return p->opens > 0;
}
