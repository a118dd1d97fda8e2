/*
 * kith ping [JID]: log in, send a XEP-0199 ping, print the round trip.
 */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void on_pong(kith_conn_t *conn, kith_status_t status,
                    const kith_stanza_t *reply, void *ud)
{
  cli_ping_t *p = ud;
  const char *from = reply ? kith_stanza_from(reply) : NULL;
  const char *cond = reply ? kith_stanza_error_condition(reply) : NULL;

  (void)conn;
  p->rtt_ms = cli_now_exact_ms() - p->sent_ms;
  p->status = status;
  p->done = 1;
  /* A reply without 'from' comes from the account's server. */
  snprintf(p->from, sizeof(p->from), "%s", from ? from : p->to);
  if (status == KITH_ESTANZA)
    snprintf(p->condition, sizeof(p->condition), "%s",
             cond ? cond : "undefined-condition");
}

static kith_status_t build_ping(cli_session_t *s, const char *to,
                                kith_stanza_t **out)
{
  kith_stanza_t *iq = NULL;
  kith_status_t rc;

  rc = kith_stanza_new(s->ctx, "iq", NULL, &iq);
  if (rc == KITH_OK)
    rc = kith_stanza_set_attr(iq, "type", "get");
  /* kith_conn_send_iq() would assign the id itself; giving one here also
   * keeps clear of a library bug where assigning it invalidated the 'to'
   * string the library had just read (seen with ASan, dispatch.c). */
  if (rc == KITH_OK) {
    char id[32];
    rc = kith_stanza_set_attr(iq, "id",
                              kith_conn_new_id(s->conn, id, sizeof(id)));
  }
  if (rc == KITH_OK)
    rc = kith_stanza_set_attr(iq, "to", to);
  /* A component must say which of its JIDs a stanza is from. */
  if (rc == KITH_OK && s->component)
    rc = kith_stanza_set_attr(iq, "from", kith_conn_jid(s->conn));
  if (rc == KITH_OK)
    rc = kith_stanza_add_element(iq, "ping", KITH_NS_PING, NULL);
  if (rc != KITH_OK) {
    kith_stanza_free(iq);
    return rc;
  }
  *out = iq;
  return KITH_OK;
}

kith_status_t cli_ping_send(cli_session_t *s, const char *to, cli_ping_t *p)
{
  kith_stanza_t *iq = NULL;
  kith_status_t rc;
  uint64_t now = cli_now_ms();
  unsigned timeout_ms = 1;

  memset(p, 0, sizeof(*p));
  snprintf(p->to, sizeof(p->to), "%s", to);
  rc = build_ping(s, to, &iq);
  if (rc != KITH_OK)
    return rc;
  /* The reply may take what is left of the global deadline, no more. */
  if (s->cli->deadline_ms > now)
    timeout_ms = (unsigned)(s->cli->deadline_ms - now);
  p->sent_ms = cli_now_exact_ms();
  rc = kith_conn_send_iq(s->conn, iq, timeout_ms, on_pong, p);
  kith_stanza_free(iq);
  return rc;
}

const char *cli_ping_error(const cli_ping_t *p, char *buf, size_t size)
{
  switch (p->status) {
  case KITH_ESTANZA:
    snprintf(buf, size, "%s answered the ping with an error: %s", p->from,
             p->condition);
    break;
  case KITH_ETIMEDOUT:
    snprintf(buf, size, "no reply from %s within %.0f ms", p->to, p->rtt_ms);
    break;
  default:
    snprintf(buf, size, "ping to %s failed: %s", p->to,
             kith_strerror(p->status));
    break;
  }
  return buf;
}

/* Where to ping when no JID is given: the account's server. A component
 * has no account; its server is usually the parent domain
 * (bot.example.org -> example.org). Returns NULL when there is no guess;
 * the result is freed with kith_free(). */
static char *default_target(const cli_target_t *t)
{
  kith_jid_t *j = NULL;
  char *out = NULL;

  if (t->component) {
    const char *dot = strchr(t->component, '.');
    if (dot && dot[1])
      kith_jid_normalize(NULL, dot + 1, 0, &out, NULL);
    return out;
  }
  if (kith_jid_parse(NULL, t->jid, &j, NULL) == KITH_OK)
    kith_jid_normalize(NULL, kith_jid_domain(j), 0, &out, NULL);
  kith_jid_free(j);
  return out;
}

static int ping_done(void *ud)
{
  return ((const cli_ping_t *)ud)->done;
}

