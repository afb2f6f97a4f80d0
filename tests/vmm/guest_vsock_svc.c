/*
 * guest_vsock_svc.c — the applications of the simulated guest: echo, sink,
 * source, slow reader, the connecting clients and the misbehaviours, each
 * reporting one machine-readable line per connection (see guest_vsock.h).
 */
#include <ctype.h>
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guest_vsock.h"

#define SVC_SCRATCH (256u << 10)
/* An unknown op for the misbehaviour (the spec defines 0..7). */
#define SVC_BAD_OP 42

struct svc_listener {
	struct guest_svc *s;
	struct guest_svc_spec spec;
	unsigned accepted;
	bool active;      /* registered with the driver */
	bool closed;      /* took its n=K connections */
};

struct guest_svc {
	struct guest *g;
	uint64_t seed, rng;
	FILE *out;
	struct svc_listener **ls;
	unsigned nls;
	struct guest_svc_spec **specs;    /* connect specs (stable copies) */
	unsigned nspecs;
	bool *started;                    /* per connect spec */
	unsigned live;                    /* connections with a svc_conn */
	unsigned open_listeners;
	uint8_t *scratch;
};

struct svc_conn {
	struct guest_svc *s;
	const struct guest_svc_spec *spec;
	uint64_t seed;
	uint64_t total;                   /* bytes to send */
	uint64_t sent, tx_fnv;
	uint64_t rx, rx_fnv;
	bool check_failed;
	uint64_t check_off;               /* first mismatching byte */
	uint64_t start_at;                /* delay */
	uint64_t last_ms, budget;         /* slow reader */
	bool opened, started, misbehaved;
	bool stall_told;                  /* the first credit stall printed */
	size_t first_sent;                /* of spec->first */
};

static const char *const svc_names[] = {
	[GUEST_SVC_ECHO] = "echo",
	[GUEST_SVC_SINK] = "sink",
	[GUEST_SVC_SOURCE] = "source",
	[GUEST_SVC_SLOW] = "slow",
	[GUEST_SVC_IGNORE] = "ignore",
	[GUEST_SVC_SEND] = "send",
	[GUEST_SVC_ECHO_CHECK] = "echo-check",
	[GUEST_SVC_RECV] = "recv",
	[GUEST_SVC_REQUEST] = "request",
	[GUEST_SVC_BAD_OVERRUN] = "bad-overrun",
	[GUEST_SVC_BAD_OP] = "bad-unknown-op",
	[GUEST_SVC_BAD_LEN] = "bad-hdr-len",
	[GUEST_SVC_BAD_CID] = "bad-wrong-cid",
	[GUEST_SVC_BAD_NOCONN] = "bad-noconn",
};

static void svc_printf(struct guest_svc *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void svc_printf(struct guest_svc *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(s->out, fmt, ap);
	va_end(ap);
	fflush(s->out);
}

/* --- parsing -------------------------------------------------------------- */

int64_t guest_parse_size(const char *str)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(str, &end, 0);
	if (errno || end == str)
		return -1;
	switch (*end) {
	case 'k': case 'K':
		v <<= 10;
		end++;
		break;
	case 'm': case 'M':
		v <<= 20;
		end++;
		break;
	case 'g': case 'G':
		v <<= 30;
		end++;
		break;
	default:
		break;
	}
	if (*end || v > INT64_MAX)
		return -1;
	return (int64_t)v;
}

static int svc_err(char *err, size_t len, const char *fmt, const char *what)
{
	snprintf(err, len, fmt, what);
	return -EINVAL;
}

/* "N" or "MIN-MAX" */
static int svc_parse_range(const char *v, struct guest_svc_spec *o)
{
	char buf[64];
	char *dash;
	int64_t a, b;

	snprintf(buf, sizeof(buf), "%s", v);
	dash = strchr(buf, '-');
	if (dash)
		*dash = 0;
	a = guest_parse_size(buf);
	b = dash ? guest_parse_size(dash + 1) : a;
	if (a < 0 || b < a)
		return -1;
	o->n_min = (uint64_t)a;
	o->n_max = (uint64_t)b;
	return 0;
}

