/*
 * kith roster export|import: the roster as a file, in the JSON of
 * `kith roster list --json` (one array of {jid, name, subscription, ask,
 * approved, groups}).
 *
 * Export reads the store offline (or, with --online, fetches from the
 * server). Import checks the whole file before it writes anything, then
 * either writes the items into the store in batches (the default), or
 * sends them to the server as roster sets with a bounded number in
 * flight (--online). Both report their progress on stderr for files of
 * more than one batch.
 */
#include "cli.h"
#include "roster_cmd.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Items per kith_store_apply(), and the progress step on stderr. */
#define IMPORT_BATCH 1000u
/* Roster sets in flight at once with --online. */
#define IMPORT_WINDOW 64u

/* One item of the file, checked. */
typedef struct import_item {
  char *jid;           /* normalized bare JID (kith_free) */
  const char *name;    /* borrowed from the JSON document; NULL: none */
  const char **groups; /* borrowed, without repeats (free) */
  size_t ngroups;
  unsigned flags;          /* KITH_ROSTER_FROM/TO/PENDING_OUT/APPROVED */
  size_t index;            /* in the file */
  roster_import_t *import; /* for the --online reply callback */
  int replied;
  kith_status_t status;
  char condition[64];
} import_item_t;

struct roster_import {
  roster_cmd_t *rc;
  const char *path; /* the file for messages ("stdin" for "-") */
  json_t *doc;      /* the parsed file; names and groups point into it */
  import_item_t *items;
  size_t n;
  /* --online */
  size_t sent, replied, in_flight, unchanged, refused;
  import_item_t *first_refused;
  cli_ping_t ping; /* the barrier for the pushes */
};

/* ---- Export ------------------------------------------------------------- */

static int is_stdio(const char *file)
{
  return file == NULL || strcmp(file, "-") == 0;
}

/* Write `arr` as one line, exactly as `roster list --json` prints it. */
static int write_json(const cli_t *cli, json_t *arr, const char *file)
{
  FILE *f = is_stdio(file) ? stdout : fopen(file, "w");
  int failed;

  if (f == NULL)
    return cli_fail(cli, KITH_EIO, "cannot write %s: %s", file,
                    strerror(errno));
  failed = json_dumpf(arr, f, JSON_COMPACT) != 0 || fputc('\n', f) == EOF;
  failed |= fflush(f) != 0 || ferror(f);
  if (f != stdout && fclose(f) != 0)
    failed = 1;
  if (failed)
    return cli_fail(cli, KITH_EIO, "cannot write %s: %s",
                    is_stdio(file) ? "stdout" : file,
                    errno ? strerror(errno) : "write error");
  return CLI_EXIT_OK;
}

int roster_export(roster_cmd_t *rc)
{
  const cli_t *cli = rc->cli;
  const kith_roster_node_t *node = NULL;
  json_t *arr;
  size_t n;
  int code;

  if (rc->online) {
    code = cli_roster_login(cli, &rc->s, 0);
    node = kith_roster_self(rc->s.roster);
  } else {
    code = roster_load_offline(rc, &node);
  }
  if (code != CLI_EXIT_OK)
    return code;
  if ((arr = cli_node_json(node)) == NULL)
    return cli_fail(cli, KITH_ENOMEM, "%s", kith_strerror(KITH_ENOMEM));
  n = json_array_size(arr);
  code = write_json(cli, arr, rc->file);
  json_decref(arr);
  /* On stdout the roster is the whole output. */
  if (code == CLI_EXIT_OK && !is_stdio(rc->file))
    cli_print(cli,
              json_pack("{s:s, s:s, s:I, s:s}", "event", "exported", "jid",
                        kith_roster_node_owner(node), "items", (json_int_t)n,
                        "file", rc->file),
              "exported %zu item%s of %s to %s", n, n == 1 ? "" : "s",
              kith_roster_node_owner(node), rc->file);
  return code;
}

/* ---- Reading and checking the file -------------------------------------- */

typedef struct check {
  const roster_import_t *im;
  size_t index;
  char why[512];
} check_t;

