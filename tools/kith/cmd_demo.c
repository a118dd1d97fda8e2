/*
 * kith demo: a guided tour against a throwaway Prosody on loopback.
 *
 * The demo starts the test lab (tests/lab/lab.sh), then runs the steps in
 * `steps` one after the other over a set of users that are all connected
 * at the same time. Each step prints what it did as text or, with --json,
 * one object per line. Whatever happens, the sessions are closed and the
 * server is stopped at the end. Add a step by writing one function and
 * one table entry.
 */
#include "cli.h"
#include "lab.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEMO_OPT_KEEP_LAB (CLI_OPT_CMD_BASE + 0)
#define DEMO_MAX_USERS 4

typedef struct demo_user {
  const char *name;       /* "alice" */
  const char *env_prefix; /* "ALICE": ALICE_JID, ALICE_PASSWORD in lab.env */
  cli_session_t s;
  cli_ping_t ping;
} demo_user_t;

typedef struct demo {
  cli_t *cli;
  cli_lab_t lab;
  const char *host; /* XMPP_HOST from lab.env */
  unsigned port;    /* C2S_PORT */
  const char *domain;
  const char *ca_file;
  demo_user_t users[DEMO_MAX_USERS];
  cli_session_t *ss[DEMO_MAX_USERS];
  size_t n_users;
  const char *step; /* the name of the step running, for messages */
} demo_t;

typedef struct demo_step {
  const char *name;
  int (*run)(demo_t *d); /* returns a CLI_EXIT_* code */
} demo_step_t;

/* The accounts the lab creates that the demo uses. */
static const struct {
  const char *name, *env_prefix;
} demo_accounts[] = {{"alice", "ALICE"}, {"bob", "BOB"}};

/* cli_fail() with the running step's name in front: "connect: ...". */
__attribute__((format(printf, 3, 4))) static int
demo_fail(const demo_t *d, kith_status_t status, const char *fmt, ...)
{
  char msg[1024];
  va_list ap;

  va_start(ap, fmt);
  /* The analyzer loses track of `ap` when it inlines this into callers. */
  vsnprintf(msg, sizeof(msg), fmt, ap); /* NOLINT(clang-analyzer-valist.*) */
  va_end(ap);
  if (d->step)
    return cli_fail(d->cli, status, "%s: %s", d->step, msg);
  return cli_fail(d->cli, status, "%s", msg);
}

/* ---- Step: connect everyone at the same time ---------------------------- */

static void announce_start(cli_session_t *s, void *ud)
{
  const demo_user_t *u = ud;
  char how[256];

  if (s->tls[0] && s->sasl[0])
    snprintf(how, sizeof(how), " (%s, %s)", s->tls, s->sasl);
  else if (s->tls[0] || s->sasl[0])
    snprintf(how, sizeof(how), " (%s)", s->tls[0] ? s->tls : s->sasl);
  else
    how[0] = '\0';
  cli_print(s->cli,
            json_pack("{s:s, s:s, s:s, s:s?, s:s?, s:f}", "event",
                      "session_start", "user", u->name, "jid", s->jid, "tls",
                      s->tls[0] ? s->tls : NULL, "sasl",
                      s->sasl[0] ? s->sasl : NULL, "ms", s->started_ms),
            "%s: session started%s in %.0f ms", s->jid, how, s->started_ms);
}

static int open_user(demo_t *d, demo_user_t *u)
{
  char key[64];
  cli_target_t t;
  const char *jid, *password;

  snprintf(key, sizeof(key), "%s_JID", u->env_prefix);
  jid = cli_lab_get(&d->lab, key);
  snprintf(key, sizeof(key), "%s_PASSWORD", u->env_prefix);
  password = cli_lab_get(&d->lab, key);
  if (jid == NULL || password == NULL)
    return demo_fail(d, KITH_ENOTFOUND, "lab.env has no %s_JID/%s_PASSWORD",
                     u->env_prefix, u->env_prefix);
  memset(&t, 0, sizeof(t));
  t.jid = jid;
  t.password = password;
  t.host = d->host;
  t.port = d->port;
  t.ca_file = d->ca_file;
  if (cli_session_open(&u->s, d->cli, u->name, &t) != KITH_OK)
    return demo_fail(d, u->s.status, "%s: %s", u->name,
                     cli_session_error(&u->s));
  u->s.on_start = announce_start;
  u->s.on_start_ud = u;
  return CLI_EXIT_OK;
}

