/*
 * gmem: translation at region edges, overflow-safe ranges, overlap
 * rejection and splitting across adjacent regions, on memfd-backed memory.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "chanfs/gmem.h"

#define PAGE 4096

static int memfd(size_t size)
{
	int fd = memfd_create("gmem-test", MFD_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	return fd;
}

/* Add a region backed by a fresh memfd of size bytes (at offset 0). */
static void add(struct gmem *m, uint64_t gpa, uint64_t size, uint64_t uva)
{
	int fd = memfd(size);

	assert_int_equal(gmem_add(m, gpa, size, uva, 0, fd), 0);
	close(fd);
}

static int add_rc(struct gmem *m, uint64_t gpa, uint64_t size, uint64_t uva)
{
	int fd = memfd(size), rc;

	rc = gmem_add(m, gpa, size, uva, 0, fd);
	close(fd);
	return rc;
}

static void gmem_gpa_translates_first_and_last_byte_of_a_region(void **state)
{
	struct gmem m;
	uint8_t *p;

	(void)state;
	gmem_init(&m);
	add(&m, 0x10000, 2 * PAGE, 0x7f0000000000);
	p = gmem_gpa(&m, 0x10000, 1);
	assert_non_null(p);
	assert_ptr_equal(gmem_gpa(&m, 0x10000 + 2 * PAGE - 1, 1),
	                 p + 2 * PAGE - 1);
	assert_ptr_equal(gmem_gpa(&m, 0x10000, 2 * PAGE), p);
	/* The whole region is mapped: its last byte can be touched. */
	p[2 * PAGE - 1] = 0xa5;
	gmem_clear(&m);
}

static void gmem_gpa_rejects_ranges_reaching_past_a_region(void **state)
{
	struct gmem m;

	(void)state;
	gmem_init(&m);
	add(&m, 0x10000, PAGE, 0x7f0000000000);
	assert_null(gmem_gpa(&m, 0x10000 + PAGE, 1));      /* one past */
	assert_null(gmem_gpa(&m, 0x10000 + PAGE - 1, 2));  /* last + 1 */
	assert_null(gmem_gpa(&m, 0x10000, PAGE + 1));
	assert_null(gmem_gpa(&m, 0xffff, 1));              /* one before */
	assert_null(gmem_gpa(&m, 0xffff, 2));
	gmem_clear(&m);
}

static void gmem_gpa_accepts_zero_length_only_inside_a_region(void **state)
{
	struct gmem m;

	(void)state;
	gmem_init(&m);
	add(&m, 0x10000, PAGE, 0x7f0000000000);
	assert_non_null(gmem_gpa(&m, 0x10000 + PAGE - 1, 0));
	assert_null(gmem_gpa(&m, 0x10000 + PAGE, 0));
	gmem_clear(&m);
}

static void gmem_gpa_rejects_ranges_that_wrap_2_64(void **state)
{
	struct gmem m;

	(void)state;
	gmem_init(&m);
	add(&m, 0, PAGE, 0x7f0000000000);
	add(&m, UINT64_MAX - PAGE + 1, PAGE, 0x7f0000100000);
	/* The top region ends exactly at 2^64 and is usable to its end. */
	assert_non_null(gmem_gpa(&m, UINT64_MAX, 1));
	assert_non_null(gmem_gpa(&m, UINT64_MAX - PAGE + 1, PAGE));
	/* len wraps addr + len to a small number inside region 0. */
	assert_null(gmem_gpa(&m, 16, UINT64_MAX));
	assert_null(gmem_gpa(&m, UINT64_MAX - 7, 16));
	assert_null(gmem_gpa(&m, UINT64_MAX, UINT64_MAX));
	gmem_clear(&m);
}

static void gmem_uva_translates_front_end_addresses(void **state)
{
	struct gmem m;

	(void)state;
	gmem_init(&m);
	add(&m, 0x10000, PAGE, 0x7f0000000000);
	assert_ptr_equal(gmem_uva(&m, 0x7f0000000010, 16),
	                 (uint8_t *)gmem_gpa(&m, 0x10010, 16));
	assert_null(gmem_uva(&m, 0x7f0000000000 + PAGE - 8, 16));
	assert_null(gmem_uva(&m, 0x10000, 1)); /* a gpa is not a uva */
	assert_null(gmem_uva(&m, 0x7f0000000010, UINT64_MAX));
	gmem_clear(&m);
}

