/*
 * kith roster list|add|set|remove|export|import: read and edit the
 * account's roster (RFC 6121 section 2), and the text and JSON forms of
 * roster items that the other commands share. export and import live in
 * roster_io.c.
 *
 * Every subcommand that goes online logs in with a roster attached (kept
 * in the --store) but sends no presence, so the account does not show up
 * online. An edit waits for both the server's answer to the roster set
 * and the roster push that follows, so the change is in place when the
 * command returns.
 */
#include "cli.h"
#include "roster_cmd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Items as text and JSON --------------------------------------------- */

static int needs_quotes(const char *v)
{
  const unsigned char *p = (const unsigned char *)v;

  if (*p == '\0')
    return 1;
  for (; *p; p++)
    if (*p <= ' ' || *p == 0x7f || strchr("\"\\,=", *p))
      return 1;
  return 0;
}

void cli_put_value(FILE *f, const char *v)
{
  const unsigned char *p = (const unsigned char *)v;

  if (!needs_quotes(v)) {
    fputs(v, f);
    return;
  }
  fputc('"', f);
  for (; *p; p++) {
    if (*p == '"' || *p == '\\')
      fprintf(f, "\\%c", *p);
    else if (*p == '\n')
      fputs("\\n", f);
    else if (*p == '\t')
      fputs("\\t", f);
    else if (*p == '\r')
      fputs("\\r", f);
    else if (*p < ' ' || *p == 0x7f)
      fprintf(f, "\\x%02x", *p);
    else
      fputc(*p, f);
  }
  fputc('"', f);
}

static int cmp_str_ptr(const void *a, const void *b)
{
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

const char **cli_item_groups(const kith_roster_item_t *it, size_t *n)
{
  size_t i, count = it ? kith_roster_item_group_count(it) : 0;
  const char **g;

  *n = 0;
  if (count == 0 || (g = calloc(count, sizeof(*g))) == NULL)
    return NULL;
  for (i = 0; i < count; i++)
    g[i] = kith_roster_item_group_at(it, i);
  qsort(g, count, sizeof(*g), cmp_str_ptr);
  *n = count;
  return g;
}

void cli_item_put(FILE *f, const kith_roster_item_t *it)
{
  unsigned flags = kith_roster_item_flags(it);
  const char *name = kith_roster_item_name(it);
  const char **groups;
  size_t i, n;

  fputs(kith_roster_item_jid(it), f);
  if (name) {
    fputs(" name=", f);
    cli_put_value(f, name);
  }
  fprintf(f, " subscription=%s", kith_sub_name(kith_roster_item_sub(it)));
  if (flags & KITH_ROSTER_PENDING_OUT)
    fputs(" ask=subscribe", f);
  if (flags & KITH_ROSTER_PENDING_IN)
    fputs(" pending-in", f);
  if (flags & KITH_ROSTER_APPROVED)
    fputs(" approved", f);
  groups = cli_item_groups(it, &n);
  for (i = 0; groups && i < n; i++) {
    fputs(i == 0 ? " groups=" : ",", f);
    cli_put_value(f, groups[i]);
  }
  free(groups);
}

json_t *cli_item_json(const kith_roster_item_t *it)
{
  unsigned flags;
  const char **groups;
  json_t *obj, *arr;
  size_t i, n;

  if (it == NULL)
    return json_null();
  flags = kith_roster_item_flags(it);
  arr = json_array();
  groups = cli_item_groups(it, &n);
  for (i = 0; arr && groups && i < n; i++)
    json_array_append_new(arr, json_string(groups[i]));
  free(groups);
  /* "o" steals arr, also when packing fails. */
  obj =
      json_pack("{s:s, s:s?, s:s, s:s?, s:b, s:o}", "jid",
                kith_roster_item_jid(it), "name", kith_roster_item_name(it),
                "subscription", kith_sub_name(kith_roster_item_sub(it)), "ask",
                (flags & KITH_ROSTER_PENDING_OUT) ? "subscribe" : NULL,
                "approved", (flags & KITH_ROSTER_APPROVED) != 0, "groups", arr);
  return obj;
}

static int cmp_item_ptr(const void *a, const void *b)
{
  return strcmp(kith_roster_item_jid(*(const kith_roster_item_t *const *)a),
                kith_roster_item_jid(*(const kith_roster_item_t *const *)b));
}

const kith_roster_item_t **cli_node_sorted(const kith_roster_node_t *node,
                                           size_t *n)
{
  const kith_roster_item_t **items;
  kith_roster_item_t *it;
  size_t cursor = 0, size, k = 0;

  *n = 0;
  size = node ? kith_roster_node_size(node) : 0;
  if (size == 0 || (items = calloc(size, sizeof(*items))) == NULL)
    return NULL;
  while (k < size && (it = kith_roster_node_next(node, &cursor)) != NULL)
    items[k++] = it;
  qsort(items, k, sizeof(*items), cmp_item_ptr);
  *n = k;
  return items;
}

const kith_roster_item_t **cli_roster_sorted(const cli_session_t *s, size_t *n)
{
  return cli_node_sorted(kith_roster_self(s->roster), n);
}

json_t *cli_node_json(const kith_roster_node_t *node)
{
  size_t i, n;
  const kith_roster_item_t **items = cli_node_sorted(node, &n);
  json_t *arr = json_array();

  for (i = 0; arr && i < n; i++)
    if (json_array_append_new(arr, cli_item_json(items[i])) != 0) {
      json_decref(arr);
      arr = NULL;
    }
  free(items);
  return arr;
}

/* The text form of `it` in a new string to free(), or NULL. */
static char *item_text(const kith_roster_item_t *it)
{
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);

  if (f == NULL)
    return NULL;
  cli_item_put(f, it);
  if (fclose(f) != 0) {
    free(text);
    return NULL;
  }
  return text;
}

