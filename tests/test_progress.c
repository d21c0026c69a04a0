/* progress: the headless progress line and durations. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "genlab/progress.h"

static void test_durations(void **state)
{
    (void)state;
    char b[32];
    format_duration(b, sizeof b, 0);
    assert_string_equal(b, "0:00");
    format_duration(b, sizeof b, 72.4);
    assert_string_equal(b, "1:12");
    format_duration(b, sizeof b, 3723);
    assert_string_equal(b, "1:02:03");
    format_duration(b, sizeof b, -1);
    assert_string_equal(b, "--:--");
}

static int count(const char *s, const char *needle)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

static void test_line_contents(void **state)
{
    (void)state;
    ProgressInfo p = {3, 20, 375, 750, 152.314, 9812, 72};
    char line[512];
    int w = progress_format(line, sizeof line, &p, 100, 1);
    assert_true(w <= 100);
    assert_non_null(strstr(line, "epoch  3/20"));
    assert_non_null(strstr(line, " 50%"));
    assert_non_null(strstr(line, "batch 375/750"));
    assert_non_null(strstr(line, "loss 152.31"));
    assert_non_null(strstr(line, "9812 img/s"));
    assert_non_null(strstr(line, "ETA 1:12"));
    /* half full: as many full blocks as empty cells inside the brackets */
    const char *open = strchr(line, '['), *close = strchr(line, ']');
    assert_non_null(open);
    assert_non_null(close);
    int cells = w - (int)strlen("epoch  3/20 ") - 2 -
                (int)strlen("  50%  batch 375/750  loss 152.31  9812 img/s  ETA 1:12") - 1;
    assert_int_equal(count(line, "█"), (cells + 1) / 2);
}

static void test_ascii_and_narrow(void **state)
{
    (void)state;
    ProgressInfo p = {1, 1, 1, 1, 1, 1, 0};
    char line[512];
    progress_format(line, sizeof line, &p, 100, 0);
    assert_null(strstr(line, "█"));
    assert_non_null(strstr(line, "#"));
    /* too narrow for a bar: the numbers remain, the bar goes */
    progress_format(line, sizeof line, &p, 30, 1);
    assert_null(strchr(line, '['));
    assert_non_null(strstr(line, "100%"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_line_contents),
        cmocka_unit_test(test_ascii_and_narrow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
