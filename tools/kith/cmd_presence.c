/*
 * kith presence subscribe|unsubscribe|approve|deny JID: send one
 * subscription stanza (RFC 6121 section 3) and show the roster item after.
 *
 * The session goes online (initial presence), because servers deliver
 * pending subscription requests only to available resources; so an
 * approve or deny follows a request that arrived while we were offline.
 * Pings to the server serve as barriers: a server handles one session's
 * stanzas in order, so once the pong is back it has processed what we
 * sent before, and any roster push that caused has arrived. (Waiting
 * for a roster_update event instead would not do: the library predicts
 * the flags of what we send, so a push that only confirms them raises no
 * event.)
 */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PRESENCE_OPT_NICK (CLI_OPT_CMD_BASE + 0)
typedef struct presence_action {
  const char *action; /* the subcommand */
  const char *type;   /* the presence type sent */
} presence_action_t;

static const presence_action_t actions[] = {
    {"subscribe", "subscribe"},
    {"unsubscribe", "unsubscribe"},
    {"approve", "subscribed"},
    {"deny", "unsubscribed"},
};

typedef struct presence_cmd {
  cli_t *cli;
  const presence_action_t *act;
  char *jid; /* normalized bare JID (kith_free) */
  const char *nick;
  char domain[1024]; /* the account's server, for the barrier pings */
  cli_session_t s;
  cli_ping_t ping;
} presence_cmd_t;

static int parse_args(presence_cmd_t *pc, int argc, char **argv)
{
  const cli_t *cli = pc->cli;
  const char *reason = NULL;
  kith_jid_t *j = NULL;
  size_t i;
  int full;

  for (i = 0; i < sizeof(actions) / sizeof(actions[0]); i++)
    if (strcmp(argv[0], actions[i].action) == 0)
      pc->act = &actions[i];
  if (pc->act == NULL)
    return cli_usage_error(cli,
                           "unknown action '%s' (subscribe, "
                           "unsubscribe, approve, deny)",
                           argv[0]);
  if (argc < 2)
    return cli_usage_error(cli, "'presence %s' needs a JID", argv[0]);
  pc->nick = cli_cmd_opt(cli, PRESENCE_OPT_NICK);
  if (pc->nick && strcmp(pc->act->action, "subscribe") != 0)
    return cli_usage_error(cli, "--nick goes with 'presence subscribe' only");
  if (kith_jid_parse(NULL, argv[1], &j, &reason) != KITH_OK)
    return cli_usage_error(cli, "invalid JID '%s': %s", argv[1],
                           reason ? reason : "malformed");
  full = kith_jid_resource(j) != NULL;
  kith_jid_free(j);
  if (full)
    return cli_usage_error(cli,
                           "'%s' has a resource; subscriptions are "
                           "between bare JIDs (user@domain)",
                           argv[1]);
  if (kith_jid_normalize(NULL, argv[1], 1, &pc->jid, NULL) != KITH_OK)
    return cli_fail(cli, KITH_ENOMEM, "%s", kith_strerror(KITH_ENOMEM));
  return CLI_EXIT_OK;
}

static const kith_roster_item_t *find_item(const presence_cmd_t *pc)
{
  const kith_roster_node_t *node = kith_roster_self(pc->s.roster);

  return node ? kith_roster_node_item(node, pc->jid) : NULL;
}

static int pong(void *ud)
{
  return ((const presence_cmd_t *)ud)->ping.done;
}

/* Ping the server and wait for the pong. */
static int barrier(presence_cmd_t *pc)
{
  cli_session_t *ss[1] = {&pc->s};
  char buf[1200];
  kith_status_t rc = cli_ping_send(&pc->s, pc->domain, &pc->ping);

  if (rc != KITH_OK)
    return cli_fail(pc->cli, rc, "cannot ping the server: %s",
                    kith_strerror(rc));
  rc = cli_wait(pc->cli, ss, 1, pong, pc);
  if (rc != KITH_OK)
    return cli_fail(pc->cli, rc, "%s",
                    cli_wait_error(pc->cli, rc, buf, sizeof(buf)));
  if (pc->ping.status == KITH_ECANCELED && pc->s.ended)
    return cli_fail(pc->cli, pc->s.status, "%s", cli_session_error(&pc->s));
  if (pc->ping.status != KITH_OK)
    return cli_fail(pc->cli, pc->ping.status, "%s",
                    cli_ping_error(&pc->ping, buf, sizeof(buf)));
  return CLI_EXIT_OK;
}

static int send_action(presence_cmd_t *pc)
{
  kith_status_t rc = kith_roster_send_subscription(
      pc->s.roster, pc->jid, pc->act->type, pc->nick, NULL);

  if (rc == KITH_EUNSUPPORTED)
    return cli_fail(pc->cli, rc,
                    "%s has not asked to subscribe, and the server does "
                    "not support pre-approval",
                    pc->jid);
  if (rc != KITH_OK)
    return cli_fail(pc->cli, rc, "cannot send %s to %s: %s", pc->act->type,
                    pc->jid, kith_strerror(rc));
  return CLI_EXIT_OK;
}