/* ---- The command line --------------------------------------------------- */

/* Which options a subcommand takes. */
#define SUB_EDIT 0x01u    /* --name, --group */
#define SUB_OFFLINE 0x02u /* --offline */
#define SUB_ONLINE 0x04u  /* --online */
#define SUB_REPLACE 0x08u /* --replace */

typedef struct roster_sub {
  const char *name;
  const char *arg;  /* "JID", "FILE" or NULL: the one argument it takes */
  int arg_required; /* the argument must be there */
  unsigned opts;    /* SUB_*: the options it takes */
  int (*run)(roster_cmd_t *rc);
} roster_sub_t;

/* Collect --group values in order, dropping repeats. */
static int collect_groups(roster_cmd_t *rc)
{
  const cli_t *cli = rc->cli;
  const char **v = calloc(cli->n_cmd_opts + 1, sizeof(*v));
  size_t i, j, n = 0;

  if (v == NULL)
    return cli_fail(cli, KITH_ENOMEM, "%s", kith_strerror(KITH_ENOMEM));
  rc->groups = v;
  for (i = 0; i < cli->n_cmd_opts; i++) {
    const char *g = cli->cmd_opts[i].arg;
    if (cli->cmd_opts[i].val != ROSTER_OPT_GROUP || g == NULL)
      continue;
    if (*g == '\0')
      return cli_usage_error(cli, "--group takes a non-empty name");
    for (j = 0; j < n && strcmp(v[j], g) != 0; j++)
      ;
    if (j == n)
      v[n++] = g;
    rc->n_groups = n;
  }
  return CLI_EXIT_OK;
}

/* Normalize a contact JID argument to its bare form. A full JID is an
 * error rather than silently cut: roster items are bare JIDs. */
