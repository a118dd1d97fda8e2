/*
 * kith watch: stay online with the roster attached and print every event,
 * one line each, until --for runs out or a signal arrives. The lines are
 * printed by event.c, which `kith component` shares.
 */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WATCH_OPT_AUTO_AUTHORIZE (CLI_OPT_CMD_BASE + 0)
#define WATCH_OPT_AUTO_SUBSCRIBE (CLI_OPT_CMD_BASE + 1)
#define WATCH_OPT_NO_AUTO_SUBSCRIBE (CLI_OPT_CMD_BASE + 2)
#define WATCH_OPT_FOR (CLI_OPT_CMD_BASE + 3)

/* The longest --for: 30 days. */
#define WATCH_FOR_MAX_S 2592000.0

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

static int parse_options(watch_t *w)
{
  const cli_t *cli = w->cli;
  const char *pol = cli_cmd_opt(cli, WATCH_OPT_AUTO_AUTHORIZE);
  const char *f = cli_cmd_opt(cli, WATCH_OPT_FOR);
  size_t i;
  int code = CLI_EXIT_OK;

  w->policy_name = "manual";
  w->policy = KITH_AUTHORIZE_MANUAL;
  if (pol)
    code = cli_parse_policy(cli, pol, &w->policy, &w->policy_name);
  /* The last of --auto-subscribe / --no-auto-subscribe wins. */
  w->auto_subscribe = 1;
  for (i = 0; i < cli->n_cmd_opts; i++) {
    if (cli->cmd_opts[i].val == WATCH_OPT_AUTO_SUBSCRIBE)
      w->auto_subscribe = 1;
    else if (cli->cmd_opts[i].val == WATCH_OPT_NO_AUTO_SUBSCRIBE)
      w->auto_subscribe = 0;
  }
  if (code == CLI_EXIT_OK && f)
    code = cli_parse_seconds(cli, "--for", f, WATCH_FOR_MAX_S, &w->for_s);
  return code;
}

/* ---- Printing -------------------------------------------------------------
 */

static void end_line(watch_t *w)
{
  if (cli_end_line() != 0)
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

  if (ev->type == KITH_EVENT_SESSION_START) {
    w->printing = 1;
    print_start(w, ev->jid ? ev->jid : kith_conn_jid(conn));
    return;
  }
  if (w->printing && !w->out_failed &&
      cli_event_print(w->cli, w->s.roster, ev) != 0)
    w->out_failed = 1;
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
  if (rc != KITH_OK)
    return cli_fail(w->cli, rc, "%s", cli_session_error(&w->s));
  rc = cli_session_attach_roster(&w->s, 1, cli_store_uri(w->cli));
  if (rc == KITH_EINVAL)
    return cli_usage_error(w->cli, "%s", cli_session_error(&w->s));
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
    "since the roster cached in the --store (every item when the cache is\n"
    "empty), then roster_received, after which the initial presence is on\n"
    "its way. The last line is disconnected,\n"
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
    "  store_error: owner, status, text (a write to the --store failed; it\n"
    "  is retried at the next change)\n"
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
