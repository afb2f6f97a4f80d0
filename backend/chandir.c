#include <errno.h>
#include <string.h>

#include "chanfs/chandir.h"

void chandirs_init(struct chandirs *r)
{
	memset(r, 0, sizeof *r);
}

static bool chandir_component_ok(const char *s, size_t len)
{
	if (len == 0 || len > CHANDIR_NAME_MAX)
		return false;
	if ((len == 1 && s[0] == '.') || (len == 2 && !memcmp(s, "..", 2)))
		return false;
	for (size_t i = 0; i < len; i++) {
		char ch = s[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' ||
		      ch == '-'))
			return false;
	}
	return true;
}

static bool chandir_path_ok(const char *path)
{
	const char *slash = strchr(path, '/');

	if (!slash)
		return chandir_component_ok(path, strlen(path));
	return chandir_component_ok(path, (size_t)(slash - path)) &&
	       !strchr(slash + 1, '/') &&
	       chandir_component_ok(slash + 1, strlen(slash + 1));
}

struct chandir *chandir_add(struct chandirs *r, const char *path,
                            enum chandir_mode mode, unsigned flags,
                            const struct chandir_ops *ops, void *ctx)
{
	struct chandir *d;

	if (!path || !chandir_path_ok(path) || !ops || !ops->lookup ||
	    !ops->open || mode > CHANDIR_SHARED) {
		errno = EINVAL;
		return NULL;
	}
	if (chandir_find(r, path)) {
		errno = EEXIST;
		return NULL;
	}
	if (r->count == CHANDIRS_MAX) {
		errno = ENOSPC;
		return NULL;
	}
	d = &r->dirs[r->count++];
	*d = (struct chandir){ .path = path, .mode = mode, .flags = flags,
	                       .ops = ops, .ctx = ctx, .set = r };
	return d;
}

struct chandir *chandir_find(struct chandirs *r, const char *path)
{
	for (unsigned i = 0; i < r->count; i++)
		if (!strcmp(r->dirs[i].path, path))
			return &r->dirs[i];
	return NULL;
}

void chandir_ready(struct chandir *d, const char *name)
{
	struct chandirs *r = d->set;

	if (r->ready)
		r->ready(r->ready_arg, d, name);
}

void chandirs_on_ready(struct chandirs *r,
                       void (*fn)(void *arg, struct chandir *d,
                                  const char *name),
                       void *arg)
{
	r->ready = fn;
	r->ready_arg = fn ? arg : NULL;
}

bool chandir_name_ok(const char *name)
{
	size_t len = strnlen(name, CHANDIR_NAME_MAX + 1);

	if (len == 0 || len > CHANDIR_NAME_MAX)
		return false;
	if (!strcmp(name, ".") || !strcmp(name, ".."))
		return false;
	return !strchr(name, '/');
}