/* first=HEX: pairs of hex digits, up to GUEST_FIRST_MAX bytes. */
static int svc_parse_hex(const char *v, struct guest_svc_spec *o)
{
	size_t len = strlen(v), i;
	unsigned byte;

	if (!len || len % 2 || len / 2 > GUEST_FIRST_MAX)
		return -1;
	for (i = 0; i < len / 2; i++) {
		if (!isxdigit((unsigned char)v[2 * i]) ||
		    !isxdigit((unsigned char)v[2 * i + 1]) ||
		    sscanf(v + 2 * i, "%2x", &byte) != 1)
			return -1;
		o->first[i] = (uint8_t)byte;
	}
	o->first_len = len / 2;
	return 0;
}

static const struct {
	const char *name;
	enum guest_svc_kind kind;
} svc_bad_kinds[] = {
	{ "overrun", GUEST_SVC_BAD_OVERRUN },
	{ "unknown-op", GUEST_SVC_BAD_OP },
	{ "hdr-len", GUEST_SVC_BAD_LEN },
	{ "wrong-cid", GUEST_SVC_BAD_CID },
	{ "noconn", GUEST_SVC_BAD_NOCONN },
};

int guest_svc_parse(const char *arg, bool listen, struct guest_svc_spec *o,
                    char *err, size_t errlen)
{
	char buf[2 * GUEST_FIRST_MAX + 256];
	char *p, *svc, *val, *opt, *save = NULL;
	long port;
	unsigned i;

	memset(o, 0, sizeof(*o));
	o->listen = listen;
	o->chunk = 256u << 10;
	if (strlen(arg) >= sizeof(buf))
		return svc_err(err, errlen, "%s: too long", arg);
	strcpy(buf, arg);
	p = strchr(buf, ':');
	if (!p)
		return svc_err(err, errlen, "%s: want PORT:SERVICE", arg);
	*p = 0;
	port = strtol(buf, &val, 10);
	if (*val || port < 0 || port > 0xffffffffL)
		return svc_err(err, errlen, "%s: bad port", arg);
	o->port = (uint32_t)port;
	svc = strtok_r(p + 1, ",", &save);
	if (!svc)
		return svc_err(err, errlen, "%s: no service", arg);
	val = strchr(svc, '=');
	if (val)
		*val++ = 0;
	if (listen && !strcmp(svc, "echo")) {
		o->kind = GUEST_SVC_ECHO;
	} else if (listen && !strcmp(svc, "sink")) {
		o->kind = GUEST_SVC_SINK;
	} else if (listen && !strcmp(svc, "ignore")) {
		o->kind = GUEST_SVC_IGNORE;
	} else if (listen && !strcmp(svc, "source")) {
		o->kind = GUEST_SVC_SOURCE;
		if (!val || svc_parse_range(val, o) < 0)
			return svc_err(err, errlen, "%s: source=N", arg);
	} else if (listen && !strcmp(svc, "slow")) {
		int64_t r = val ? guest_parse_size(val) : -1;

		o->kind = GUEST_SVC_SLOW;
		if (r <= 0 || r > UINT32_MAX)
			return svc_err(err, errlen, "%s: slow=BYTES_PER_MS",
			               arg);
		o->rate = (uint32_t)r;
	} else if (!listen && !strcmp(svc, "send")) {
		o->kind = GUEST_SVC_SEND;
		if (!val || svc_parse_range(val, o) < 0)
			return svc_err(err, errlen, "%s: send=N", arg);
	} else if (!listen && !strcmp(svc, "echo-check")) {
		o->kind = GUEST_SVC_ECHO_CHECK;
		if (!val || svc_parse_range(val, o) < 0)
			return svc_err(err, errlen, "%s: echo-check=N", arg);
	} else if (!listen && !strcmp(svc, "request")) {
		o->kind = GUEST_SVC_REQUEST;
		if (!val || svc_parse_range(val, o) < 0)
			return svc_err(err, errlen, "%s: request=N", arg);
	} else if (!listen && !strcmp(svc, "recv")) {
		o->kind = GUEST_SVC_RECV;
	} else if (!listen && !strcmp(svc, "bad") && val) {
		for (i = 0; i < sizeof(svc_bad_kinds) / sizeof(svc_bad_kinds[0]);
		     i++)
			if (!strcmp(val, svc_bad_kinds[i].name))
				break;
		if (i == sizeof(svc_bad_kinds) / sizeof(svc_bad_kinds[0]))
			return svc_err(err, errlen, "%s: unknown bad=KIND",
			               arg);
		o->kind = svc_bad_kinds[i].kind;
	} else {
		return svc_err(err, errlen, "%s: unknown service", arg);
	}
	while ((opt = strtok_r(NULL, ",", &save))) {
		int64_t v;

		val = strchr(opt, '=');
		if (!val)
			return svc_err(err, errlen, "%s: option without =",
			               arg);
		*val++ = 0;
		if (!strcmp(opt, "first") && !listen) {
			if (svc_parse_hex(val, o) < 0)
				return svc_err(err, errlen, "%s: first=HEX",
				               arg);
			continue;
		}
		v = guest_parse_size(val);
		if (v < 0 || v > UINT32_MAX)
			return svc_err(err, errlen, "%s: bad option value",
			               arg);
		if (!strcmp(opt, "n"))
			o->count = (unsigned)v;
		else if (!strcmp(opt, "delay"))
			o->delay_ms = (unsigned)v;
		else if (!strcmp(opt, "chunk") && v > 0)
			o->chunk = (unsigned)v;
		else if (!strcmp(opt, "after") && !listen)
			o->after = (uint32_t)v, o->has_after = true;
		else if (!strcmp(opt, "check") && v <= 1)
			o->nocheck = !v;
		else
			return svc_err(err, errlen, "%s: unknown option", arg);
	}
	if (!listen && !o->count)
		o->count = 1;
	return 0;
}

