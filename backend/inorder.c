#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "chanfs/inorder.h"

#define INORDER_MAX 32768u

int inorder_init(struct inorder *w, uint32_t size)
{
	memset(w, 0, sizeof *w);
	/* A power of two, so seq % size stays consistent when the u32
	 * sequence numbers wrap. */
	if (size == 0 || size > INORDER_MAX || (size & (size - 1)))
		return -EINVAL;
	w->slots = calloc(size, sizeof *w->slots);
	if (!w->slots)
		return -ENOMEM;
	w->size = size;
	return 0;
}

void inorder_destroy(struct inorder *w)
{
	free(w->slots);
	memset(w, 0, sizeof *w);
}

void inorder_reset(struct inorder *w, uint32_t start)
{
	/* Parked completions of the forgotten elements would otherwise be
	 * flushed as if they belonged to the new ones in the same slots. */
	if (w->slots)
		memset(w->slots, 0, (size_t)w->size * sizeof *w->slots);
	w->next = start;
	w->issued = start;
}

int64_t inorder_begin(struct inorder *w)
{
	if (inorder_outstanding(w) >= w->size)
		return -ENOSPC;
	return w->issued++;
}

int inorder_complete(struct inorder *w, uint32_t seq, uint32_t id,
                     uint32_t len, inorder_flush_fn flush, void *arg)
{
	uint32_t mask = w->size - 1;
	struct inorder_slot *s;
	int n = 0;
	bool last;

	/* Unsigned distance from next: anything flushed already or not yet
	 * handed out lands at or beyond the outstanding count. */
	if (seq - w->next >= inorder_outstanding(w))
		return -EINVAL;
	s = &w->slots[seq & mask];
	if (s->done)
		return -EALREADY;
	s->id = id;
	s->len = len;
	s->done = true;
	if (seq != w->next)
		return 0;

	/* Slots are cleared as they flush, and a slot past issued was cleared
	 * when its previous element flushed, so the run stops at the first
	 * gap without comparing against issued. */
	do {
		uint32_t cur = w->next;

		s = &w->slots[cur & mask];
		s->done = false;
		w->next = cur + 1;
		last = !w->slots[w->next & mask].done;
		n++;
		if (flush)
			flush(arg, cur, s->id, s->len, last);
	} while (!last);
	return n;
}
