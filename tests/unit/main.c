/*
 * main.c: the unit-test runner: runs every test named in tests.def and prints the summary.
 * Owns the counters; exits non-zero when any test failed.
 */
#include "tests/unit/t.h"

#include <stdlib.h>

int t_passed, t_failed, t_cur_failed;
const char *t_name;

int
main(void)
{
#define T(fn) T_RUN(fn);
#include "tests/unit/tests.def"
#undef T
	printf("%d passed, %d failed\n", t_passed, t_failed);
	return t_failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