/* --- per connection ------------------------------------------------------- */

static void svc_report(struct svc_conn *sc, struct guest_conn *c,
                       const char *status)
{
	struct guest_svc *s = sc->s;
	char check[64] = "";

	if (sc->spec->kind == GUEST_SVC_ECHO_CHECK) {
		if (sc->check_failed)
			snprintf(check, sizeof(check), " check=mismatch@%"
			         PRIu64, sc->check_off);
		else if (sc->rx != sc->total)
			snprintf(check, sizeof(check), " check=short");
		else
			snprintf(check, sizeof(check), " check=ok");
	}
	svc_printf(s, "conn lport=%u rport=%u svc=%s status=%s rx=%" PRIu64
	           " rx_fnv=%016" PRIx64 " tx=%" PRIu64 " tx_fnv=%016" PRIx64
	           " inflight_max=%u peer_buf_alloc=%u stalls=%" PRIu64
	           " seed=%016" PRIx64 " rx_pkts=%" PRIu64 "%s\n", c->lport,
	           c->rport, svc_names[sc->spec->kind], status, sc->rx,
	           sc->rx_fnv, sc->sent, sc->tx_fnv, c->inflight_max,
	           c->peer_buf_alloc, c->credit_stalls, sc->seed, c->rx_pkts,
	           check);
}

/* Read up to limit bytes (checksummed, and checked against the data
 * stream for echo-check).  Returns the count. */