__attribute__((format(printf, 2, 3))) static int bad(check_t *c,
                                                     const char *fmt, ...)
{
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(c->why, sizeof(c->why), fmt, ap);
  va_end(ap);
  return -1;
}

static int check_jid(check_t *c, json_t *v, import_item_t *it)
{
  const char *reason = NULL;
  kith_jid_t *j = NULL;
  int full;

  if (!json_is_string(v))
    return bad(c, "\"jid\" must be a string");
  if (kith_jid_parse(NULL, json_string_value(v), &j, &reason) != KITH_OK)
    return bad(c, "invalid JID '%s': %s", json_string_value(v),
               reason ? reason : "malformed");
  full = kith_jid_resource(j) != NULL;
  kith_jid_free(j);
  if (full)
    return bad(c, "'%s' has a resource; roster items are bare JIDs",
               json_string_value(v));
  if (kith_jid_normalize(NULL, json_string_value(v), 1, &it->jid, NULL) !=
      KITH_OK)
    return bad(c, "%s", kith_strerror(KITH_ENOMEM));
  return 0;
}

static int check_groups(check_t *c, json_t *v, import_item_t *it)
{
  size_t i, j, k = 0, n;
  const char **names;

  if (json_is_null(v))
    return 0;
  if (!json_is_array(v))
    return bad(c, "\"groups\" must be an array of strings");
  if ((n = json_array_size(v)) == 0)
    return 0;
  if ((names = calloc(n, sizeof(*names))) == NULL)
    return bad(c, "%s", kith_strerror(KITH_ENOMEM));
  /* The item owns the array from here, also when a check fails. */
  it->groups = names;
  for (i = 0; i < n; i++) {
    const char *g = json_string_value(json_array_get(v, i));
    if (g == NULL)
      return bad(c, "\"groups\" must be an array of strings");
    if (*g == '\0')
      return bad(c, "a group name must not be empty");
    for (j = 0; j < k && strcmp(names[j], g) != 0; j++)
      ;
    if (j == k)
      names[k++] = g;
    it->ngroups = k;
  }
  return 0;
}

static int check_subscription(check_t *c, json_t *v, import_item_t *it)
{
  static const struct {
    const char *name;
    unsigned flags;
  } subs[] = {
      {"none", 0},
      {"to", KITH_ROSTER_TO},
      {"from", KITH_ROSTER_FROM},
      {"both", KITH_ROSTER_FROM | KITH_ROSTER_TO},
  };
  size_t i;

  if (json_is_null(v))
    return 0;
  for (i = 0; json_is_string(v) && i < sizeof(subs) / sizeof(subs[0]); i++)
    if (strcmp(json_string_value(v), subs[i].name) == 0) {
      it->flags |= subs[i].flags;
      return 0;
    }
  return bad(c, "\"subscription\" must be none, to, from or both");
}

/* One key of an item. */
static int check_key(check_t *c, const char *key, json_t *v, import_item_t *it)
{
  if (strcmp(key, "jid") == 0)
    return check_jid(c, v, it);
  if (strcmp(key, "name") == 0) {
    if (!json_is_null(v) && !json_is_string(v))
      return bad(c, "\"name\" must be a string or null");
    /* An empty name is no name (RFC 6121 2.1.2.4). */
    if (json_is_string(v) && *json_string_value(v))
      it->name = json_string_value(v);
    return 0;
  }
  if (strcmp(key, "groups") == 0)
    return check_groups(c, v, it);
  if (strcmp(key, "subscription") == 0)
    return check_subscription(c, v, it);
  if (strcmp(key, "ask") == 0) {
    if (json_is_string(v) && strcmp(json_string_value(v), "subscribe") == 0)
      it->flags |= KITH_ROSTER_PENDING_OUT;
    else if (!json_is_null(v))
      return bad(c, "\"ask\" must be \"subscribe\" or null");
    return 0;
  }
  if (strcmp(key, "approved") == 0) {
    if (!json_is_boolean(v))
      return bad(c, "\"approved\" must be true or false");
    if (json_is_true(v))
      it->flags |= KITH_ROSTER_APPROVED;
    return 0;
  }
  /* A typo ("group") would otherwise lose data without a word. */
  return bad(c,
             "unknown key \"%s\" (expected jid, name, subscription, ask, "
             "approved, groups)",
             key);
}