static void gmem_add_rejects_overlapping_guest_physical_ranges(void **state)
{
	struct gmem m;

	(void)state;
	gmem_init(&m);
	add(&m, 0x10000, 2 * PAGE, 0x100000);
	assert_int_equal(add_rc(&m, 0x10000 + 2 * PAGE - 1, PAGE, 0x200000),
	                 -EINVAL);
	assert_int_equal(add_rc(&m, 0x10000 - PAGE + 1, PAGE, 0x200000),
	                 -EINVAL);
	assert_int_equal(add_rc(&m, 0x10000 + PAGE, 1, 0x200000), -EINVAL);
	assert_int_equal(add_rc(&m, 0, 32 * PAGE, 0x200000), -EINVAL);
	/* Touching is not overlapping. */
	add(&m, 0x10000 + 2 * PAGE, PAGE, 0x200000);
	add(&m, 0x10000 - PAGE, PAGE, 0x300000);
	assert_int_equal(m.n, 3);
	gmem_clear(&m);
}

static void gmem_add_rejects_overlapping_front_end_ranges(void **state)
{
	struct gmem m;

	(void)state;
	gmem_init(&m);
	add(&m, 0x10000, 2 * PAGE, 0x100000);
	assert_int_equal(add_rc(&m, 0x40000, PAGE, 0x100000 + PAGE), -EINVAL);
	assert_int_equal(add_rc(&m, 0x40000, 2 * PAGE, 0x100000 - PAGE),
	                 -EINVAL);
	assert_int_equal(m.n, 1);
	gmem_clear(&m);
}

static void gmem_add_rejects_empty_and_wrapping_regions(void **state)
{
	struct gmem m;

	(void)state;
	gmem_init(&m);
	assert_int_equal(add_rc(&m, 0x10000, 0, 0x100000), -EINVAL);
	assert_int_equal(add_rc(&m, UINT64_MAX - PAGE + 2, PAGE, 0x100000),
	                 -EINVAL);
	assert_int_equal(add_rc(&m, 0x10000, PAGE, UINT64_MAX - 10), -EINVAL);
	assert_int_equal(m.n, 0);
	gmem_clear(&m);
}

static void gmem_add_rejects_more_than_max_regions(void **state)
{
	struct gmem m;
	unsigned i;

	(void)state;
	gmem_init(&m);
	for (i = 0; i < GMEM_MAX_REGIONS; i++)
		add(&m, (uint64_t)i * 0x10000, PAGE, 0x100000 + i * 0x10000);
	assert_int_equal(add_rc(&m, 0x1000000, PAGE, 0x2000000), -E2BIG);
	assert_int_equal(m.n, GMEM_MAX_REGIONS);
	gmem_clear(&m);
}

static void gmem_add_reports_mmap_failure(void **state)
{
	struct gmem m;

	(void)state;
	gmem_init(&m);
	assert_int_equal(gmem_add(&m, 0, PAGE, 0, 0, -1), -EBADF);
	assert_int_equal(m.n, 0);
}

static void gmem_add_maps_a_region_at_an_unaligned_file_offset(void **state)
{
	static const char pat[] = "region starts here";
	struct gmem m;
	uint8_t *p;
	char back[4];
	int fd = memfd(3 * PAGE);

	(void)state;
	gmem_init(&m);
	assert_int_equal(pwrite(fd, pat, sizeof pat, PAGE + 100),
	                 (ssize_t)sizeof pat);
	assert_int_equal(gmem_add(&m, 0x10000, PAGE, 0x100000, PAGE + 100,
	                          fd), 0);
	p = gmem_gpa(&m, 0x10000, sizeof pat);
	assert_non_null(p);
	assert_memory_equal(p, pat, sizeof pat);
	/* The mapping is shared: our writes reach the fd. */
	memcpy(p + PAGE - 4, "tail", 4);
	assert_int_equal(pread(fd, back, 4, 2 * PAGE + 100 - 4), 4);
	assert_memory_equal(back, "tail", 4);
	close(fd);
	gmem_clear(&m);
}

static void gmem_iov_splits_a_range_where_adjacent_regions_meet(void **state)
{
	struct gmem m;
	struct iovec iov[4];

	(void)state;
	gmem_init(&m);
	add(&m, 0x10000, PAGE, 0x100000);
	add(&m, 0x10000 + PAGE, PAGE, 0x200000);
	assert_int_equal(gmem_iov(&m, 0x10000 + PAGE - 96, 200, iov, 4), 2);
	assert_ptr_equal(iov[0].iov_base, gmem_gpa(&m, 0x10000 + PAGE - 96, 96));
	assert_int_equal(iov[0].iov_len, 96);
	assert_ptr_equal(iov[1].iov_base, gmem_gpa(&m, 0x10000 + PAGE, 104));
	assert_int_equal(iov[1].iov_len, 104);
	/* One region alone needs one iovec, even its whole extent. */
	assert_int_equal(gmem_iov(&m, 0x10000, PAGE, iov, 1), 1);
	assert_int_equal(iov[0].iov_len, PAGE);
	/* Both regions whole. */
	assert_int_equal(gmem_iov(&m, 0x10000, 2 * PAGE, iov, 4), 2);
	gmem_clear(&m);
}