static uint64_t svc_drain(struct svc_conn *sc, struct guest_conn *c,
                          uint64_t limit)
{
	uint64_t got = 0;

	while (got < limit) {
		const uint8_t *p;
		size_t n = guest_conn_peek(c, &p), i;

		if (!n)
			break;
		if (n > limit - got)
			n = (size_t)(limit - got);
		if (sc->spec->kind == GUEST_SVC_ECHO_CHECK && !sc->check_failed) {
			uint8_t *want = sc->s->scratch;
			size_t m = n > SVC_SCRATCH ? SVC_SCRATCH : n;

			n = m;
			guest_data_fill(sc->seed, sc->rx, want, m);
			if (sc->rx + m > sc->total || memcmp(want, p, m)) {
				for (i = 0; i < m && sc->rx + i < sc->total &&
				     want[i] == p[i]; i++)
					;
				sc->check_failed = true;
				sc->check_off = sc->rx + i;
			}
		}
		if (!sc->spec->nocheck)
			sc->rx_fnv = guest_fnv1a(sc->rx_fnv, p, n);
		sc->rx += n;
		got += n;
		guest_conn_consume(c, n);
	}
	return got;
}

/* Send more of the connection's data stream.  True when all is sent. */
static bool svc_send(struct svc_conn *sc, struct guest_conn *c)
{
	while (sc->sent < sc->total) {
		uint64_t n = sc->total - sc->sent;
		uint32_t credit = c->ignore_credit ? UINT32_MAX :
		                  guest_conn_credit(c);
		ssize_t w;

		if (n > SVC_SCRATCH)
			n = SVC_SCRATCH;
		if (n > sc->spec->chunk)
			n = sc->spec->chunk;
		/* Generate only what credit lets through (at least one byte,
		 * so that a stall is counted and credit requested). */
		if (n > credit)
			n = credit ? credit : 1;
		if (!sc->spec->nocheck)
			guest_data_fill(sc->seed, sc->sent, sc->s->scratch,
			                (size_t)n);
		w = guest_conn_write(c, sc->s->scratch, (size_t)n);
		if (c->credit_stalls && !sc->stall_told) {
			sc->stall_told = true;
			svc_printf(sc->s, "stall lport=%u rport=%u inflight=%u "
			           "peer_buf_alloc=%u\n", c->lport, c->rport,
			           c->tx_cnt - c->peer_fwd_cnt, c->peer_buf_alloc);
		}
		if (w <= 0)
			return false;
		if (!sc->spec->nocheck)
			sc->tx_fnv = guest_fnv1a(sc->tx_fnv, sc->s->scratch,
			                         (size_t)w);
		sc->sent += (uint64_t)w;
		if ((uint64_t)w < n)
			return false;
	}
	return true;
}

static void svc_misbehave(struct svc_conn *sc, struct guest_conn *c)
{
	struct guest *g = c->g;
	struct virtio_vsock_hdr h;
	static const uint8_t junk[16] = "misbehaving!!!!";
	const char *kind = svc_names[sc->spec->kind] + 4;

	switch (sc->spec->kind) {
	case GUEST_SVC_BAD_OVERRUN:
		if (!sc->total) {
			c->ignore_credit = true;
			sc->total = (uint64_t)c->peer_buf_alloc + (128u << 10);
		}
		if (!svc_send(sc, c))
			return;
		break;
	case GUEST_SVC_BAD_OP:
		guest_conn_hdr(c, SVC_BAD_OP, &h);
		guest_send_raw(g, &h, NULL, 0);
		break;
	case GUEST_SVC_BAD_LEN:
		guest_conn_hdr(c, VIRTIO_VSOCK_OP_RW, &h);
		h.len = htole32(4096);
		guest_send_raw(g, &h, junk, sizeof(junk));
		break;
	case GUEST_SVC_BAD_CID:
		guest_conn_hdr(c, VIRTIO_VSOCK_OP_RW, &h);
		h.src_cid = htole64(guest_cid(g) + 100);
		h.len = htole32(sizeof(junk));
		guest_send_raw(g, &h, junk, sizeof(junk));
		break;
	case GUEST_SVC_BAD_NOCONN:
		c->ignore_credit = true;
		sc->total = sizeof(junk);
		if (!svc_send(sc, c))
			return;
		break;
	default:
		return;
	}
	sc->misbehaved = true;
	svc_printf(sc->s, "misbehave kind=%s lport=%u rport=%u sent=%" PRIu64
	           "\n", kind, c->lport, c->rport, sc->sent);
}

