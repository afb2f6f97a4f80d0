/*
 * The CONNECT line grammar of hybrid sockets (vsock_uds.h): exactly
 * "CONNECT <decimal port>\n", the port 0..4294967295; everything else
 * refused with the reason the log line gives.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "chanfs/vsock_uds.h"

static int parse(const char *line, uint32_t *port, const char **why)
{
	*why = NULL;
	return vsock_uds_parse_connect(line, strlen(line), port, why);
}

static void test_good_lines_give_their_port(void **state)
{
	static const struct {
		const char *line;
		uint32_t port;
	} good[] = {
		{ "CONNECT 0\n", 0 },
		{ "CONNECT 1234\n", 1234 },
		{ "CONNECT 4294967295\n", 4294967295u },
		{ "CONNECT 0001234\n", 1234 },
		{ "CONNECT 000000000000000000004\n", 4 },
	};
	const char *why;
	uint32_t port;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof good / sizeof good[0]; i++) {
		port = 7;
		assert_int_equal(parse(good[i].line, &port, &why), 0);
		assert_int_equal(port, good[i].port);
	}
}

static void test_bad_lines_refused_with_the_reason(void **state)
{
	static const struct {
		const char *line, *why;
	} bad[] = {
		{ "CONNECT 4294967296\n", "port out of range" },
		{ "CONNECT 99999999999999999999\n", "port out of range" },
		{ "CONNECT 1234 5\n", "extra words after the port" },
		{ "CONNECT 1234 \n", "extra words after the port" },
		{ "CONNECT \n", "port is not a number" },
		{ "CONNECT x\n", "port is not a number" },
		{ "CONNECT -1\n", "port is not a number" },
		{ "CONNECT +1\n", "port is not a number" },
		{ "CONNECT 12a\n", "port is not a number" },
		{ "CONNECT 12\r\n", "port is not a number" },
		{ "CONNECT 12", "port is not a number" },
		{ "CONNECT\t12\n", "not a CONNECT line" },
		{ "CONNECT\n", "not a CONNECT line" },
		{ "connect 12\n", "not a CONNECT line" },
		{ " CONNECT 12\n", "not a CONNECT line" },
		{ "\n", "not a CONNECT line" },
		{ "", "not a CONNECT line" },
	};
	const char *why;
	uint32_t port = 7;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (parse(bad[i].line, &port, &why) != -EINVAL || !why ||
		    strcmp(why, bad[i].why))
			fail_msg("'%s': %s, want %s", bad[i].line,
			         why ? why : "accepted", bad[i].why);
		assert_int_equal(port, 7);
	}
}

/* A NUL inside the line is not a digit: no C-string shortcut. */
static void test_embedded_nul_refused(void **state)
{
	static const char line[] = "CONNECT 12\0003\n";
	const char *why = NULL;
	uint32_t port;

	(void)state;
	assert_int_equal(vsock_uds_parse_connect(line, sizeof line - 1, &port,
	                                         &why), -EINVAL);
	assert_string_equal(why, "port is not a number");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_lines_give_their_port),
		cmocka_unit_test(test_bad_lines_refused_with_the_reason),
		cmocka_unit_test(test_embedded_nul_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
