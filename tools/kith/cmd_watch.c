/*
 * kith watch: stay online with the roster attached and print every event,
 * one line each, until --for runs out or a signal arrives.
 *
 * Which fields an event carries is one table (event_fields), read by both
 * the text and the JSON printer, so the two forms always agree.
 */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WATCH_OPT_AUTO_AUTHORIZE (CLI_OPT_CMD_BASE + 0)
#define WATCH_OPT_AUTO_SUBSCRIBE (CLI_OPT_CMD_BASE + 1)
#define WATCH_OPT_NO_AUTO_SUBSCRIBE (CLI_OPT_CMD_BASE + 2)
#define WATCH_OPT_FOR (CLI_OPT_CMD_BASE + 3)

/* The longest --for: 30 days. */
#define WATCH_FOR_MAX_S 2592000.0

/* Field groups of an event. */
#define F_OWNER 0x01u    /* owner */
#define F_ITEM 0x02u     /* subscription, ask, pending_in, approved */
#define F_PRESENCE 0x04u /* resource, show, priority, status */
#define F_NICK 0x08u     /* nick */
#define F_ROSTER 0x10u   /* name, groups, removed */
#define F_END 0x20u      /* status (a status name), text */
#define F_DELAY 0x40u    /* delay_ms */
#define F_TEXT 0x80u     /* text */
#define F_COUNT 0x100u   /* items, version */

#define F_SUB (F_OWNER | F_NICK | F_ITEM)
#define F_PRES (F_OWNER | F_PRESENCE | F_ITEM)

static const unsigned event_fields[KITH_EVENT_COUNT_] = {
    [KITH_EVENT_SESSION_START] = 0, /* printed by print_start() */
    [KITH_EVENT_DISCONNECTED] = F_END,
    [KITH_EVENT_CONNECTED] = 0,
    [KITH_EVENT_RECONNECT_SCHEDULED] = F_DELAY,
    [KITH_EVENT_STREAM_ERROR] = F_TEXT,
    [KITH_EVENT_ROSTER_RECEIVED] = F_OWNER | F_COUNT,
    [KITH_EVENT_ROSTER_UPDATE] = F_OWNER | F_ROSTER | F_ITEM,
    [KITH_EVENT_PRESENCE_SUBSCRIBE] = F_SUB,
    [KITH_EVENT_PRESENCE_SUBSCRIBED] = F_SUB,
    [KITH_EVENT_PRESENCE_UNSUBSCRIBE] = F_SUB,
    [KITH_EVENT_PRESENCE_UNSUBSCRIBED] = F_SUB,
    [KITH_EVENT_PRESENCE_AVAILABLE] = F_PRES,
    [KITH_EVENT_PRESENCE_UNAVAILABLE] = F_PRES,
    [KITH_EVENT_ROSTER_SUBSCRIPTION_REQUEST] = F_SUB,
    [KITH_EVENT_ROSTER_SUBSCRIPTION_AUTHORIZED] = F_SUB,
    [KITH_EVENT_ROSTER_SUBSCRIPTION_REMOVE] = F_SUB,
    [KITH_EVENT_ROSTER_SUBSCRIPTION_REMOVED] = F_SUB,
    [KITH_EVENT_ROSTER_SUBSCRIPTION_REFUSED] = F_SUB,
    [KITH_EVENT_ROSTER_SUBSCRIPTION_CANCELLED] = F_SUB,
    [KITH_EVENT_GOT_ONLINE] = F_PRES,
    [KITH_EVENT_GOT_OFFLINE] = F_PRES,
    [KITH_EVENT_CHANGED_STATUS] = F_PRES,
    [KITH_EVENT_PRESENCE_RESET] = F_PRES,
};

static const struct {
  const char *name;
  kith_auto_authorize_t policy;
} policies[] = {
    {"accept", KITH_AUTHORIZE_ACCEPT},
    {"reject", KITH_AUTHORIZE_REJECT},
    {"manual", KITH_AUTHORIZE_MANUAL},
};

typedef struct watch {
  const cli_t *cli;
  cli_session_t s;
  const char *policy_name;
  kith_auto_authorize_t policy;
  int auto_subscribe;
  double for_s;   /* 0: until a signal */
  int printing;   /* session_start printed: print everything from now on */
  int out_failed; /* stdout went away */
} watch_t;

/* ---- Options ------------------------------------------------------------ */