static void svc_pump(struct guest_conn *c)
{
	struct svc_conn *sc = c->arg;
	const struct guest_svc_spec *sp;
	uint64_t now;
	bool eof;

	if (!sc || c->state != GUEST_CONN_ESTABLISHED)
		return;
	sp = sc->spec;
	if (!sc->opened) {
		sc->opened = true;
		svc_printf(sc->s, "open lport=%u rport=%u svc=%s\n", c->lport,
		           c->rport, svc_names[sp->kind]);
		if (sp->delay_ms) {
			sc->start_at = guest_now_ms() + sp->delay_ms;
			guest_conn_set_tick(c, sp->delay_ms);
		}
	}
	if (!sc->started) {
		if (sc->start_at && guest_now_ms() < sc->start_at)
			return;
		sc->started = true;
		guest_conn_set_tick(c, 0);
		if (sp->kind == GUEST_SVC_SLOW) {
			sc->last_ms = guest_now_ms();
			guest_conn_set_tick(c, 1);
		}
	}
	if (sc->first_sent < sp->first_len) {
		ssize_t w = guest_conn_write(c, sp->first + sc->first_sent,
		                             sp->first_len - sc->first_sent);

		if (w > 0)
			sc->first_sent += (size_t)w;
		if (sc->first_sent < sp->first_len) {
			/* the host may reset us for these bytes: read on */
			svc_drain(sc, c, UINT64_MAX);
			return;
		}
	}
	switch (sp->kind) {
	case GUEST_SVC_ECHO:
		for (;;) {
			const uint8_t *p;
			size_t n = guest_conn_peek(c, &p);
			ssize_t w;

			if (!n)
				break;
			if (n > sp->chunk)
				n = sp->chunk;
			w = guest_conn_write(c, p, n);
			if (w == -EPIPE) {
				/* The host receives no more: discard. */
				svc_drain(sc, c, UINT64_MAX);
				break;
			}
			if (w <= 0)
				break;
			sc->tx_fnv = guest_fnv1a(sc->tx_fnv, p, (size_t)w);
			sc->sent += (uint64_t)w;
			svc_drain(sc, c, (uint64_t)w);
			if ((size_t)w < n)
				break;
		}
		if (guest_conn_eof(c))
			guest_conn_close(c);
		break;
	case GUEST_SVC_SINK:
	case GUEST_SVC_RECV:
		svc_drain(sc, c, UINT64_MAX);
		if (guest_conn_eof(c))
			guest_conn_close(c);
		break;
	case GUEST_SVC_SLOW:
		now = guest_now_ms();
		sc->budget += (now - sc->last_ms) * sp->rate;
		sc->last_ms = now;
		if (sc->budget > (uint64_t)sp->rate * 16)
			sc->budget = (uint64_t)sp->rate * 16;
		sc->budget -= svc_drain(sc, c, sc->budget);
		if (guest_conn_eof(c))
			guest_conn_close(c);
		break;
	case GUEST_SVC_SOURCE:
	case GUEST_SVC_SEND:
		svc_drain(sc, c, UINT64_MAX);
		if (svc_send(sc, c))
			guest_conn_close(c);
		else if (guest_conn_eof(c) &&
		         (c->peer_shutdown & VIRTIO_VSOCK_SHUTDOWN_RCV))
			guest_conn_close(c);
		break;
	case GUEST_SVC_REQUEST:
		if (svc_send(sc, c))
			guest_conn_shutdown(c, VIRTIO_VSOCK_SHUTDOWN_SEND);
		svc_drain(sc, c, UINT64_MAX);
		if (guest_conn_eof(c))
			guest_conn_close(c);
		break;
	case GUEST_SVC_ECHO_CHECK:
		if (svc_send(sc, c))
			guest_conn_shutdown(c, VIRTIO_VSOCK_SHUTDOWN_SEND);
		svc_drain(sc, c, UINT64_MAX);
		eof = guest_conn_eof(c);
		if ((sc->rx >= sc->total && sc->sent == sc->total) || eof ||
		    sc->check_failed)
			guest_conn_close(c);
		break;
	default:
		/* misbehaviours: once the host has sent its first byte (so it
		 * has the connection open), act once; then wait for its RST */
		svc_drain(sc, c, UINT64_MAX);
		if (!sc->misbehaved && (sc->rx || sp->kind == GUEST_SVC_BAD_NOCONN))
			svc_misbehave(sc, c);
		break;
	}
}

