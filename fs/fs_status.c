#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "chanfs/chan.h"
#include "chanfs/chandir.h"
#include "fs_private.h"

/* A snapshot taken at open, so a reader sees one consistent text however
 * small its reads are, while connections come and go. */
int fs_status_snapshot(struct fs *fs, char **text, size_t *len)
{
	const struct chan *c;
	unsigned i;
	FILE *out;

	*text = NULL;
	*len = 0;
	out = open_memstream(text, len);
	if (!out)
		return -errno;
	fprintf(out, "chanfs %s\n", CHANFS_VERSION);
	/* Each directory's lines, in the order they were registered. */
	for (i = 0; i < fs->dirs->count; i++) {
		const struct chandir *d = &fs->dirs->dirs[i];

		if (d->ops->status)
			d->ops->status(d->ctx, out);
	}
	if (fs->status)
		fs->status(fs->status_arg, out);
	fprintf(out, "channels %u\n", fs->chans->count);
	TAILQ_FOREACH(c, &fs->chans->all, link)
		chan_describe(c, out);
	if (fclose(out) != 0) {
		free(*text);
		*text = NULL;
		*len = 0;
		return -ENOMEM;
	}
	return 0;
}