static int parse_contact(const cli_t *cli, const char *arg, char **out)
{
  const char *reason = NULL;
  kith_jid_t *j = NULL;
  int full;

  *out = NULL;
  if (kith_jid_parse(NULL, arg, &j, &reason) != KITH_OK)
    return cli_usage_error(cli, "invalid JID '%s': %s", arg,
                           reason ? reason : "malformed");
  full = kith_jid_resource(j) != NULL;
  kith_jid_free(j);
  if (full)
    return cli_usage_error(cli,
                           "'%s' has a resource; contacts are bare "
                           "JIDs (user@domain)",
                           arg);
  if (kith_jid_normalize(NULL, arg, 1, out, NULL) != KITH_OK)
    return cli_fail(cli, KITH_ENOMEM, "%s", kith_strerror(KITH_ENOMEM));
  return CLI_EXIT_OK;
}

/* The argument and the edit options (the options are checked against
 * `sub` by check_options()). */
static int parse_sub_args(roster_cmd_t *rc, const roster_sub_t *sub, int argc,
                          char **argv)
{
  const cli_t *cli = rc->cli;
  int code;

  if (sub->arg_required && argc < 2)
    return cli_usage_error(cli, "'roster %s' needs a %s", sub->name, sub->arg);
  if (argc > (sub->arg ? 2 : 1))
    return cli_usage_error(cli, "too many arguments for 'roster %s'",
                           sub->name);
  rc->name = cli_cmd_opt(cli, ROSTER_OPT_NAME);
  /* An empty name is no name (RFC 6121 2.1.2.4). */
  if (rc->name && *rc->name == '\0')
    rc->name = NULL;
  rc->offline = cli_cmd_flag(cli, ROSTER_OPT_OFFLINE);
  rc->online = cli_cmd_flag(cli, ROSTER_OPT_ONLINE);
  rc->replace = cli_cmd_flag(cli, ROSTER_OPT_REPLACE);
  if (rc->online && rc->replace)
    return cli_usage_error(cli, "--replace works on the store only, not "
                                "with --online");
  code = collect_groups(rc);
  if (code != CLI_EXIT_OK || argc < 2)
    return code;
  if (strcmp(sub->arg, "JID") == 0) {
    rc->jid_arg = argv[1];
    return parse_contact(cli, argv[1], &rc->jid);
  }
  rc->file = argv[1];
  return CLI_EXIT_OK;
}

/* ---- roster list -------------------------------------------------------- */

static int print_list(const cli_t *cli, const kith_roster_node_t *node)
{
  size_t i, n;
  const kith_roster_item_t **items;

  /* One array, also when empty, so a reader can always parse the line. */
  if (cli->json) {
    json_t *arr = cli_node_json(node);
    if (arr == NULL)
      return cli_fail(cli, KITH_ENOMEM, "%s", kith_strerror(KITH_ENOMEM));
    cli_print(cli, arr, "%s", "");
    return CLI_EXIT_OK;
  }
  items = cli_node_sorted(node, &n);
  for (i = 0; i < n; i++) {
    cli_item_put(stdout, items[i]);
    fputc('\n', stdout);
  }
  free(items);
  fflush(stdout);
  return CLI_EXIT_OK;
}

int roster_load_offline(roster_cmd_t *rc, const kith_roster_node_t **node)
{
  const cli_t *cli = rc->cli;
  kith_roster_node_t *found = NULL;
  kith_status_t st;
  int code = cli_offline_open(cli, &rc->off, 1);

  *node = NULL;
  if (code != CLI_EXIT_OK)
    return code;
  st = kith_roster_load(rc->off.roster, rc->off.owner, &found);
  if (st == KITH_ENOTFOUND)
    return cli_fail(cli, st,
                    "the store %s has no roster for %s (a client's roster "
                    "is cached there when it logs in)",
                    kith_store_uri(rc->off.store), rc->off.owner);
  if (st != KITH_OK)
    return cli_fail(
        cli, st, "cannot read the roster of %s from the store %s: %s",
        rc->off.owner, kith_store_uri(rc->off.store),
        *kith_store_errmsg(rc->off.store) ? kith_store_errmsg(rc->off.store)
                                          : kith_strerror(st));
  *node = found;
  return CLI_EXIT_OK;
}