static void svc_done(struct guest_conn *c)
{
	struct svc_conn *sc = c->arg;
	struct guest_svc *s;

	if (!sc)
		return;
	s = sc->s;
	svc_report(sc, c, guest_conn_state_name(c));
	s->live--;
	free(sc);
	c->arg = NULL;
}

static const struct guest_conn_ops svc_ops = {
	.pump = svc_pump,
	.done = svc_done,
};

static struct svc_conn *svc_conn_new(struct guest_svc *s,
                                     const struct guest_svc_spec *spec)
{
	struct svc_conn *sc = calloc(1, sizeof(*sc));
	uint64_t span;

	if (!sc)
		return NULL;
	sc->s = s;
	sc->spec = spec;
	sc->rx_fnv = sc->tx_fnv = GUEST_FNV_INIT;
	sc->seed = guest_rand(&s->rng);
	span = spec->n_max - spec->n_min;
	sc->total = spec->n_min;
	if (span)
		sc->total += guest_rand(&s->rng) % (span + 1);
	s->live++;
	return sc;
}

static int svc_connect_spec(struct guest_svc *s,
                            const struct guest_svc_spec *spec);
static int svc_listen_activate(struct guest_svc *s, struct svc_listener *l);

static void svc_accept(void *larg, struct guest_conn *c)
{
	struct svc_listener *l = larg;
	struct guest_svc *s = l->s;
	struct svc_conn *sc = svc_conn_new(s, &l->spec);
	unsigned i;

	if (!sc) {
		guest_conn_reset(c);
		return;
	}
	c->arg = sc;
	l->accepted++;
	/* connect specs waiting for a connection on this port */
	for (i = 0; i < s->nspecs; i++) {
		if (s->started[i] || !s->specs[i]->has_after ||
		    s->specs[i]->after != l->spec.port)
			continue;
		s->started[i] = true;
		if (svc_connect_spec(s, s->specs[i]) < 0)
			svc_printf(s, "error cannot start connect to %u\n",
			           s->specs[i]->port);
	}
	if (l->spec.count && l->accepted >= l->spec.count && !l->closed) {
		/* accept_fn is the listener's last use in the driver */
		l->closed = true;
		l->active = false;
		s->open_listeners--;
		guest_unlisten(s->g, l->spec.port);
		/* the next listen spec queued on this port takes over */
		for (i = 0; i < s->nls; i++) {
			if (s->ls[i]->active || s->ls[i]->closed ||
			    s->ls[i]->spec.port != l->spec.port)
				continue;
			if (svc_listen_activate(s, s->ls[i]) < 0)
				svc_printf(s, "error cannot listen on %u\n",
				           l->spec.port);
			break;
		}
	}
}

/* --- the set -------------------------------------------------------------- */

struct guest_svc *guest_svc_new(struct guest *g, uint64_t seed, FILE *out)
{
	struct guest_svc *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->scratch = malloc(SVC_SCRATCH);
	if (!s->scratch) {
		free(s);
		return NULL;
	}
	s->g = g;
	s->seed = s->rng = seed;
	s->out = out;
	return s;
}