static void report(const presence_cmd_t *pc, json_t *before)
{
  const kith_roster_item_t *it = find_item(pc);

  if (pc->cli->json) {
    cli_print(pc->cli,
              json_pack("{s:s, s:s, s:s, s:s, s:s?, s:o, s:o}", "event", "sent",
                        "action", pc->act->action, "type", pc->act->type, "to",
                        pc->jid, "nick", pc->nick, "item", cli_item_json(it),
                        "before", before),
              "%s", "");
    return;
  }
  json_decref(before);
  printf("sent %s to %s", pc->act->type, pc->jid);
  if (pc->nick) {
    fputs(" nick=", stdout);
    cli_put_value(stdout, pc->nick);
  }
  fputs("\nroster: ", stdout);
  if (it)
    cli_item_put(stdout, it);
  else
    printf("%s not in the roster", pc->jid);
  fputc('\n', stdout);
  fflush(stdout);
}

static int presence_session(presence_cmd_t *pc)
{
  json_t *before;
  int code = cli_roster_login(pc->cli, &pc->s, 1);

  cli_session_domain(&pc->s, pc->domain, sizeof(pc->domain));
  /* First barrier: the server has seen our initial presence and sent the
   * subscription requests that were waiting for us. */
  if (code == CLI_EXIT_OK)
    code = barrier(pc);
  if (code != CLI_EXIT_OK)
    return code;
  before = cli_item_json(find_item(pc));
  code = send_action(pc);
  /* Second barrier: the server has processed the stanza, and the roster
   * push it caused is in. */
  if (code == CLI_EXIT_OK)
    code = barrier(pc);
  if (code == CLI_EXIT_OK)
    report(pc, before);
  else
    json_decref(before);
  return code;
}

static int run_presence(cli_t *cli, int argc, char **argv)
{
  presence_cmd_t *pc = calloc(1, sizeof(*pc));
  cli_session_t *ss[1];
  kith_status_t st;
  int code;

  if (pc == NULL)
    return cli_fail(cli, KITH_ENOMEM, "%s", kith_strerror(KITH_ENOMEM));
  pc->cli = cli;
  ss[0] = &pc->s;
  code = parse_args(pc, argc, argv);
  if (code == CLI_EXIT_OK) {
    code = presence_session(pc);
    st = cli_close_sessions(cli, ss, 1);
    if (st != KITH_OK && code == CLI_EXIT_OK)
      cli_warn("presence: the connection did not close cleanly: %s",
               st == KITH_ETIMEDOUT || st == KITH_ECANCELED
                   ? kith_strerror(st)
                   : cli_session_error(&pc->s));
    code = cli_session_store_check(&pc->s, code);
    cli_session_free(&pc->s);
  }
  kith_free(NULL, pc->jid);
  free(pc);
  return code;
}

static const struct option presence_options[] = {
    {"nick", required_argument, NULL, PRESENCE_OPT_NICK},
    {NULL, 0, NULL, 0},
};

const cli_command_t cli_cmd_presence = {
    "presence",
    "presence subscribe|unsubscribe|approve|deny JID",
    "send a subscription request or answer (RFC 6121 3)",
    "Actions (the presence type sent in parentheses):\n"
    "  subscribe JID [--nick N]  ask for JID's presence (subscribe); --nick\n"
    "                            sends our nickname (XEP-0172)\n"
    "  unsubscribe JID           stop receiving JID's presence, or withdraw\n"
    "                            our request (unsubscribe)\n"
    "  approve JID               let JID see our presence (subscribed): an\n"
    "                            answer to JID's request, else a\n"
    "                            pre-approval where the server supports it\n"
    "  deny JID                  refuse JID's request, or revoke JID's\n"
    "                            subscription to us (unsubscribed)\n"
    "\n"
    "Logs in and goes online (servers deliver waiting subscription\n"
    "requests only to available resources; this session answers none by\n"
    "itself), sends the stanza, pings the server so that it has processed\n"
    "it and sent the roster push it causes, prints the item and\n"
    "disconnects cleanly. JIDs are bare (user@domain). The roster is kept\n"
    "in the --store, as with 'kith roster'.\n"
    "\n"
    "Output, two lines:\n"
    "  sent TYPE to JID [nick=N]\n"
    "  roster: ITEM | roster: JID not in the roster\n"
    "with ITEM as in 'kith roster list'. With --json one line:\n"
    "  {\"event\":\"sent\",\"action\":\"subscribe\",\"type\":\"subscribe\",\n"
    "   "
    "\"to\":\"bob@localhost\",\"nick\":\"Alice\"|null,\"item\":OBJECT|null,\n"
    "   \"before\":OBJECT|null}\n"
    "with OBJECT as in 'kith roster list --json', item after and before.\n"
    "\n"
    "Examples:\n"
    "  kith --jid alice@localhost presence subscribe bob@localhost \\\n"
    "      --nick Alice\n"
    "  kith --jid bob@localhost presence approve alice@localhost\n",
    presence_options,
    2,
    2,
    run_presence,
};