static int report_pong(const cli_t *cli, const cli_ping_t *p)
{
  cli_print(cli,
            json_pack("{s:s, s:s, s:f}", "event", "pong", "from", p->from,
                      "rtt_ms", p->rtt_ms),
            "pong from %s in %.2f ms", p->from, p->rtt_ms);
  return CLI_EXIT_OK;
}

/* Log in, ping, report; the caller closes the session. `p` must live
 * until the session is freed: the iq callback may fire until then. */
static int ping_session(cli_t *cli, cli_session_t *s, const char *to,
                        cli_ping_t *p)
{
  cli_session_t *ss[1] = {s};
  char buf[1200];
  kith_status_t rc;

  rc = cli_wait_started(cli, ss, 1);
  if (rc != KITH_OK)
    return cli_fail(cli, rc, "%s", cli_wait_error(cli, rc, buf, sizeof(buf)));
  if (!s->started)
    return cli_fail(cli, s->status, "%s", cli_session_error(s));
  rc = cli_ping_send(s, to, p);
  if (rc != KITH_OK)
    return cli_fail(cli, rc, "cannot send the ping: %s", kith_strerror(rc));
  rc = cli_wait(cli, ss, 1, ping_done, p);
  if (rc != KITH_OK)
    return cli_fail(cli, rc, "%s", cli_wait_error(cli, rc, buf, sizeof(buf)));
  if (p->status == KITH_ECANCELED && s->ended)
    return cli_fail(cli, s->status, "%s", cli_session_error(s));
  if (p->status != KITH_OK)
    return cli_fail(cli, p->status, "%s", cli_ping_error(p, buf, sizeof(buf)));
  return report_pong(cli, p);
}

/* The JID to ping: the argument (normalized) or the default. */
static int ping_target(cli_t *cli, const cli_target_t *t, int argc, char **argv,
                       char **out)
{
  const char *reason = NULL;

  *out = NULL;
  if (argc == 0) {
    *out = default_target(t);
    if (*out == NULL)
      return cli_usage_error(cli, "give the JID to ping (no default "
                                  "server for this component)");
    return CLI_EXIT_OK;
  }
  if (kith_jid_normalize(NULL, argv[0], 0, out, &reason) != KITH_OK) {
    *out = NULL;
    return cli_usage_error(cli, "invalid JID '%s': %s", argv[0],
                           reason ? reason : "malformed");
  }
  return CLI_EXIT_OK;
}

static int run_ping(cli_t *cli, int argc, char **argv)
{
  cli_target_t t;
  cli_session_t s;
  cli_session_t *ss[1] = {&s};
  cli_ping_t p;
  char *to = NULL;
  int code;
  kith_status_t rc;

  code = cli_target_from_options(cli, &t);
  if (code != CLI_EXIT_OK)
    return code;
  code = ping_target(cli, &t, argc, argv, &to);
  if (code != CLI_EXIT_OK)
    return code;
  if (cli_session_open(&s, cli, NULL, &t) != KITH_OK)
    code = cli_fail(cli, s.status, "%s", cli_session_error(&s));
  else
    code = ping_session(cli, &s, to, &p);
  rc = cli_close_sessions(cli, ss, 1);
  if (rc != KITH_OK && code == CLI_EXIT_OK)
    cli_warn("ping: the connection did not close cleanly: %s",
             rc == KITH_ETIMEDOUT || rc == KITH_ECANCELED
                 ? kith_strerror(rc)
                 : cli_session_error(&s));
  cli_session_free(&s);
  kith_free(NULL, to);
  return code;
}

const cli_command_t cli_cmd_ping = {
    "ping",
    "ping [JID]",
    "log in and ping JID (XEP-0199; default: the server)",
    "Logs in with the connection options (or completes the component\n"
    "handshake), sends an XEP-0199 ping to JID and prints the round-trip\n"
    "time, then disconnects cleanly. Without JID it pings the account's\n"
    "server (its domain); a component pings its parent domain.\n"
    "\n"
    "Output: 'pong from JID in 1.23 ms', or with --json\n"
    "  {\"event\":\"pong\",\"from\":\"localhost\",\"rtt_ms\":1.23}\n"
    "\n"
    "Examples:\n"
    "  KITH_PASSWORD=secret kith --jid alice@example.org ping\n"
    "  KITH_PASSWORD=secret kith --jid alice@localhost \\\n"
    "      --server 127.0.0.1:5222 --ca-file ca.pem ping bob@localhost/phone\n"
    "  SECRET=s3cret kith --component bot.example.org --secret-env SECRET \\\n"
    "      --server 127.0.0.1:5347 ping example.org\n",
    NULL,
    0,
    1,
    run_ping,
};