static int roster_list(roster_cmd_t *rc)
{
  const kith_roster_node_t *node;
  int code;

  if (rc->offline) {
    code = roster_load_offline(rc, &node);
    return code == CLI_EXIT_OK ? print_list(rc->cli, node) : code;
  }
  code = cli_roster_login(rc->cli, &rc->s, 0);
  return code == CLI_EXIT_OK
             ? print_list(rc->cli, kith_roster_self(rc->s.roster))
             : code;
}

/* ---- roster add / set / remove ------------------------------------------ */

static void on_set_reply(kith_roster_t *roster, kith_status_t status,
                         const kith_stanza_t *reply, void *ud)
{
  change_t *c = ud;
  const char *cond = reply ? kith_stanza_error_condition(reply) : NULL;

  (void)roster;
  c->replied = 1;
  c->status = status;
  snprintf(c->condition, sizeof(c->condition), "%s",
           cond ? cond : "undefined-condition");
}

static void on_update(kith_conn_t *conn, const kith_event_t *ev, void *ud)
{
  change_t *c = ud;

  (void)conn;
  if (ev->jid && strcmp(ev->jid, c->jid) == 0)
    c->pushed = 1;
}

static int replied(void *ud)
{
  return ((const change_t *)ud)->replied;
}

static int pushed_or_pong(void *ud)
{
  const change_t *c = ud;

  return c->pushed || c->ping.done;
}

int roster_same_item(const kith_roster_item_t *it, const char *name,
                     const char *const *groups, size_t n)
{
  const char *old = kith_roster_item_name(it);
  size_t i, j;

  if ((old == NULL) != (name == NULL) || (old && strcmp(old, name) != 0))
    return 0;
  if (kith_roster_item_group_count(it) != n)
    return 0;
  for (i = 0; i < n; i++) {
    for (j = 0; j < n; j++)
      if (strcmp(kith_roster_item_group_at(it, j), groups[i]) == 0)
        break;
    if (j == n)
      return 0;
  }
  return 1;
}

/* After a successful reply, wait for the push. Servers push before they
 * reply (Prosody does), but RFC 6121 does not say so; and when the item
 * ends up as it was, the library raises no roster_update. So a ping to
 * the server bounds the wait: once it is answered, the push is in. */
static kith_status_t wait_push(roster_cmd_t *rc)
{
  cli_session_t *ss[1] = {&rc->s};
  change_t *c = &rc->change;
  char domain[1024];
  kith_status_t st;

  if (c->pushed || !c->expect_push)
    return KITH_OK;
  cli_session_domain(&rc->s, domain, sizeof(domain));
  st = cli_ping_send(&rc->s, domain, &c->ping);
  if (st == KITH_OK)
    st = cli_wait(rc->cli, ss, 1, pushed_or_pong, c);
  return st;
}