static void gmem_iov_fails_when_more_iovecs_are_needed_than_given(void **state)
{
	struct gmem m;
	struct iovec iov[2];

	(void)state;
	gmem_init(&m);
	add(&m, 0x10000, PAGE, 0x100000);
	add(&m, 0x10000 + PAGE, PAGE, 0x200000);
	add(&m, 0x10000 + 2 * PAGE, PAGE, 0x300000);
	assert_int_equal(gmem_iov(&m, 0x10000 + PAGE - 1, PAGE + 2, iov, 2),
	                 -ENOBUFS);
	assert_int_equal(gmem_iov(&m, 0x10000 + PAGE - 1, PAGE + 1, iov, 2), 2);
	assert_int_equal(gmem_iov(&m, 0x10000, 1, iov, 0), -ENOBUFS);
	gmem_clear(&m);
}

static void gmem_iov_fails_on_any_byte_outside_guest_memory(void **state)
{
	struct gmem m;
	struct iovec iov[4];

	(void)state;
	gmem_init(&m);
	add(&m, 0x10000, PAGE, 0x100000);
	add(&m, 0x10000 + 2 * PAGE, PAGE, 0x200000); /* a one-page hole */
	assert_int_equal(gmem_iov(&m, 0x10000 + PAGE - 1, 2, iov, 4), -EFAULT);
	assert_int_equal(gmem_iov(&m, 0x10000, 3 * PAGE, iov, 4), -EFAULT);
	assert_int_equal(gmem_iov(&m, 0x10000 + 3 * PAGE, 1, iov, 4), -EFAULT);
	assert_int_equal(gmem_iov(&m, 0, 1, iov, 4), -EFAULT);
	/* Zero bytes need no memory at all. */
	assert_int_equal(gmem_iov(&m, 0, 0, iov, 4), 0);
	gmem_clear(&m);
}

static void gmem_iov_fails_on_a_range_that_wraps_into_low_memory(void **state)
{
	struct gmem m;
	struct iovec iov[4];

	(void)state;
	gmem_init(&m);
	add(&m, UINT64_MAX - PAGE + 1, PAGE, 0x100000);
	add(&m, 0, PAGE, 0x200000);
	/* Both pieces exist, but the range is not contiguous. */
	assert_int_equal(gmem_iov(&m, UINT64_MAX - 15, 32, iov, 4), -EFAULT);
	assert_int_equal(gmem_iov(&m, UINT64_MAX - 15, 16, iov, 4), 1);
	gmem_clear(&m);
}

static void gmem_clear_forgets_every_region(void **state)
{
	struct gmem m;

	(void)state;
	gmem_init(&m);
	add(&m, 0x10000, PAGE, 0x100000);
	add(&m, 0x20000, PAGE, 0x200000);
	gmem_clear(&m);
	assert_int_equal(m.n, 0);
	assert_null(gmem_gpa(&m, 0x10000, 1));
	/* The same ranges can be added again. */
	add(&m, 0x10000, PAGE, 0x100000);
	gmem_clear(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(gmem_gpa_translates_first_and_last_byte_of_a_region),
		cmocka_unit_test(gmem_gpa_rejects_ranges_reaching_past_a_region),
		cmocka_unit_test(gmem_gpa_accepts_zero_length_only_inside_a_region),
		cmocka_unit_test(gmem_gpa_rejects_ranges_that_wrap_2_64),
		cmocka_unit_test(gmem_uva_translates_front_end_addresses),
		cmocka_unit_test(gmem_add_rejects_overlapping_guest_physical_ranges),
		cmocka_unit_test(gmem_add_rejects_overlapping_front_end_ranges),
		cmocka_unit_test(gmem_add_rejects_empty_and_wrapping_regions),
		cmocka_unit_test(gmem_add_rejects_more_than_max_regions),
		cmocka_unit_test(gmem_add_reports_mmap_failure),
		cmocka_unit_test(gmem_add_maps_a_region_at_an_unaligned_file_offset),
		cmocka_unit_test(gmem_iov_splits_a_range_where_adjacent_regions_meet),
		cmocka_unit_test(gmem_iov_fails_when_more_iovecs_are_needed_than_given),
		cmocka_unit_test(gmem_iov_fails_on_any_byte_outside_guest_memory),
		cmocka_unit_test(gmem_iov_fails_on_a_range_that_wraps_into_low_memory),
		cmocka_unit_test(gmem_clear_forgets_every_region),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