static int parse_for(watch_t *w, const char *arg)
{
  char *end;

  errno = 0;
  w->for_s = strtod(arg, &end);
  if (errno || end == arg || *end != '\0' || !(w->for_s > 0) ||
      w->for_s > WATCH_FOR_MAX_S)
    return cli_usage_error(w->cli,
                           "--for takes seconds from 0.001 to 2592000, not "
                           "'%s'",
                           arg);
  return CLI_EXIT_OK;
}

static int parse_options(watch_t *w)
{
  const cli_t *cli = w->cli;
  const char *pol = cli_cmd_opt(cli, WATCH_OPT_AUTO_AUTHORIZE);
  const char *f = cli_cmd_opt(cli, WATCH_OPT_FOR);
  size_t i;

  w->policy_name = "manual";
  w->policy = KITH_AUTHORIZE_MANUAL;
  if (pol) {
    w->policy_name = NULL;
    for (i = 0; i < sizeof(policies) / sizeof(policies[0]); i++)
      if (strcmp(pol, policies[i].name) == 0) {
        w->policy_name = policies[i].name;
        w->policy = policies[i].policy;
      }
    if (w->policy_name == NULL)
      return cli_usage_error(cli,
                             "--auto-authorize takes accept, reject or "
                             "manual, not '%s'",
                             pol);
  }
  /* The last of --auto-subscribe / --no-auto-subscribe wins. */
  w->auto_subscribe = 1;
  for (i = 0; i < cli->n_cmd_opts; i++) {
    if (cli->cmd_opts[i].val == WATCH_OPT_AUTO_SUBSCRIBE)
      w->auto_subscribe = 1;
    else if (cli->cmd_opts[i].val == WATCH_OPT_NO_AUTO_SUBSCRIBE)
      w->auto_subscribe = 0;
  }
  return f ? parse_for(w, f) : CLI_EXIT_OK;
}

/* ---- Printing ----------------------------------------------------------- */

/* The presence <status/> text of the event's stanza, or NULL. */
static const char *status_text(const kith_event_t *ev)
{
  return ev->stanza ? kith_stanza_child_text(ev->stanza, "status", NULL) : NULL;
}

static void json_item_fields(json_t *o, const kith_roster_item_t *it)
{
  unsigned flags = it ? kith_roster_item_flags(it) : 0;

  json_object_set_new(o, "subscription",
                      it ? json_string(kith_sub_name(kith_roster_item_sub(it)))
                         : json_null());
  json_object_set_new(o, "ask",
                      (flags & KITH_ROSTER_PENDING_OUT)
                          ? json_string("subscribe")
                          : json_null());
  json_object_set_new(o, "pending_in",
                      json_boolean(flags & KITH_ROSTER_PENDING_IN));
  json_object_set_new(o, "approved",
                      json_boolean(flags & KITH_ROSTER_APPROVED));
}

static void json_roster_fields(json_t *o, const kith_event_t *ev)
{
  const char *name = ev->item ? kith_roster_item_name(ev->item) : NULL;
  json_t *arr = json_array();
  const char **g;
  size_t i, n;

  g = cli_item_groups(ev->item, &n);
  for (i = 0; g && i < n; i++)
    json_array_append_new(arr, json_string(g[i]));
  free(g);
  json_object_set_new(o, "name", name ? json_string(name) : json_null());
  json_object_set_new(o, "groups", arr);
  json_object_set_new(o, "removed", json_boolean(ev->removed));
}

static json_t *str_or_null(const char *s)
{
  return s ? json_string(s) : json_null();
}

static json_t *event_json(const kith_event_t *ev, unsigned f)
{
  json_t *o = json_object();

  json_object_set_new(o, "event", json_string(kith_event_name(ev->type)));
  json_object_set_new(o, "jid", str_or_null(ev->jid));
  if (f & F_OWNER)
    json_object_set_new(o, "owner", str_or_null(ev->owner));
  if (f & F_PRESENCE) {
    json_object_set_new(o, "resource", str_or_null(ev->resource));
    json_object_set_new(o, "show",
                        json_string(kith_show_name((kith_show_t)ev->show)));
    json_object_set_new(o, "priority", json_integer(ev->priority));
    json_object_set_new(o, "status", str_or_null(status_text(ev)));
  }
  if (f & F_NICK)
    json_object_set_new(o, "nick", str_or_null(ev->nick));
  if (f & F_ITEM)
    json_item_fields(o, ev->item);
  if (f & F_ROSTER)
    json_roster_fields(o, ev);
  return o;
}