static int check_item(check_t *c, json_t *e, import_item_t *it)
{
  const char *key;
  json_t *v;

  if (!json_is_object(e))
    return bad(c, "expected an object {\"jid\": ..., ...}");
  if (json_object_get(e, "jid") == NULL)
    return bad(c, "no \"jid\"");
  /* The JID first, so that later messages can name it. */
  if (check_jid(c, json_object_get(e, "jid"), it) != 0)
    return -1;
  json_object_foreach(e, key, v)
  {
    if (strcmp(key, "jid") != 0 && check_key(c, key, v, it) != 0)
      return -1;
  }
  /* The states RFC 6121 Appendix A has: a request is pending only while
   * not granted, and a pre-approval only while not in use. */
  if ((it->flags & KITH_ROSTER_PENDING_OUT) && (it->flags & KITH_ROSTER_TO))
    return bad(c, "\"ask\": \"subscribe\" goes with subscription none or "
                  "from only");
  if ((it->flags & KITH_ROSTER_APPROVED) && (it->flags & KITH_ROSTER_FROM))
    return bad(c, "\"approved\": true goes with subscription none or to "
                  "only");
  return 0;
}

static int cmp_item_jid(const void *a, const void *b)
{
  const import_item_t *x = *(const import_item_t *const *)a;
  const import_item_t *y = *(const import_item_t *const *)b;
  int d = strcmp(x->jid, y->jid);

  if (d != 0)
    return d;
  return x->index < y->index ? -1 : x->index > y->index;
}

/* A JID given twice is ambiguous: which item wins? Sorting finds it in
 * n log n. Returns the later item of the first repeat, or NULL. */
static const import_item_t *find_repeat(const roster_import_t *im,
                                        const import_item_t **first)
{
  const import_item_t **v;
  const import_item_t *found = NULL;
  size_t i;

  if (im->n < 2 || (v = calloc(im->n, sizeof(*v))) == NULL)
    return NULL;
  for (i = 0; i < im->n; i++)
    v[i] = &im->items[i];
  qsort(v, im->n, sizeof(*v), cmp_item_jid);
  for (i = 1; i < im->n; i++)
    if (strcmp(v[i - 1]->jid, v[i]->jid) == 0 &&
        (found == NULL || v[i]->index < found->index)) {
      found = v[i];
      *first = v[i - 1];
    }
  free(v);
  return found;
}

static int load_file(const cli_t *cli, roster_import_t *im)
{
  json_error_t err;
  const char *file = im->rc->file;
  FILE *f = is_stdio(file) ? stdin : fopen(file, "r");

  im->path = is_stdio(file) ? "stdin" : file;
  if (f == NULL)
    return cli_fail(cli, KITH_EIO, "cannot read %s: %s", im->path,
                    strerror(errno));
  im->doc = json_loadf(f, JSON_REJECT_DUPLICATES, &err);
  if (f != stdin)
    fclose(f);
  if (im->doc == NULL)
    return cli_fail(cli, KITH_EINVAL, "%s:%d:%d: not JSON: %s", im->path,
                    err.line, err.column, err.text);
  if (!json_is_array(im->doc))
    return cli_fail(cli, KITH_EINVAL,
                    "%s: expected a JSON array of roster items, as 'kith "
                    "roster list --json' prints",
                    im->path);
  return CLI_EXIT_OK;
}