/* Send the roster set (or remove) and wait for the reply and the push. */
static int apply_change(roster_cmd_t *rc, int remove)
{
  cli_session_t *ss[1] = {&rc->s};
  change_t *c = &rc->change;
  char buf[1200];
  unsigned h;
  kith_status_t st;

  h = kith_conn_on(rc->s.conn, KITH_EVENT_ROSTER_UPDATE, on_update, c);
  if (h == 0)
    return cli_fail(rc->cli, KITH_ENOMEM, "%s", kith_strerror(KITH_ENOMEM));
  if (remove)
    st = kith_roster_remove(rc->s.roster, rc->jid, on_set_reply, c);
  else
    st = kith_roster_update(rc->s.roster, rc->jid, rc->name, rc->groups,
                            rc->n_groups, NULL, on_set_reply, c);
  if (st == KITH_OK)
    st = cli_wait(rc->cli, ss, 1, replied, c);
  if (st == KITH_OK && c->status == KITH_OK)
    st = wait_push(rc);
  kith_conn_off(rc->s.conn, h);
  if (st != KITH_OK)
    return cli_fail(rc->cli, st, "%s",
                    cli_wait_error(rc->cli, st, buf, sizeof(buf)));
  if (c->status == KITH_ESTANZA)
    return cli_fail(rc->cli, c->status, "the server refused to %s %s: %s",
                    remove ? "remove" : "change", rc->jid, c->condition);
  if (c->status == KITH_ECANCELED && rc->s.ended)
    return cli_fail(rc->cli, rc->s.status, "%s", cli_session_error(&rc->s));
  if (c->status != KITH_OK)
    return cli_fail(rc->cli, c->status, "roster set for %s failed: %s", rc->jid,
                    kith_strerror(c->status));
  return CLI_EXIT_OK;
}

/* Print "EVENT ITEM (was: OLD)" or its JSON object. `before` and `old`
 * describe the item before the change (json null / NULL when absent). */
static void report_change(const roster_cmd_t *rc, const char *event,
                          json_t *before, const char *old)
{
  const kith_roster_node_t *node = kith_roster_self(rc->s.roster);
  const kith_roster_item_t *it =
      node ? kith_roster_node_item(node, rc->jid) : NULL;
  char *now = it ? item_text(it) : NULL;

  cli_print(rc->cli,
            json_pack("{s:s, s:s, s:o, s:o}", "event", event, "jid", rc->jid,
                      "item", cli_item_json(it), "before", before),
            "%s %s%s%s%s", event, now ? now : rc->jid, old ? " (was: " : "",
            old ? old : "", old ? ")" : "");
  free(now);
}

/* add (must_exist 0), set (1): the shared part after login. */
static int edit_item(roster_cmd_t *rc, int must_exist)
{
  const kith_roster_node_t *node = kith_roster_self(rc->s.roster);
  const kith_roster_item_t *it =
      node ? kith_roster_node_item(node, rc->jid) : NULL;
  change_t *c = &rc->change;
  json_t *before;
  char *old;
  int code, same;

  if (it && !must_exist)
    return cli_fail(rc->cli, KITH_EEXIST,
                    "%s is already in the roster (use 'roster set' to "
                    "change it)",
                    rc->jid);
  if (!it && must_exist)
    return cli_fail(rc->cli, KITH_ENOTFOUND,
                    "%s is not in the roster (use 'roster add')", rc->jid);
  same = it && roster_same_item(it, rc->name, rc->groups, rc->n_groups);
  c->jid = rc->jid;
  /* The library raises roster_update only when the item changes. */
  c->expect_push = !same;
  before = cli_item_json(it);
  old = it ? item_text(it) : NULL;
  code = apply_change(rc, 0);
  if (code == CLI_EXIT_OK)
    report_change(rc,
                  !it    ? "added"
                  : same ? "unchanged"
                         : "updated",
                  before, same ? NULL : old);
  else
    json_decref(before);
  free(old);
  return code;
}

static int roster_add(roster_cmd_t *rc)
{
  int code = cli_roster_login(rc->cli, &rc->s, 0);

  return code == CLI_EXIT_OK ? edit_item(rc, 0) : code;
}

static int roster_set(roster_cmd_t *rc)
{
  int code = cli_roster_login(rc->cli, &rc->s, 0);

  return code == CLI_EXIT_OK ? edit_item(rc, 1) : code;
}