/* Fields that need the roster or the session rather than the event. */
static void json_other_fields(json_t *o, const watch_t *w,
                              const kith_event_t *ev, unsigned f)
{
  if (f & F_END) {
    json_object_set_new(o, "status", json_string(kith_status_name(ev->status)));
    json_object_set_new(o, "text", str_or_null(ev->text));
  }
  if (f & F_DELAY)
    json_object_set_new(o, "delay_ms", json_integer(ev->delay_ms));
  if (f & F_TEXT)
    json_object_set_new(o, "text", str_or_null(ev->text));
  if (f & F_COUNT) {
    const kith_roster_node_t *node =
        ev->owner ? kith_roster_node(w->s.roster, ev->owner) : NULL;
    json_object_set_new(
        o, "items",
        json_integer(node ? (json_int_t)kith_roster_node_size(node) : 0));
    json_object_set_new(
        o, "version",
        str_or_null(node ? kith_roster_node_version(node) : NULL));
  }
}

/* " key=value" unless value is NULL. */
static void put_kv(const char *key, const char *value)
{
  if (value == NULL)
    return;
  printf(" %s=", key);
  cli_put_value(stdout, value);
}

static void text_item_fields(const kith_roster_item_t *it)
{
  unsigned flags = it ? kith_roster_item_flags(it) : 0;

  if (it)
    printf(" subscription=%s", kith_sub_name(kith_roster_item_sub(it)));
  if (flags & KITH_ROSTER_PENDING_OUT)
    fputs(" ask=subscribe", stdout);
  if (flags & KITH_ROSTER_PENDING_IN)
    fputs(" pending-in", stdout);
  if (flags & KITH_ROSTER_APPROVED)
    fputs(" approved", stdout);
}

/* After the item flags, as in the item's text form (cli_item_put()). */
static void text_roster_fields(const kith_event_t *ev)
{
  const char **g;
  size_t i, n;

  g = cli_item_groups(ev->item, &n);
  for (i = 0; g && i < n; i++) {
    fputs(i == 0 ? " groups=" : ",", stdout);
    cli_put_value(stdout, g[i]);
  }
  free(g);
  if (ev->removed)
    fputs(" removed", stdout);
}

static void event_text(const watch_t *w, const kith_event_t *ev, unsigned f)
{
  printf("%s %s", kith_event_name(ev->type), ev->jid ? ev->jid : "-");
  if (f & F_OWNER)
    put_kv("owner", ev->owner);
  if (f & F_PRESENCE) {
    put_kv("resource", ev->resource);
    printf(" show=%s priority=%d", kith_show_name((kith_show_t)ev->show),
           ev->priority);
    put_kv("status", status_text(ev));
  }
  if (f & F_NICK)
    put_kv("nick", ev->nick);
  if (f & F_ROSTER)
    put_kv("name", ev->item ? kith_roster_item_name(ev->item) : NULL);
  if (f & F_ITEM)
    text_item_fields(ev->item);
  if (f & F_ROSTER)
    text_roster_fields(ev);
  if (f & F_END) {
    printf(" status=%s", kith_status_name(ev->status));
    put_kv("text", ev->text);
  }
  if (f & F_DELAY)
    printf(" delay_ms=%ld", ev->delay_ms);
  if (f & F_TEXT)
    put_kv("text", ev->text);
  if (f & F_COUNT) {
    const kith_roster_node_t *node =
        ev->owner ? kith_roster_node(w->s.roster, ev->owner) : NULL;
    printf(" items=%zu", node ? kith_roster_node_size(node) : (size_t)0);
    put_kv("version", node ? kith_roster_node_version(node) : NULL);
  }
}

static void end_line(watch_t *w)
{
  fputc('\n', stdout);
  /* Readers follow through a pipe: every line goes out at once. */
  if (fflush(stdout) != 0 || ferror(stdout))
    w->out_failed = 1;
}

static void print_start(watch_t *w, const char *jid)
{
  if (w->cli->json) {
    json_t *o = json_pack("{s:s, s:s, s:s, s:b}", "event", "session_start",
                          "jid", jid, "auto_authorize", w->policy_name,
                          "auto_subscribe", w->auto_subscribe);
    json_dumpf(o, stdout, JSON_COMPACT);
    json_decref(o);
  } else {
    printf("session_start %s auto_authorize=%s auto_subscribe=%s", jid,
           w->policy_name, w->auto_subscribe ? "on" : "off");
  }
  end_line(w);
}