/* Read and check the whole file; nothing is written before this passed. */
static int read_items(const cli_t *cli, roster_import_t *im)
{
  const import_item_t *rep, *first = NULL;
  check_t c;
  size_t i;
  int code = load_file(cli, im);

  if (code != CLI_EXIT_OK)
    return code;
  im->n = json_array_size(im->doc);
  if (im->n && (im->items = calloc(im->n, sizeof(*im->items))) == NULL)
    return cli_fail(cli, KITH_ENOMEM, "%s", kith_strerror(KITH_ENOMEM));
  memset(&c, 0, sizeof(c));
  c.im = im;
  for (i = 0; i < im->n; i++) {
    import_item_t *it = &im->items[i];
    it->index = i;
    it->import = im;
    if (check_item(&c, json_array_get(im->doc, i), it) != 0)
      return cli_fail(cli, KITH_EINVAL,
                      "%s: item [%zu]%s%s: %s; nothing "
                      "imported",
                      im->path, i, it->jid ? " " : "", it->jid ? it->jid : "",
                      c.why);
  }
  if ((rep = find_repeat(im, &first)) != NULL)
    return cli_fail(cli, KITH_EINVAL,
                    "%s: item [%zu] %s: the JID of item [%zu] again; "
                    "nothing imported",
                    im->path, rep->index, rep->jid, first->index);
  return CLI_EXIT_OK;
}

static void progress(const roster_import_t *im, size_t done)
{
  if (im->n > IMPORT_BATCH) {
    fflush(stdout);
    fprintf(stderr, "kith: roster import: imported %zu/%zu\n", done, im->n);
  }
}

/* ---- Import into the store ---------------------------------------------- */

static void put_op(kith_store_op_t *op, const import_item_t *it)
{
  memset(op, 0, sizeof(*op));
  op->type = KITH_STORE_PUT;
  op->item.jid = it->jid;
  op->item.name = it->name;
  op->item.groups = it->groups;
  op->item.ngroups = it->ngroups;
  op->item.flags = it->flags;
}

/*
 * The first batch also clears the stored version: the cache no longer
 * matches any version of the server's roster, so a client's next login
 * fetches it whole. With --replace it starts by emptying the roster.
 */
static int import_store(roster_import_t *im)
{
  const cli_t *cli = im->rc->cli;
  cli_offline_t *o = &im->rc->off;
  kith_store_op_t *ops;
  size_t done = 0, batches = 0, k, start, end;
  kith_status_t st;
  int code = cli_offline_open(cli, o, 0);

  if (code != CLI_EXIT_OK)
    return code;
  if ((ops = calloc(IMPORT_BATCH + 2, sizeof(*ops))) == NULL)
    return cli_fail(cli, KITH_ENOMEM, "%s", kith_strerror(KITH_ENOMEM));
  do {
    k = 0;
    if (batches == 0 && im->rc->replace)
      ops[k++].type = KITH_STORE_CLEAR;
    if (batches == 0) {
      ops[k].type = KITH_STORE_VERSION;
      ops[k++].version = NULL;
    }
    start = done;
    end = done + IMPORT_BATCH < im->n ? done + IMPORT_BATCH : im->n;
    for (; done < end; done++)
      put_op(&ops[k++], &im->items[done]);
    st = kith_store_apply(o->store, o->owner, ops, k);
    if (st != KITH_OK) {
      code = cli_fail(cli, st,
                      "cannot write to the store %s: %s (%zu of %zu "
                      "items imported)",
                      kith_store_uri(o->store), kith_store_errmsg(o->store),
                      start, im->n);
      break;
    }
    batches++;
    progress(im, done);
  } while (done < im->n && !cli_interrupted);
  free(ops);
  if (code == CLI_EXIT_OK && done < im->n)
    code = cli_fail(cli, KITH_ECANCELED,
                    "interrupted: %zu of %zu items "
                    "imported",
                    done, im->n);
  if (code == CLI_EXIT_OK)
    cli_print(cli,
              json_pack("{s:s, s:s, s:I, s:s, s:I, s:b}", "event", "imported",
                        "jid", o->owner, "items", (json_int_t)im->n, "store",
                        kith_store_uri(o->store), "batches",
                        (json_int_t)batches, "replace", im->rc->replace),
              "imported %zu item%s into the roster of %s in %s", im->n,
              im->n == 1 ? "" : "s", o->owner, kith_store_uri(o->store));
  return code;
}

/* ---- Import to the server (--online) ------------------------------------ */