static int svc_listen_activate(struct guest_svc *s, struct svc_listener *l)
{
	int r;

	r = guest_listen(s->g, l->spec.port,
	                 l->spec.kind == GUEST_SVC_IGNORE ? NULL : &svc_ops,
	                 svc_accept, l);
	if (r == 0)
		l->active = true;
	return r;
}

static int svc_connect_spec(struct guest_svc *s,
                            const struct guest_svc_spec *spec)
{
	unsigned i;
	int r;

	for (i = 0; i < spec->count; i++) {
		struct svc_conn *sc = svc_conn_new(s, spec);
		struct guest_conn *c;

		if (!sc)
			return -ENOMEM;
		if (spec->kind == GUEST_SVC_BAD_NOCONN)
			c = guest_conn_phantom(s->g, spec->port, &svc_ops, sc);
		else
			c = guest_connect(s->g, spec->port, &svc_ops, sc);
		if (!c) {
			r = -errno;
			s->live--;
			free(sc);
			return r;
		}
	}
	return 0;
}

int guest_svc_start(struct guest_svc *s, const struct guest_svc_spec *spec)
{
	unsigned i;
	int r;

	if (spec->listen) {
		struct svc_listener *l = calloc(1, sizeof(*l)), **ls;
		bool queued = false;

		ls = realloc(s->ls, (s->nls + 1) * sizeof(*ls));
		if (!l || !ls) {
			free(l);
			if (ls)
				s->ls = ls;
			return -ENOMEM;
		}
		s->ls = ls;
		l->s = s;
		l->spec = *spec;
		/* A port may carry several specs with n=K: they take turns. */
		for (i = 0; i < s->nls; i++)
			if (s->ls[i]->spec.port == spec->port &&
			    !s->ls[i]->closed)
				queued = true;
		if (queued) {
			for (i = 0; i < s->nls; i++)
				if (s->ls[i]->spec.port == spec->port &&
				    !s->ls[i]->spec.count) {
					free(l);
					return -EADDRINUSE;
				}
		} else {
			r = svc_listen_activate(s, l);
			if (r < 0) {
				free(l);
				return r;
			}
		}
		s->ls[s->nls++] = l;
		s->open_listeners++;
		return 0;
	} else {
		struct guest_svc_spec *cp = malloc(sizeof(*cp)), **sp;
		bool *st;

		sp = realloc(s->specs, (s->nspecs + 1) * sizeof(*sp));
		if (sp)
			s->specs = sp;
		st = realloc(s->started, (s->nspecs + 1) * sizeof(*st));
		if (st)
			s->started = st;
		if (!cp || !sp || !st) {
			free(cp);
			return -ENOMEM;
		}
		*cp = *spec;
		s->specs[s->nspecs] = cp;
		s->started[s->nspecs] = !spec->has_after;
		s->nspecs++;
		if (spec->has_after)
			return 0;
		return svc_connect_spec(s, cp);
	}
}

bool guest_svc_idle(const struct guest_svc *s)
{
	unsigned i;

	for (i = 0; i < s->nspecs; i++)
		if (!s->started[i])
			return false;
	return !s->live && !s->open_listeners;
}

void guest_svc_abort(struct guest_svc *s)
{
	struct guest_conn *c;
	char status[32];

	for (c = guest_conn_first(s->g); c; c = guest_conn_next(c)) {
		struct svc_conn *sc = c->arg;

		if (!sc || c->ops != &svc_ops)
			continue;
		snprintf(status, sizeof(status), "aborted-%s",
		         guest_conn_state_name(c));
		svc_report(sc, c, status);
		s->live--;
		free(sc);
		c->arg = NULL;
	}
}

void guest_svc_free(struct guest_svc *s)
{
	unsigned i;

	if (!s)
		return;
	for (i = 0; i < s->nls; i++)
		free(s->ls[i]);
	for (i = 0; i < s->nspecs; i++)
		free(s->specs[i]);
	free(s->ls);
	free(s->specs);
	free(s->started);
	free(s->scratch);
	free(s);
}