static void on_event(kith_conn_t *conn, const kith_event_t *ev, void *ud)
{
  watch_t *w = ud;
  unsigned f;

  if (ev->type == KITH_EVENT_SESSION_START) {
    w->printing = 1;
    print_start(w, ev->jid ? ev->jid : kith_conn_jid(conn));
    return;
  }
  if (!w->printing || w->out_failed || (int)ev->type < 0 ||
      ev->type >= KITH_EVENT_COUNT_)
    return;
  f = event_fields[ev->type];
  if (w->cli->json) {
    json_t *o = event_json(ev, f);
    json_other_fields(o, w, ev, f);
    json_dumpf(o, stdout, JSON_COMPACT);
    json_decref(o);
  } else {
    event_text(w, ev, f);
  }
  end_line(w);
}

/* ---- Running ------------------------------------------------------------ */

static int ended_or_broken(void *ud)
{
  const watch_t *w = ud;

  return w->s.ended || w->out_failed;
}

static int open_watch(watch_t *w)
{
  cli_session_t *ss[1] = {&w->s};
  cli_target_t t;
  char buf[1200];
  kith_status_t rc;
  int code = cli_target_from_options(w->cli, &t);

  if (code != CLI_EXIT_OK)
    return code;
  if (t.component)
    return cli_usage_error(w->cli, "watch needs a client account (--jid), "
                                   "not --component");
  rc = cli_session_open(&w->s, w->cli, NULL, &t);
  if (rc == KITH_OK)
    rc = cli_session_attach_roster(&w->s, 1);
  if (rc != KITH_OK)
    return cli_fail(w->cli, rc, "%s", cli_session_error(&w->s));
  kith_roster_set_auto_authorize(w->s.roster, w->policy);
  kith_roster_set_auto_subscribe(w->s.roster, w->auto_subscribe);
  /* Registered after the roster's handlers, so that on disconnect the
   * presence_reset lines come before the disconnected line. */
  if (kith_conn_on(w->s.conn, KITH_EVENT_ANY, on_event, w) == 0)
    return cli_fail(w->cli, KITH_ENOMEM, "%s", kith_strerror(KITH_ENOMEM));
  rc = cli_wait_started(w->cli, ss, 1);
  if (rc != KITH_OK)
    return cli_fail(w->cli, rc, "%s",
                    cli_wait_error(w->cli, rc, buf, sizeof(buf)));
  if (!w->s.started)
    return cli_fail(w->cli, w->s.status, "%s", cli_session_error(&w->s));
  return CLI_EXIT_OK;
}

/* Watch until --for runs out, a signal arrives or the server goes away. */
static int watch_loop(watch_t *w)
{
  cli_session_t *ss[1] = {&w->s};
  cli_t until = *w->cli;
  kith_status_t rc;

  /* --for counts from the session start; without it only a signal ends
   * the watch (the deadline is out of reach). */
  until.deadline_ms = w->for_s > 0
                          ? cli_now_ms() + (uint64_t)(w->for_s * 1000.0 + 0.5)
                          : UINT64_MAX;
  rc = cli_wait(&until, ss, 1, ended_or_broken, w);
  if (rc != KITH_OK && rc != KITH_ETIMEDOUT && rc != KITH_ECANCELED)
    return cli_fail(w->cli, rc, "%s", kith_strerror(rc));
  if (w->out_failed)
    return CLI_EXIT_FAIL; /* nobody left to tell */
  if (w->s.ended)
    return cli_fail(w->cli, w->s.status, "%s", cli_session_error(&w->s));
  return CLI_EXIT_OK;
}

static int run_watch(cli_t *cli, int argc, char **argv)
{
  cli_session_t *ss[1];
  watch_t *w = calloc(1, sizeof(*w));
  int code;
  kith_status_t rc;

  (void)argc;
  (void)argv;
  if (w == NULL)
    return cli_fail(cli, KITH_ENOMEM, "%s", kith_strerror(KITH_ENOMEM));
  w->cli = cli;
  ss[0] = &w->s;
  code = parse_options(w);
  if (code == CLI_EXIT_OK)
    code = open_watch(w);
  if (code == CLI_EXIT_OK)
    code = watch_loop(w);
  rc = cli_close_sessions(cli, ss, 1);
  if (rc != KITH_OK && code == CLI_EXIT_OK)
    code = cli_fail(cli, rc, "the connection did not close cleanly: %s",
                    rc == KITH_ETIMEDOUT || rc == KITH_ECANCELED
                        ? kith_strerror(rc)
                        : cli_session_error(&w->s));
  cli_session_free(&w->s);
  free(w);
  return code;
}