static void on_import_reply(kith_roster_t *roster, kith_status_t status,
                            const kith_stanza_t *reply, void *ud)
{
  import_item_t *it = ud;
  roster_import_t *im = it->import;
  const char *cond = reply ? kith_stanza_error_condition(reply) : NULL;

  (void)roster;
  it->replied = 1;
  it->status = status;
  snprintf(it->condition, sizeof(it->condition), "%s",
           cond ? cond : "undefined-condition");
  im->in_flight--;
  im->replied++;
  if (status != KITH_OK) {
    im->refused++;
    if (im->first_refused == NULL || it->index < im->first_refused->index)
      im->first_refused = it;
  }
}

static int window_open(void *ud)
{
  const roster_import_t *im = ud;

  return im->in_flight < IMPORT_WINDOW || im->refused > 0;
}

static int all_replied(void *ud)
{
  return ((const roster_import_t *)ud)->in_flight == 0;
}

static int pong(void *ud)
{
  return ((const roster_import_t *)ud)->ping.done;
}

/* The item of the server's roster (as cached) for `it`, or NULL. */
static const kith_roster_item_t *current(const roster_import_t *im,
                                         const import_item_t *it)
{
  const kith_roster_node_t *node = kith_roster_self(im->rc->s.roster);

  return node ? kith_roster_node_item(node, it->jid) : NULL;
}

/* Print progress for every IMPORT_BATCH items handled since `*reported`. */
static void step_progress(const roster_import_t *im, size_t *reported)
{
  size_t handled = im->replied - im->refused + im->unchanged;

  while (handled >= *reported + IMPORT_BATCH) {
    *reported += IMPORT_BATCH;
    progress(im, *reported);
  }
}

/* Send a roster set for every item that differs from the server's, at
 * most IMPORT_WINDOW at a time, until one is refused. */
static kith_status_t send_items(roster_import_t *im, size_t *failed_at)
{
  cli_session_t *s = &im->rc->s;
  cli_session_t *ss[1] = {s};
  size_t i, reported = 0;
  kith_status_t st = KITH_OK;

  for (i = 0; i < im->n && st == KITH_OK && im->refused == 0; i++) {
    import_item_t *it = &im->items[i];
    const kith_roster_item_t *cur = current(im, it);

    if (cur && roster_same_item(cur, it->name, it->groups, it->ngroups)) {
      im->unchanged++;
      continue;
    }
    st = kith_roster_update(s->roster, it->jid, it->name, it->groups,
                            it->ngroups, NULL, on_import_reply, it);
    if (st != KITH_OK) {
      *failed_at = i;
      return st;
    }
    im->sent++;
    im->in_flight++;
    if (im->in_flight >= IMPORT_WINDOW)
      st = cli_wait(im->rc->cli, ss, 1, window_open, im);
    step_progress(im, &reported);
  }
  if (st == KITH_OK)
    st = cli_wait(im->rc->cli, ss, 1, all_replied, im);
  step_progress(im, &reported);
  if (st == KITH_OK && im->refused == 0 && reported < im->n)
    progress(im, im->n);
  return st;
}

/* The server pushes each change before (Prosody) or after its reply: a
 * ping answered means every push is in, and written to the store. */
static kith_status_t wait_pushes(roster_import_t *im)
{
  cli_session_t *ss[1] = {&im->rc->s};
  char domain[1024];
  kith_status_t st;

  if (im->sent == 0)
    return KITH_OK;
  cli_session_domain(&im->rc->s, domain, sizeof(domain));
  st = cli_ping_send(&im->rc->s, domain, &im->ping);
  if (st == KITH_OK)
    st = cli_wait(im->rc->cli, ss, 1, pong, im);
  return st;
}

/* Subscription states cannot be set by a roster set (RFC 6121 2.1.2.5):
 * say so when the file has some the server's roster lacks. */