static int step_connect(demo_t *d)
{
  char names[512] = "";
  size_t i;
  kith_status_t rc;
  json_t *jids = json_array();

  for (i = 0; i < d->n_users; i++) {
    int code = open_user(d, &d->users[i]);
    if (code != CLI_EXIT_OK) {
      json_decref(jids);
      return code;
    }
    json_array_append_new(jids, json_string(d->users[i].name));
    snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%s",
             i == 0 ? "" : (i + 1 == d->n_users ? " and " : ", "),
             d->users[i].name);
  }
  cli_print(d->cli,
            json_pack("{s:s, s:o}", "event", "connecting", "users", jids),
            "connecting %s at the same time (STARTTLS, SASL, bind) ...", names);
  rc = cli_wait_started(d->cli, d->ss, d->n_users);
  if (rc != KITH_OK) {
    char buf[256];
    return demo_fail(d, rc, "%s", cli_wait_error(d->cli, rc, buf, sizeof(buf)));
  }
  for (i = 0; i < d->n_users; i++)
    if (!d->users[i].s.started)
      return demo_fail(d, d->users[i].s.status, "%s: %s", d->users[i].name,
                       cli_session_error(&d->users[i].s));
  return CLI_EXIT_OK;
}

/* ---- Step: everyone pings the server at once ---------------------------- */

static int all_pongs(void *ud)
{
  const demo_t *d = ud;
  size_t i;

  for (i = 0; i < d->n_users; i++)
    if (!d->users[i].ping.done)
      return 0;
  return 1;
}

static int step_ping(demo_t *d)
{
  char buf[1200];
  size_t i;
  kith_status_t rc;

  for (i = 0; i < d->n_users; i++) {
    rc = cli_ping_send(&d->users[i].s, d->domain, &d->users[i].ping);
    if (rc != KITH_OK)
      return demo_fail(d, rc, "%s: cannot send: %s", d->users[i].name,
                       kith_strerror(rc));
  }
  rc = cli_wait(d->cli, d->ss, d->n_users, all_pongs, d);
  if (rc != KITH_OK)
    return demo_fail(d, rc, "%s", cli_wait_error(d->cli, rc, buf, sizeof(buf)));
  for (i = 0; i < d->n_users; i++) {
    const demo_user_t *u = &d->users[i];
    if (u->ping.status != KITH_OK)
      return demo_fail(d, u->ping.status, "%s: %s", u->name,
                       u->s.ended ? cli_session_error(&u->s)
                                  : cli_ping_error(&u->ping, buf, sizeof(buf)));
    cli_print(d->cli,
              json_pack("{s:s, s:s, s:s, s:f}", "event", "pong", "user",
                        u->name, "from", u->ping.from, "rtt_ms",
                        u->ping.rtt_ms),
              "ping %s -> %s: %.2f ms", u->name, u->ping.from, u->ping.rtt_ms);
  }
  return CLI_EXIT_OK;
}

/* ---- Step: everyone disconnects cleanly --------------------------------- */

static int step_disconnect(demo_t *d)
{
  size_t i;
  kith_status_t rc = cli_close_sessions(d->cli, d->ss, d->n_users);

  if (rc == KITH_ETIMEDOUT || rc == KITH_ECANCELED)
    return demo_fail(d, rc, "%s",
                     rc == KITH_ECANCELED
                         ? "interrupted"
                         : "the server did not close the streams in time");
  for (i = 0; i < d->n_users; i++) {
    const demo_user_t *u = &d->users[i];
    if (u->s.status != KITH_OK)
      return demo_fail(d, u->s.status, "%s: %s", u->name,
                       cli_session_error(&u->s));
    cli_print(d->cli,
              json_pack("{s:s, s:s, s:s}", "event", "disconnected", "user",
                        u->name, "jid", u->s.jid),
              "%s: disconnected cleanly", u->s.jid);
  }
  return CLI_EXIT_OK;
}

static const demo_step_t steps[] = {
    {"connect", step_connect},
    {"ping", step_ping},
    {"disconnect", step_disconnect},
};

/* ---- The lab around the steps ------------------------------------------- */

static int parse_lab_env(demo_t *d)
{
  const char *port = cli_lab_get(&d->lab, "C2S_PORT");
  char *end = NULL;
  unsigned long p = port ? strtoul(port, &end, 10) : 0;

  d->host = cli_lab_get(&d->lab, "XMPP_HOST");
  d->domain = cli_lab_get(&d->lab, "DOMAIN");
  d->ca_file = cli_lab_get(&d->lab, "CA_FILE");
  if (d->host == NULL || d->domain == NULL || d->ca_file == NULL || p == 0 ||
      p > 65535 || *end != '\0')
    return cli_fail(d->cli, KITH_ENOTFOUND,
                    "lab.env in %s lacks XMPP_HOST, C2S_PORT, DOMAIN or "
                    "CA_FILE",
                    d->lab.dir);
  d->port = (unsigned)p;
  return CLI_EXIT_OK;
}