static const struct option watch_options[] = {
    {"auto-authorize", required_argument, NULL, WATCH_OPT_AUTO_AUTHORIZE},
    {"auto-subscribe", no_argument, NULL, WATCH_OPT_AUTO_SUBSCRIBE},
    {"no-auto-subscribe", no_argument, NULL, WATCH_OPT_NO_AUTO_SUBSCRIBE},
    {"for", required_argument, NULL, WATCH_OPT_FOR},
    {NULL, 0, NULL, 0},
};

const cli_command_t cli_cmd_watch = {
    "watch",
    "watch",
    "stay online and print roster and presence events",
    "Logs in with the roster attached, goes online and prints each event\n"
    "on one line (stdout is flushed after each) until --for runs out or\n"
    "SIGINT/SIGTERM arrives; then it disconnects cleanly and exits 0. It\n"
    "exits 1 when the server ends the session.\n"
    "\n"
    "Options:\n"
    "  --auto-authorize accept|reject|manual\n"
    "                   answer subscription requests 'subscribed' (accept),\n"
    "                   'unsubscribed' (reject), or not at all (manual, the\n"
    "                   default: answer with 'kith presence')\n"
    "  --auto-subscribe, --no-auto-subscribe\n"
    "                   after accepting a request, subscribe back unless\n"
    "                   already subscribed or asking (default on; it only\n"
    "                   matters with accept)\n"
    "  --for SECONDS    stop that long after the session started\n"
    "\n"
    "Output: the first line is session_start with the bound full JID. The\n"
    "roster fetch follows: a roster_update line per item that changed\n"
    "(every item, at first), then roster_received, after which the\n"
    "initial presence is on its way. The last line is disconnected,\n"
    "after presence_reset/got_offline for the contacts that were online.\n"
    "Text lines are 'EVENT JID key=value ...' (JID '-' when the event has\n"
    "none; values quoted as in 'kith roster list'; absent values and false\n"
    "flags left out), e.g.\n"
    "  session_start bob@localhost/kith-1 auto_authorize=manual "
    "auto_subscribe=on\n"
    "  roster_received - owner=bob@localhost items=0\n"
    "  roster_subscription_request alice@localhost owner=bob@localhost\n"
    "      nick=Alice\n"
    "  roster_update alice@localhost owner=bob@localhost name=Alice\n"
    "      subscription=from ask=subscribe groups=Friends\n"
    "  got_online alice@localhost/x owner=bob@localhost resource=x\n"
    "      show=away priority=0 status=\"at lunch\" subscription=both\n"
    "With --json, one object per line; every event has \"event\" and \"jid\"\n"
    "(null when none), and these fields (null when absent):\n"
    "  session_start: auto_authorize, auto_subscribe (bool)\n"
    "  roster_received: owner, items (count), version\n"
    "  roster_update: owner, name, groups (sorted), removed (bool), ITEM\n"
    "  presence_subscribe, presence_subscribed, presence_unsubscribe,\n"
    "  presence_unsubscribed, roster_subscription_request/_authorized/\n"
    "  _remove/_removed/_refused/_cancelled: owner, nick, ITEM\n"
    "  presence_available, presence_unavailable, got_online, got_offline,\n"
    "  changed_status, presence_reset: owner, resource, show, priority,\n"
    "  status (the status text), ITEM\n"
    "  disconnected: status (\"OK\" for our own close), text\n"
    "  stream_error: text; reconnect_scheduled: delay_ms\n"
    "ITEM is the contact's roster item after the event: subscription\n"
    "(none/to/from/both, null without an item), ask (\"subscribe\" or\n"
    "null), pending_in, approved (bool); in text subscription=SUB\n"
    "[ask=subscribe] [pending-in] [approved]. A JID with no roster item\n"
    "(someone who is not a contact yet, or another resource of our own\n"
    "account) has subscription null and false flags. jid is the full\n"
    "JID for presence from a resource, else the bare JID.\n"
    "\n"
    "Example:\n"
    "  kith --jid bob@localhost watch --json --for 10 \\\n"
    "      --auto-authorize accept\n",
    watch_options,
    0,
    0,
    run_watch,
};