static void warn_subscriptions(const roster_import_t *im)
{
  const unsigned mask = KITH_ROSTER_FROM | KITH_ROSTER_TO |
                        KITH_ROSTER_PENDING_OUT | KITH_ROSTER_APPROVED;
  size_t i, differ = 0;

  for (i = 0; i < im->n; i++) {
    const kith_roster_item_t *cur = current(im, &im->items[i]);
    unsigned now = cur ? kith_roster_item_flags(cur) & mask : 0;
    differ += now != im->items[i].flags;
  }
  if (differ)
    cli_warn("roster import: %zu item%s of %s differ%s from the server's in "
             "subscription; --online sets names and groups only "
             "(subscriptions change through 'kith presence')",
             differ, differ == 1 ? "" : "s", im->path, differ == 1 ? "s" : "");
}

static int online_failure(roster_import_t *im, kith_status_t st,
                          size_t failed_at)
{
  const cli_t *cli = im->rc->cli;
  const import_item_t *bad_it = im->first_refused;
  size_t ok = im->replied - im->refused + im->unchanged;
  char buf[1200];

  if (st == KITH_OK && bad_it == NULL)
    return CLI_EXIT_OK;
  if (im->rc->s.ended)
    return cli_fail(cli, im->rc->s.status, "%s (%zu of %zu items imported)",
                    cli_session_error(&im->rc->s), ok, im->n);
  if (st != KITH_OK && failed_at < im->n)
    return cli_fail(cli, st, "cannot send item [%zu] %s: %s", failed_at,
                    im->items[failed_at].jid, kith_strerror(st));
  if (st != KITH_OK)
    return cli_fail(cli, st, "%s (%zu of %zu items imported)",
                    cli_wait_error(cli, st, buf, sizeof(buf)), ok, im->n);
  if (bad_it->status == KITH_ESTANZA)
    return cli_fail(cli, bad_it->status,
                    "the server refused item [%zu] %s: %s (%zu of %zu items "
                    "imported)",
                    bad_it->index, bad_it->jid, bad_it->condition, ok, im->n);
  return cli_fail(cli, bad_it->status,
                  "roster set for item [%zu] %s failed: %s (%zu of %zu items "
                  "imported)",
                  bad_it->index, bad_it->jid, kith_strerror(bad_it->status), ok,
                  im->n);
}

static int import_online(roster_import_t *im)
{
  const cli_t *cli = im->rc->cli;
  const char *owner;
  size_t failed_at = im->n;
  kith_status_t st;
  int code = cli_roster_login(cli, &im->rc->s, 0);

  if (code != CLI_EXIT_OK)
    return code;
  owner = kith_roster_node_owner(kith_roster_self(im->rc->s.roster));
  st = send_items(im, &failed_at);
  if (st == KITH_OK && im->refused == 0)
    st = wait_pushes(im);
  code = online_failure(im, st, failed_at);
  if (code != CLI_EXIT_OK)
    return code;
  warn_subscriptions(im);
  cli_print(cli,
            json_pack("{s:s, s:s, s:I, s:I, s:I}", "event", "imported", "jid",
                      owner, "items", (json_int_t)im->n, "changed",
                      (json_int_t)im->sent, "unchanged",
                      (json_int_t)im->unchanged),
            "imported %zu item%s to the server for %s (%zu changed, %zu "
            "unchanged)",
            im->n, im->n == 1 ? "" : "s", owner, im->sent, im->unchanged);
  return CLI_EXIT_OK;
}

/* ---- The subcommand ----------------------------------------------------- */

int roster_import(roster_cmd_t *rc)
{
  roster_import_t *im = calloc(1, sizeof(*im));
  int code;

  if (im == NULL)
    return cli_fail(rc->cli, KITH_ENOMEM, "%s", kith_strerror(KITH_ENOMEM));
  rc->import = im;
  im->rc = rc;
  code = read_items(rc->cli, im);
  if (code != CLI_EXIT_OK)
    return code;
  return rc->online ? import_online(im) : import_store(im);
}

void roster_import_free(roster_cmd_t *rc)
{
  roster_import_t *im = rc->import;
  size_t i;

  if (im == NULL)
    return;
  for (i = 0; i < im->n && im->items; i++) {
    kith_free(NULL, im->items[i].jid);
    free(im->items[i].groups);
  }
  free(im->items);
  json_decref(im->doc);
  free(im);
  rc->import = NULL;
}