static int roster_remove(roster_cmd_t *rc)
{
  const kith_roster_node_t *node;
  const kith_roster_item_t *it;
  change_t *c = &rc->change;
  json_t *before;
  char *old;
  int code = cli_roster_login(rc->cli, &rc->s, 0);

  if (code != CLI_EXIT_OK)
    return code;
  node = kith_roster_self(rc->s.roster);
  it = node ? kith_roster_node_item(node, rc->jid) : NULL;
  if (it == NULL)
    return cli_fail(rc->cli, KITH_ENOTFOUND, "%s is not in the roster",
                    rc->jid);
  c->jid = rc->jid;
  c->expect_push = 1;
  before = cli_item_json(it);
  old = item_text(it);
  code = apply_change(rc, 1);
  if (code == CLI_EXIT_OK)
    report_change(rc, "removed", before, old);
  else
    json_decref(before);
  free(old);
  return code;
}

static const roster_sub_t roster_subs[] = {
    {"list", NULL, 0, SUB_OFFLINE, roster_list},
    {"add", "JID", 1, SUB_EDIT, roster_add},
    {"set", "JID", 1, SUB_EDIT, roster_set},
    {"remove", "JID", 1, 0, roster_remove},
    {"export", "FILE", 0, SUB_ONLINE, roster_export},
    {"import", "FILE", 1, SUB_ONLINE | SUB_REPLACE, roster_import},
};
#define N_SUBS (sizeof(roster_subs) / sizeof(roster_subs[0]))

static const struct option roster_options[] = {
    {"name", required_argument, NULL, ROSTER_OPT_NAME},
    {"group", required_argument, NULL, ROSTER_OPT_GROUP},
    {"offline", no_argument, NULL, ROSTER_OPT_OFFLINE},
    {"online", no_argument, NULL, ROSTER_OPT_ONLINE},
    {"replace", no_argument, NULL, ROSTER_OPT_REPLACE},
    {NULL, 0, NULL, 0},
};

/* The SUB_* bit of a command option. */
static unsigned option_bit(int val)
{
  switch (val) {
  case ROSTER_OPT_NAME:
  case ROSTER_OPT_GROUP:
    return SUB_EDIT;
  case ROSTER_OPT_OFFLINE:
    return SUB_OFFLINE;
  case ROSTER_OPT_ONLINE:
    return SUB_ONLINE;
  default:
    return SUB_REPLACE;
  }
}

/* The long name of command option `val`. */
static const char *option_name(int val)
{
  size_t i;

  for (i = 0; roster_options[i].name; i++)
    if (roster_options[i].val == val)
      return roster_options[i].name;
  return "?";
}

/* Refuse an option `sub` does not take, naming the subcommands that do:
 * "--offline applies to 'roster list' only". */
static int check_options(const cli_t *cli, const roster_sub_t *sub)
{
  char which[256];
  size_t i, n = 0, k = 0, len = 0;
  unsigned bit = 0;
  int val = 0;

  for (i = 0; i < cli->n_cmd_opts && bit == 0; i++)
    if (!(sub->opts & option_bit(cli->cmd_opts[i].val))) {
      val = cli->cmd_opts[i].val;
      bit = option_bit(val);
    }
  if (bit == 0)
    return CLI_EXIT_OK;
  for (i = 0; i < N_SUBS; i++)
    n += (roster_subs[i].opts & bit) != 0;
  which[0] = '\0';
  for (i = 0; i < N_SUBS && len < sizeof(which); i++) {
    if (!(roster_subs[i].opts & bit))
      continue;
    len += (size_t)snprintf(which + len, sizeof(which) - len, "%s'roster %s'",
                            k == 0 ? "" : (k + 1 == n ? " and " : ", "),
                            roster_subs[i].name);
    k++;
  }
  return cli_usage_error(cli, "--%s applies to %s only", option_name(val),
                         which);
}

