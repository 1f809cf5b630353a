/*
 * t.h: the unit-test harness: checks with file:line, one runner line "N passed, N failed".
 * Owns the pass/fail counters; each t_<module>.c registers its tests in main.c.
 */
#ifndef MOLECULE_T_H
#define MOLECULE_T_H

#include <stdio.h>
#include <string.h>

extern int t_passed, t_failed, t_cur_failed;
extern const char *t_name;

#define T_CHECK(c) do { if (!(c)) { t_cur_failed = 1; fprintf(stderr, \
    "%s:%d: %s: check failed: %s\n", __FILE__, __LINE__, t_name, #c); } } while (0)
#define T_STREQ(a, b) do { const char *t_a = (a), *t_b = (b); \
    if (t_a == NULL || t_b == NULL || strcmp(t_a, t_b) != 0) { t_cur_failed = 1; \
    fprintf(stderr, "%s:%d: %s: \"%s\" != \"%s\"\n", __FILE__, __LINE__, t_name, \
    t_a ? t_a : "(null)", t_b ? t_b : "(null)"); } } while (0)
#define T_RUN(fn) do { t_name = #fn; t_cur_failed = 0; fn(); \
    if (t_cur_failed) { t_failed++; fprintf(stderr, "FAIL %s\n", #fn); } else t_passed++; } while (0)

/* Every test, declared once from the list in tests.def. */
#define T(fn) void fn(void);
#include "tests/unit/tests.def"
#undef T

#endif