static int start_lab(demo_t *d)
{
  char err[PATH_MAX * 2 + 64];
  double t0 = cli_now_exact_ms(), secs;

  if (cli_lab_find(&d->lab, err, sizeof(err)) != 0)
    return cli_fail(d->cli, KITH_ENOTFOUND, "%s", err);
  if (!d->cli->json) {
    printf("kith demo: starting a throwaway Prosody on 127.0.0.1 ... ");
    fflush(stdout);
  }
  if (cli_lab_start(&d->lab, err, sizeof(err)) != 0) {
    if (!d->cli->json)
      printf("failed\n");
    return cli_fail(d->cli, KITH_EIO, "%s", err);
  }
  secs = (cli_now_exact_ms() - t0) / 1000.0;
  if (parse_lab_env(d) != CLI_EXIT_OK)
    return CLI_EXIT_FAIL;
  cli_print(d->cli,
            json_pack("{s:s, s:s, s:i, s:s, s:s, s:s, s:f}", "event",
                      "lab_started", "host", d->host, "c2s_port", (int)d->port,
                      "domain", d->domain, "dir", d->lab.dir, "script",
                      d->lab.script, "seconds", secs),
            "ok: %s:%u, domain %s (%.1f s)", d->host, d->port, d->domain, secs);
  return CLI_EXIT_OK;
}

/* Close what is still open, free the sessions and stop the server. */
static int finish(demo_t *d, int code)
{
  int keep = cli_cmd_flag(d->cli, DEMO_OPT_KEEP_LAB);
  char dir[PATH_MAX];
  size_t i;

  cli_close_sessions(d->cli, d->ss, d->n_users);
  for (i = 0; i < d->n_users; i++)
    cli_session_free(&d->users[i].s);
  if (!d->lab.running)
    return code;
  snprintf(dir, sizeof(dir), "%s", d->lab.dir);
  /* Keep the files of a lab that failed to start: its logs say why. */
  if (d->host == NULL)
    keep = 1;
  if (cli_lab_stop(&d->lab, keep) != 0) {
    cli_warn("demo: stopping the lab in %s failed", dir);
    return code == CLI_EXIT_OK ? CLI_EXIT_FAIL : code;
  }
  if (keep)
    fprintf(stderr, "kith demo: the lab's files are in %s\n", dir);
  if (code == CLI_EXIT_OK)
    cli_print(d->cli,
              json_pack("{s:s, s:b}", "event", "demo_finished", "ok", 1),
              "demo finished; server stopped.");
  return code;
}

static int check_options(const cli_t *cli)
{
  if (cli->jid || cli->server || cli->ca_file || cli->component ||
      cli->secret_env || cli->insecure)
    return cli_usage_error(cli, "the demo starts its own server; the "
                                "connection options do not apply");
  return CLI_EXIT_OK;
}

static int run_demo(cli_t *cli, int argc, char **argv)
{
  demo_t *d;
  size_t i;
  int code;

  (void)argc;
  (void)argv;
  code = check_options(cli);
  if (code != CLI_EXIT_OK)
    return code;
  d = calloc(1, sizeof(*d));
  if (d == NULL)
    return cli_fail(cli, KITH_ENOMEM, "%s", kith_strerror(KITH_ENOMEM));
  d->cli = cli;
  d->n_users = sizeof(demo_accounts) / sizeof(demo_accounts[0]);
  for (i = 0; i < d->n_users; i++) {
    d->users[i].name = demo_accounts[i].name;
    d->users[i].env_prefix = demo_accounts[i].env_prefix;
    d->ss[i] = &d->users[i].s;
  }
  code = start_lab(d);
  /* The global timeout counts from here: the lab has a timeout of its
   * own. */
  cli->deadline_ms = cli_now_ms() + cli->timeout_ms;
  if (code == CLI_EXIT_OK && cli_interrupted)
    code = cli_fail(cli, KITH_ECANCELED, "interrupted");
  for (i = 0; code == CLI_EXIT_OK && i < sizeof(steps) / sizeof(steps[0]);
       i++) {
    d->step = steps[i].name;
    code = steps[i].run(d);
  }
  d->step = NULL;
  code = finish(d, code);
  free(d);
  return code;
}

static const struct option demo_options[] = {
    {"keep-lab", no_argument, NULL, DEMO_OPT_KEEP_LAB},
    {NULL, 0, NULL, 0},
};

const cli_command_t cli_cmd_demo = {
    "demo",
    "demo",
    "show kith at work against a throwaway Prosody",
    "Starts a throwaway Prosody on 127.0.0.1 with tests/lab/lab.sh (found\n"
    "through $KITH_LAB_SCRIPT, the source tree, or PREFIX/share/kith), in a\n"
    "new directory under /tmp. Then it connects alice and bob at the same\n"
    "time, pings the server from each, disconnects both cleanly and stops\n"
    "the server, also on failure or Ctrl-C. The connection options do not\n"
    "apply; --timeout bounds the part after the server started.\n"
    "\n"
    "Options:\n"
    "  --keep-lab    keep the lab directory (configuration, logs) after\n"
    "                stopping the server\n",
    demo_options,
    0,
    0,
    run_demo,
};