static int run_roster(cli_t *cli, int argc, char **argv)
{
  const roster_sub_t *sub = NULL;
  roster_cmd_t rc;
  size_t i;
  int code;
  kith_status_t st;

  for (i = 0; i < N_SUBS; i++)
    if (strcmp(argv[0], roster_subs[i].name) == 0)
      sub = &roster_subs[i];
  if (sub == NULL)
    return cli_usage_error(cli,
                           "unknown subcommand '%s' (list, add, set, "
                           "remove, export, import)",
                           argv[0]);
  memset(&rc, 0, sizeof(rc));
  rc.cli = cli;
  code = check_options(cli, sub);
  if (code == CLI_EXIT_OK)
    code = parse_sub_args(&rc, sub, argc, argv);
  if (code == CLI_EXIT_OK) {
    cli_session_t *ss[1] = {&rc.s};
    code = sub->run(&rc);
    st = cli_close_sessions(cli, ss, 1);
    if (st != KITH_OK && code == CLI_EXIT_OK)
      cli_warn("roster: the connection did not close cleanly: %s",
               st == KITH_ETIMEDOUT || st == KITH_ECANCELED
                   ? kith_strerror(st)
                   : cli_session_error(&rc.s));
    code = cli_session_store_check(&rc.s, code);
    cli_session_free(&rc.s);
  }
  roster_import_free(&rc);
  cli_offline_close(&rc.off);
  kith_free(NULL, rc.jid);
  free(rc.groups);
  return code;
}

