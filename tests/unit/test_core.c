/*
 * Unit tests: status table, contexts, allocator hooks, capped buffer.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "kith/status.h"
#include "kith/ctx.h"
#include "kith/version.h"
#include "core/ctx.h"
#include "core/buf.h"

static void test_strerror_table(void **state)
{
  (void)state;
  assert_string_equal(kith_strerror(KITH_OK), "success");
  assert_string_equal(kith_strerror(KITH_EJID), "invalid JID");
  assert_string_equal(kith_status_name(KITH_ECANCELED), "ECANCELED");
  assert_string_equal(kith_strerror((kith_status_t)9999), "unknown status");
  assert_string_equal(kith_status_name((kith_status_t)-1), "UNKNOWN");
  /* Numbers are part of the ABI: they never change. */
  assert_int_equal(KITH_ENOMEM, 1);
  assert_int_equal(KITH_ECANCELED, 14);
}

struct counting {
  int allocs, frees, fail_at;
};

static void *c_malloc(size_t n, void *ud)
{
  struct counting *c = ud;
  if (c->fail_at && ++c->allocs == c->fail_at)
    return NULL;
  if (!c->fail_at)
    c->allocs++;
  return malloc(n);
}

static void *c_realloc(void *p, size_t n, void *ud)
{
  if (p == NULL)
    return c_malloc(n, ud);
  return realloc(p, n);
}

static void c_free(void *p, void *ud)
{
  struct counting *c = ud;
  c->frees++;
  free(p);
}

static void test_ctx_allocator_hooks(void **state)
{
  struct counting c = {0, 0, 0};
  kith_allocator_t a = {c_malloc, c_realloc, c_free, &c};
  kith_ctx_t *ctx = NULL;
  char *s;

  (void)state;
  assert_int_equal(kith_ctx_new(&a, &ctx), KITH_OK);
  s = kith__strdup(ctx, "hello");
  assert_string_equal(s, "hello");
  kith_free(ctx, s);
  kith_ctx_free(ctx);
  assert_int_equal(c.allocs, 2);
  assert_int_equal(c.frees, 2);

  kith_allocator_t bad = {c_malloc, NULL, c_free, &c};
  assert_int_equal(kith_ctx_new(&bad, &ctx), KITH_EINVAL);
  assert_null(ctx);
  kith_ctx_free(NULL);
  kith_free(NULL, NULL);
}

struct logrec {
  int n;
  char last[128];
};

static void rec_log(void *ud, kith_log_level_t level, const char *area,
                    const char *msg)
{
  struct logrec *r = ud;
  r->n++;
  snprintf(r->last, sizeof(r->last), "%s/%s/%s", kith_log_level_name(level),
           area, msg);
}

static void test_log_levels(void **state)
{
  kith_ctx_t *ctx;
  struct logrec r = {0, ""};

  (void)state;
  assert_int_equal(kith_ctx_new(NULL, &ctx), KITH_OK);
  kith__info(ctx, "core", "dropped %d", 1);
  kith_ctx_set_log(ctx, KITH_LOG_INFO, rec_log, &r);
  kith__info(ctx, "core", "kept %d", 2);
  kith__debug(ctx, "core", "too verbose");
  assert_int_equal(r.n, 1);
  assert_string_equal(r.last, "info/core/kept 2");
  kith_ctx_free(ctx);
}

static void test_buf_cap(void **state)
{
  kith__buf_t b;
  size_t len;
  char *p;

  (void)state;
  kith__buf_init(&b, NULL, 10);
  assert_int_equal(kith__buf_adds(&b, "12345"), KITH_OK);
  assert_int_equal(kith__buf_printf(&b, "%d", 678), KITH_OK);
  assert_string_equal(b.data, "12345678");
  assert_int_equal(kith__buf_adds(&b, "abc"), KITH_ELIMIT);
  assert_int_equal(kith__buf_adds(&b, "ab"), KITH_OK);
  assert_int_equal(b.len, 10);
  kith__buf_consume(&b, 4);
  assert_string_equal(b.data, "5678ab");
  p = kith__buf_take(&b, &len);
  assert_int_equal(len, 6);
  assert_string_equal(p, "5678ab");
  kith__free(NULL, p);
  p = kith__buf_take(&b, &len);
  assert_string_equal(p, "");
  kith__free(NULL, p);
  kith__buf_free(&b);
}

static void test_version(void **state)
{
  (void)state;
  assert_string_equal(kith_version(), KITH_VERSION_STRING);
  assert_true(KITH_VERSION_HEX > 0);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_strerror_table),
      cmocka_unit_test(test_ctx_allocator_hooks),
      cmocka_unit_test(test_log_levels),
      cmocka_unit_test(test_buf_cap),
      cmocka_unit_test(test_version),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
