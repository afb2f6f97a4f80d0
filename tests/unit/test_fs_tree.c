/* fs_tree: the fixed nodes fs/ builds from the registered directories. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "chanfs/chandir.h"
#include "chanfs/log.h"
#include "fs_private.h"

static int lookup_any(void *ctx, const char *name)
{
	(void)ctx;
	(void)name;
	return 0;
}

static int open_none(void *ctx, const char *name, struct chan **out)
{
	(void)ctx;
	(void)name;
	*out = NULL;
	return -EAGAIN;
}

static const struct chandir_ops ops = { .lookup = lookup_any,
                                        .open = open_none };

static void test_vsock_directories_keep_the_node_ids_they_always_had(void **state)
{
	static struct fs fs;
	struct chandirs r;

	(void)state;
	chandirs_init(&r);
	assert_non_null(chandir_add(&r, "vsock", CHANDIR_CONNECT, 0, &ops, NULL));
	assert_non_null(chandir_add(&r, "vsock/listen", CHANDIR_ACCEPT, 0, &ops,
	                            NULL));
	memset(&fs, 0, sizeof fs);
	assert_int_equal(fs_tree_init(&fs, &r), 0);
	assert_int_equal(fs_dir_node(&fs, "")->ino, FS_INO_ROOT);
	assert_int_equal(fs_dir_node(&fs, "vsock")->ino, 2);
	assert_int_equal(fs_dir_node(&fs, "vsock/listen")->ino, 3);
	assert_int_equal(fs.status_ino, 4);
	assert_ptr_equal(fs_dir_node(&fs, "vsock")->cd, &r.dirs[0]);
	assert_int_equal(fs_dir_node(&fs, "vsock")->nsubdirs, 1);
	assert_int_equal(fs_dir_node(&fs, "vsock/listen")->parent, 2);
	assert_int_equal(fs_node_get(&fs, 4)->kind, FS_STATUS);
	assert_null(fs_node_get(&fs, 5));
	fs_tree_free(&fs);
}

static void test_a_child_registered_before_its_parent_shares_the_parent_node(void **state)
{
	static struct fs fs;
	struct chandirs r;
	const struct fs_node *a, *b, *lone;

	(void)state;
	chandirs_init(&r);
	assert_non_null(chandir_add(&r, "a/b", CHANDIR_ACCEPT, 0, &ops, NULL));
	assert_non_null(chandir_add(&r, "lone/x", CHANDIR_ACCEPT, 0, &ops, NULL));
	assert_non_null(chandir_add(&r, "a", CHANDIR_SHARED, 0, &ops, NULL));
	memset(&fs, 0, sizeof fs);
	assert_int_equal(fs_tree_init(&fs, &r), 0);
	a = fs_dir_node(&fs, "a");
	b = fs_dir_node(&fs, "a/b");
	lone = fs_dir_node(&fs, "lone");
	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(lone);
	/* One "a", registered after all. */
	assert_ptr_equal(a->cd, &r.dirs[2]);
	assert_int_equal(a->nsubdirs, 1);
	assert_int_equal(b->parent, a->ino);
	assert_ptr_equal(b->cd, &r.dirs[0]);
	/* Nobody registered lone: a directory with no ops of its own. */
	assert_null(lone->cd);
	assert_int_equal(fs_dir_node(&fs, "")->nsubdirs, 2);
	assert_int_equal(fs.nfixed, 6);	/* root a a/b lone lone/x status */
	fs_tree_free(&fs);
}

static void test_a_directory_named_status_is_refused(void **state)
{
	static const char *const taken[] = { "status", "status/x" };
	static struct fs fs;
	struct chandirs r;
	size_t i;

	(void)state;
	for (i = 0; i < 2; i++) {
		chandirs_init(&r);
		assert_non_null(chandir_add(&r, taken[i], CHANDIR_CONNECT, 0,
		                            &ops, NULL));
		memset(&fs, 0, sizeof fs);
		assert_int_equal(fs_tree_init(&fs, &r), -EEXIST);
		fs_tree_free(&fs);
	}
	chandirs_init(&r);
	assert_non_null(chandir_add(&r, "statusx", CHANDIR_CONNECT, 0, &ops,
	                            NULL));
	memset(&fs, 0, sizeof fs);
	assert_int_equal(fs_tree_init(&fs, &r), 0);
	fs_tree_free(&fs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vsock_directories_keep_the_node_ids_they_always_had),
		cmocka_unit_test(test_a_child_registered_before_its_parent_shares_the_parent_node),
		cmocka_unit_test(test_a_directory_named_status_is_refused),
	};

	log_init("test-fs-tree", false);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