const cli_command_t cli_cmd_roster = {
    "roster",
    "roster list|add|set|remove|export|import [JID|FILE]",
    "show, edit, export or import the roster (RFC 6121)",
    "Subcommands:\n"
    "  roster list [--offline]         print the roster, sorted by JID;\n"
    "                                  --offline: the one cached in the\n"
    "                                  --store, without connecting\n"
    "  roster add JID [--name N] [--group G]...\n"
    "                                  add a contact; fails if JID is\n"
    "                                  already in the roster\n"
    "  roster set JID [--name N] [--group G]...\n"
    "                                  replace a contact's name and groups;\n"
    "                                  fails if JID is not in the roster\n"
    "  roster remove JID               delete a contact (this also cancels\n"
    "                                  the subscriptions both ways)\n"
    "  roster export [FILE] [--online] write the roster cached in the\n"
    "                                  --store to FILE (stdout without FILE\n"
    "                                  or for '-') as list --json does;\n"
    "                                  --online: fetch it from the server\n"
    "  roster import FILE [--replace | --online]\n"
    "                                  read such a file ('-': stdin) into\n"
    "                                  the --store, or with --online send\n"
    "                                  it to the server (see below)\n"
    "\n"
    "The roster is kept in the --store (default sqlite:, the file\n"
    "$XDG_DATA_HOME/kith/roster.db): it is read before connecting, the\n"
    "fetch asks only for what changed since (RFC 6121 2.6), and every\n"
    "change is written through. list --offline and export read the cached\n"
    "roster of --jid as the last run left it; no password is needed. They\n"
    "fail when the store has no roster for that JID. A store that cannot\n"
    "be opened or written is an error (exit 1) naming its URI.\n"
    "\n"
    "The other subcommands log in, fetch the roster and disconnect. They\n"
    "send no presence, so the account does not appear online, and answer\n"
    "no subscription requests. add, set and remove wait for the server's\n"
    "reply and the roster push, so the change is visible when kith returns.\n"
    "On the wire add and set are the same roster set: the item gets exactly\n"
    "the name and groups given, so 'roster set JID' without --name removes\n"
    "the name, and without --group removes the contact from all groups.\n"
    "--name '' means no name; --group may be repeated. JIDs are bare\n"
    "(user@domain); add and set do not subscribe (see 'kith presence').\n"
    "\n"
    "Output of list, one line per item:\n"
    "  JID [name=NAME] subscription=none|to|from|both [ask=subscribe]\n"
    "      [pending-in] [approved] [groups=G1,G2]\n"
    "ask=subscribe: we asked for the contact's presence and it has not\n"
    "answered; approved: the contact is pre-approved; pending-in: the\n"
    "contact asked us (shown only when this session saw the request,\n"
    "which list never does: see 'kith watch'). Groups are sorted. A value\n"
    "with a space, '\"', '\\', ',', '=' or a control character is\n"
    "double-quoted with C escapes. An empty roster prints nothing.\n"
    "With --json, list prints ONE array (also when empty) of\n"
    "  {\"jid\":\"bob@localhost\",\"name\":\"Bob\",\"subscription\":\"both\",\n"
    "   \"ask\":null,\"approved\":false,\"groups\":[\"Friends\"]}\n"
    "(name and ask are null when absent).\n"
    "\n"
    "Output of add, set and remove, one line:\n"
    "  added ITEM | updated ITEM (was: ITEM) | unchanged ITEM\n"
    "  | removed JID (was: ITEM)\n"
    "where ITEM is the list form; with --json\n"
    "  {\"event\":\"added\"|\"updated\"|\"unchanged\"|\"removed\",\n"
    "   \"jid\":JID,\"item\":OBJECT|null,\"before\":OBJECT|null}\n"
    "with OBJECT as in list (item null after remove, before null after\n"
    "add).\n"
    "\n"
    "Import checks the whole file before it changes anything: each item\n"
    "needs \"jid\", a bare JID; \"name\" is a string or null,\n"
    "\"groups\" an array of non-empty strings, \"subscription\" none, to,\n"
    "from or both, \"ask\" \"subscribe\" (with none or from) or null,\n"
    "\"approved\" true (with none or to) or false; all but \"jid\" may be\n"
    "left out. Other keys, a JID given twice or a file that is not such\n"
    "an array stop the import with its item's index (\"item [3]\",\n"
    "counting from 0) and nothing imported.\n"
    "Without --online the items go into the --store as the roster of\n"
    "--jid, subscription states included, 1000 items per atomic batch;\n"
    "stored items for other JIDs stay unless --replace, which empties the\n"
    "stored roster first. The stored roster version is cleared, so a\n"
    "client's next login fetches the whole roster, and the server's then\n"
    "replaces what was imported: this fills a component's store (see\n"
    "'kith component') or moves a roster between stores. Do it while no\n"
    "kith process serves that JID from the same store.\n"
    "With --online kith logs in and sends a roster set for each item whose\n"
    "name or groups differ from the server's, up to 64 at a time, and\n"
    "stops at the first the server refuses; a roster set cannot carry\n"
    "subscription states, so kith warns when the file's differ (use 'kith\n"
    "presence'). A large import may need a longer --timeout.\n"
    "Files of more than 1000 items show progress on stderr,\n"
    "\"kith: roster import: imported 2000/5000\". The last line is\n"
    "  imported N items into the roster of JID in URI\n"
    "  | imported N items to the server for JID (C changed, U unchanged)\n"
    "with --json\n"
    "  {\"event\":\"imported\",\"jid\":JID,\"items\":N,\"store\":URI,\n"
    "   \"batches\":B,\"replace\":BOOL}\n"
    "  | {\"event\":\"imported\",\"jid\":JID,\"items\":N,\"changed\":C,\n"
    "   \"unchanged\":U}\n"
    "Export to a FILE ends with \"exported N items of JID to FILE\", with\n"
    "--json {\"event\":\"exported\",\"jid\":JID,\"items\":N,\"file\":FILE}.\n"
    "\n"
    "Examples:\n"
    "  kith --jid alice@localhost roster list --json\n"
    "  kith --jid alice@localhost roster list --offline\n"
    "  kith --jid alice@localhost roster export alice.json\n"
    "  kith --jid user1@bot.localhost --store sqlite:bot.db \\\n"
    "      roster import alice.json\n"
    "  kith --jid alice@localhost roster add bob@localhost --name Bob \\\n"
    "      --group Friends --group Work\n"
    "  kith --jid alice@localhost roster remove bob@localhost\n",
    roster_options,
    1,
    2,
    run_roster,
};
