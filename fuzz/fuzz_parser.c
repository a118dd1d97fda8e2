/*
 * libFuzzer target: the stream parser, the serializer, kith_stanza_parse().
 *
 * Input: one flags byte, up to seven chunk-size bytes, then XML that follows
 * a fixed stream header. The stream is parsed twice, once in one piece and
 * once in chunks of the chosen sizes (optionally stopping the parser after
 * every stanza and resuming); both runs must deliver the same events and end
 * in the same state. Every stanza delivered is serialized, parsed again with
 * kith_stanza_parse() and serialized again, which must give the same text.
 * Flags bit 4 turns item streaming on (jabber:iq:roster) in both runs:
 * streamed items and the shells' streamed counts are logged and compared
 * too.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kith/stanza.h"
#include "core/buf.h"
#include "xml/parser.h"

static const char header[] = "<stream:stream xmlns='jabber:client' "
                             "xmlns:stream='http://etherx.jabber.org/streams'>";

struct run {
  kith__parser_t *p;
  kith__buf_t log;
  int stop_each; /* kith__parser_stop() after every stanza */
  int stream;    /* item streaming on */
  int stopped;
};

static void check(int ok, const char *what, const char *xml)
{
  if (!ok) {
    fprintf(stderr, "fuzz_parser: %s\n%s\n", what, xml ? xml : "");
    abort();
  }
}

/* serialize -> parse -> serialize must be a fixed point. */
static void round_trip(const kith_stanza_t *st, kith__buf_t *log)
{
  kith_stanza_t *back = NULL;
  char *s1 = NULL, *s2 = NULL;
  size_t n1, n2;
  kith_status_t rc;

  check(kith_stanza_to_string(st, NULL, &s1, &n1) == KITH_OK, "serialize",
        NULL);
  rc = kith_stanza_parse(NULL, s1, n1, &back);
  /* Escaping and namespace declarations can make the text longer than the
   * input was, so only the size limit may refuse it. */
  if (rc == KITH_ELIMIT && n1 > KITH_PARSER_DEFAULT_MAX_STANZA) {
    kith_free(NULL, s1);
    return;
  }
  check(rc == KITH_OK, "re-parse of a serialized stanza failed", s1);
  check(kith_stanza_to_string(back, NULL, &s2, &n2) == KITH_OK, "serialize",
        NULL);
  check(n1 == n2 && memcmp(s1, s2, n1) == 0, "round trip changed the stanza",
        s1);
  kith__buf_printf(log, "T %s\n", s1);
  kith_free(NULL, s2);
  kith_free(NULL, s1);
  kith_stanza_free(back);
}

static void on_start(void *ud, const kith_stanza_t *root)
{
  round_trip(root, &((struct run *)ud)->log);
}

static void on_stanza(void *ud, kith_stanza_t *st)
{
  struct run *r = ud;

  size_t n;

  round_trip(st, &r->log);
  if (kith__parser_streamed(r->p, &n))
    kith__buf_printf(&r->log, "N %zu\n", n);
  kith_stanza_free(st);
  if (r->stop_each) {
    kith__parser_stop(r->p);
    r->stopped = 1;
  }
}

static void on_item(void *ud, const kith_stanza_t *shell,
                    const kith_stanza_t *item)
{
  struct run *r = ud;

  check(kith_stanza_parent(kith_stanza_parent(item)) == shell,
        "streamed item not under the shell", NULL);
  kith__buf_adds(&r->log, "I ");
  round_trip(item, &r->log);
  if (r->stop_each) {
    kith__parser_stop(r->p);
    r->stopped = 1;
  }
}

static void on_end(void *ud)
{
  kith__buf_adds(&((struct run *)ud)->log, "E\n");
}

static const kith__parser_cbs_t cbs = {on_start, on_stanza, on_end};

static kith_status_t feed(struct run *r, const char *s, size_t n)
{
  kith_status_t rc = kith__parser_feed(r->p, s, n);

  /* After a stop, empty feeds resume until nothing stops any more. */
  while (rc == KITH_OK && r->stopped) {
    r->stopped = 0;
    rc = kith__parser_feed(r->p, NULL, 0);
  }
  return rc;
}

static kith_status_t run_once(struct run *r, const char *doc, size_t len,
                              const size_t *sizes, size_t nsizes)
{
  kith_status_t rc = KITH_OK;
  size_t off = 0, i = 0;

  kith__buf_init(&r->log, NULL, (size_t)1 << 26);
  if (kith__parser_new(NULL, &cbs, r, &r->p) != KITH_OK)
    abort();
  if (r->stream && kith__parser_set_item_stream(r->p, "jabber:iq:roster",
                                                on_item, r) != KITH_OK)
    abort();
  while (rc == KITH_OK && off < len) {
    size_t n = nsizes ? sizes[i++ % nsizes] : len;

    if (n > len - off)
      n = len - off;
    rc = feed(r, doc + off, n);
    off += n;
  }
  return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct run whole = {0}, pieces = {0};
  size_t sizes[7], nsizes, i, len;
  kith_status_t rc1, rc2;
  const char *c1, *c2;
  char *doc;

  if (size < 1)
    return 0;
  nsizes = data[0] & 7;
  if (size < 1 + nsizes)
    return 0;
  for (i = 0; i < nsizes; i++)
    sizes[i] = (size_t)data[1 + i] + 1;
  pieces.stop_each = (data[0] & 8) != 0;
  whole.stream = pieces.stream = (data[0] & 16) != 0;
  data += 1 + nsizes;
  size -= 1 + nsizes;

  len = sizeof(header) - 1 + size;
  doc = malloc(len);
  if (doc == NULL)
    return 0;
  memcpy(doc, header, sizeof(header) - 1);
  if (size)
    memcpy(doc + sizeof(header) - 1, data, size);

  rc1 = run_once(&whole, doc, len, NULL, 0);
  rc2 = run_once(&pieces, doc, len, sizes, nsizes);
  check(rc1 == rc2, "status differs between one piece and chunks", NULL);
  check(whole.log.len == pieces.log.len &&
            (whole.log.len == 0 ||
             memcmp(whole.log.data, pieces.log.data, whole.log.len) == 0),
        "events differ between one piece and chunks", whole.log.data);
  c1 = kith__parser_error_condition(whole.p);
  c2 = kith__parser_error_condition(pieces.p);
  check((c1 == NULL) == (c2 == NULL) && (c1 == NULL || !strcmp(c1, c2)),
        "error condition differs between one piece and chunks", c1);

  kith__parser_free(whole.p);
  kith__parser_free(pieces.p);
  kith__buf_free(&whole.log);
  kith__buf_free(&pieces.log);
  free(doc);
  return 0;
}
