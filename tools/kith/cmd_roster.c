/*
 * kith roster list|add|set|remove: read and edit the account's roster
 * (RFC 6121 section 2), and the text and JSON forms of roster items that
 * the other commands share.
 *
 * Every subcommand logs in with a roster attached but sends no presence,
 * so the account does not show up online. An edit waits for both the
 * server's answer to the roster set and the roster push that follows, so
 * the change is in place when the command returns.
 */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROSTER_OPT_NAME (CLI_OPT_CMD_BASE + 0)
#define ROSTER_OPT_GROUP (CLI_OPT_CMD_BASE + 1)

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

const kith_roster_item_t **cli_roster_sorted(const cli_session_t *s, size_t *n)
{
  const kith_roster_node_t *node = kith_roster_self(s->roster);
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

/* One roster set in flight: its reply, the push it causes, and the ping
 * that bounds the wait for the push. */
typedef struct change {
  const char *jid; /* normalized bare JID */
  int expect_push; /* the item should change */
  int replied;     /* the callback fired */
  kith_status_t status;
  char condition[64]; /* the error condition for KITH_ESTANZA */
  int pushed;         /* roster_update for jid seen */
  cli_ping_t ping;    /* the barrier after the reply */
} change_t;

/* What the command line asked for, and the change in flight. */
typedef struct roster_cmd {
  cli_t *cli;
  const char *jid_arg; /* JID as given */
  char *jid;           /* normalized bare JID (kith_free) */
  const char *name;    /* --name, or NULL */
  const char **groups; /* --group values without duplicates (free) */
  size_t n_groups;
  cli_session_t s;
  /* Here, not on a stack frame: its callbacks may fire as late as
   * cli_session_free(). */
  change_t change;
} roster_cmd_t;

typedef struct roster_sub {
  const char *name;
  int takes_jid;
  int edits; /* takes --name and --group */
  int (*run)(roster_cmd_t *rc);
} roster_sub_t;

/* Collect --group values in order, dropping repeats. */
static int collect_groups(roster_cmd_t *rc)
{
  const cli_t *cli = rc->cli;
  size_t i, j;

  rc->groups = calloc(cli->n_cmd_opts + 1, sizeof(*rc->groups));
  if (rc->groups == NULL)
    return cli_fail(cli, KITH_ENOMEM, "%s", kith_strerror(KITH_ENOMEM));
  for (i = 0; i < cli->n_cmd_opts; i++) {
    const char *g = cli->cmd_opts[i].arg;
    if (cli->cmd_opts[i].val != ROSTER_OPT_GROUP || g == NULL)
      continue;
    if (*g == '\0')
      return cli_usage_error(cli, "--group takes a non-empty name");
    for (j = 0; j < rc->n_groups && strcmp(rc->groups[j], g) != 0; j++)
      ;
    if (j == rc->n_groups)
      rc->groups[rc->n_groups++] = g;
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

/* The JID argument and the edit options, checked against `sub`. */
static int parse_sub_args(roster_cmd_t *rc, const roster_sub_t *sub, int argc,
                          char **argv)
{
  const cli_t *cli = rc->cli;
  int code;

  if (sub->takes_jid && argc < 2)
    return cli_usage_error(cli, "'roster %s' needs a JID", sub->name);
  if (argc > (sub->takes_jid ? 2 : 1))
    return cli_usage_error(cli, "too many arguments for 'roster %s'",
                           sub->name);
  if (!sub->edits && (cli_cmd_flag(cli, ROSTER_OPT_NAME) ||
                      cli_cmd_flag(cli, ROSTER_OPT_GROUP)))
    return cli_usage_error(cli, "--name and --group apply to 'roster add' "
                                "and 'roster set' only");
  rc->name = cli_cmd_opt(cli, ROSTER_OPT_NAME);
  /* An empty name is no name (RFC 6121 2.1.2.4). */
  if (rc->name && *rc->name == '\0')
    rc->name = NULL;
  code = collect_groups(rc);
  if (code == CLI_EXIT_OK && sub->takes_jid) {
    rc->jid_arg = argv[1];
    code = parse_contact(cli, argv[1], &rc->jid);
  }
  return code;
}

/* ---- roster list -------------------------------------------------------- */

static int print_list(roster_cmd_t *rc)
{
  size_t i, n;
  const kith_roster_item_t **items = cli_roster_sorted(&rc->s, &n);
  json_t *arr = rc->cli->json ? json_array() : NULL;

  for (i = 0; i < n; i++) {
    if (arr) {
      json_array_append_new(arr, cli_item_json(items[i]));
    } else {
      cli_item_put(stdout, items[i]);
      fputc('\n', stdout);
    }
  }
  free(items);
  /* One array, also when empty, so a reader can always parse the line. */
  if (arr)
    cli_print(rc->cli, arr, "%s", "");
  fflush(stdout);
  return CLI_EXIT_OK;
}

static int roster_list(roster_cmd_t *rc)
{
  int code = cli_roster_login(rc->cli, &rc->s, 0);

  return code == CLI_EXIT_OK ? print_list(rc) : code;
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

/* Does `it` already have exactly this name and these groups? */
static int same_item(const kith_roster_item_t *it, const char *name,
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
  same = it && same_item(it, rc->name, rc->groups, rc->n_groups);
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
    {"list", 0, 0, roster_list},
    {"add", 1, 1, roster_add},
    {"set", 1, 1, roster_set},
    {"remove", 1, 0, roster_remove},
};

static int run_roster(cli_t *cli, int argc, char **argv)
{
  const roster_sub_t *sub = NULL;
  roster_cmd_t rc;
  size_t i;
  int code;
  kith_status_t st;

  for (i = 0; i < sizeof(roster_subs) / sizeof(roster_subs[0]); i++)
    if (strcmp(argv[0], roster_subs[i].name) == 0)
      sub = &roster_subs[i];
  if (sub == NULL)
    return cli_usage_error(cli,
                           "unknown subcommand '%s' (list, add, set, "
                           "remove)",
                           argv[0]);
  memset(&rc, 0, sizeof(rc));
  rc.cli = cli;
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
    cli_session_free(&rc.s);
  }
  kith_free(NULL, rc.jid);
  free(rc.groups);
  return code;
}

static const struct option roster_options[] = {
    {"name", required_argument, NULL, ROSTER_OPT_NAME},
    {"group", required_argument, NULL, ROSTER_OPT_GROUP},
    {NULL, 0, NULL, 0},
};

const cli_command_t cli_cmd_roster = {
    "roster",
    "roster list|add|set|remove [JID]",
    "show or edit the roster (RFC 6121)",
    "Subcommands:\n"
    "  roster list                     print the roster, sorted by JID\n"
    "  roster add JID [--name N] [--group G]...\n"
    "                                  add a contact; fails if JID is\n"
    "                                  already in the roster\n"
    "  roster set JID [--name N] [--group G]...\n"
    "                                  replace a contact's name and groups;\n"
    "                                  fails if JID is not in the roster\n"
    "  roster remove JID               delete a contact (this also cancels\n"
    "                                  the subscriptions both ways)\n"
    "\n"
    "Each subcommand logs in, fetches the roster and disconnects. It sends\n"
    "no presence, so the account does not appear online, and it answers no\n"
    "subscription requests. add, set and remove wait for the server's reply\n"
    "and the roster push, so the change is visible when kith returns.\n"
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
    "Examples:\n"
    "  kith --jid alice@localhost roster list --json\n"
    "  kith --jid alice@localhost roster add bob@localhost --name Bob \\\n"
    "      --group Friends --group Work\n"
    "  kith --jid alice@localhost roster remove bob@localhost\n",
    roster_options,
    1,
    2,
    run_roster,
};
