/*
 * kith CLI: shared helpers (reporting, targets, sessions, the loop).
 */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* kith_run_once() takes at most this many connections per call. */
#define CLI_MAX_SESSIONS 16
/* The loop never sleeps longer than this, so Ctrl-C is noticed promptly
 * even when the signal lands outside poll(2). */
#define CLI_TICK_MS 100

volatile sig_atomic_t cli_interrupted = 0;

static void on_signal(int sig)
{
  (void)sig;
  if (cli_interrupted < 100)
    cli_interrupted++;
}

void cli_install_signals(void)
{
  struct sigaction sa;

  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  /* No SA_RESTART: poll(2) should return at once with EINTR. */
  sa.sa_flags = 0;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
  /* A reader that goes away (`kith demo | head`) must not kill us before
   * the cleanup: writes then fail with EPIPE instead. */
  sa.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &sa, NULL);
}

uint64_t cli_now_ms(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

double cli_now_exact_ms(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

const char *cli_cmd_opt(const cli_t *cli, int val)
{
  const char *arg = NULL;
  size_t i;

  for (i = 0; i < cli->n_cmd_opts; i++)
    if (cli->cmd_opts[i].val == val)
      arg = cli->cmd_opts[i].arg;
  return arg;
}

int cli_cmd_flag(const cli_t *cli, int val)
{
  size_t i;

  for (i = 0; i < cli->n_cmd_opts; i++)
    if (cli->cmd_opts[i].val == val)
      return 1;
  return 0;
}

int cli_parse_seconds(const cli_t *cli, const char *option, const char *arg,
                      double max, double *secs)
{
  char *end;

  errno = 0;
  *secs = strtod(arg, &end);
  if (errno || end == arg || *end != '\0' || !(*secs > 0) || *secs > max)
    return cli_usage_error(cli, "%s takes seconds from 0.001 to %.0f, not '%s'",
                           option, max, arg);
  return CLI_EXIT_OK;
}

static const struct {
  const char *name;
  kith_auto_authorize_t policy;
} policies[] = {
    {"accept", KITH_AUTHORIZE_ACCEPT},
    {"reject", KITH_AUTHORIZE_REJECT},
    {"manual", KITH_AUTHORIZE_MANUAL},
};

int cli_parse_policy(const cli_t *cli, const char *arg,
                     kith_auto_authorize_t *policy, const char **name)
{
  size_t i;

  for (i = 0; i < sizeof(policies) / sizeof(policies[0]); i++)
    if (strcmp(arg, policies[i].name) == 0) {
      *policy = policies[i].policy;
      *name = policies[i].name;
      return CLI_EXIT_OK;
    }
  return cli_usage_error(cli,
                         "--auto-authorize takes accept, reject or manual, "
                         "not '%s'",
                         arg);
}

/* ---- Reporting ---------------------------------------------------------- */

static void print_json(json_t *obj)
{
  /* Six significant digits keep rtt_ms readable (1.23457, not
   * 1.2345678900000001). */
  json_dumpf(obj, stdout, JSON_COMPACT | JSON_REAL_PRECISION(6));
  fputc('\n', stdout);
  fflush(stdout);
}

int cli_fail(const cli_t *cli, kith_status_t status, const char *fmt, ...)
{
  char msg[1024];
  va_list ap;
  const char *cmd = cli && cli->cmd ? cli->cmd->name : NULL;

  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  fflush(stdout);
  fprintf(stderr, "kith: %s%s%s\n", cmd ? cmd : "", cmd ? ": " : "", msg);
  if (cli && cli->json) {
    json_t *obj = json_pack(
        "{s:s, s:s?, s:s?, s:s}", "event", "error", "command", cmd, "status",
        status != KITH_OK ? kith_status_name(status) : NULL, "message", msg);
    if (obj) {
      print_json(obj);
      json_decref(obj);
    }
  }
  return CLI_EXIT_FAIL;
}

int cli_usage_error(const cli_t *cli, const char *fmt, ...)
{
  char msg[1024];
  va_list ap;
  const char *cmd = cli && cli->cmd ? cli->cmd->name : NULL;

  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  fflush(stdout);
  if (cmd)
    fprintf(stderr, "kith: %s: %s (see 'kith %s --help')\n", cmd, msg, cmd);
  else
    fprintf(stderr, "kith: %s (see 'kith --help')\n", msg);
  return CLI_EXIT_USAGE;
}

void cli_warn(const char *fmt, ...)
{
  va_list ap;

  fflush(stdout);
  fputs("kith: warning: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
}

void cli_print(const cli_t *cli, json_t *obj, const char *fmt, ...)
{
  va_list ap;

  if (cli->json) {
    if (obj) {
      print_json(obj);
      json_decref(obj);
    }
    return;
  }
  json_decref(obj);
  va_start(ap, fmt);
  vfprintf(stdout, fmt, ap);
  va_end(ap);
  fputc('\n', stdout);
  fflush(stdout);
}

/* ---- Connection targets ------------------------------------------------- */

static const char *parse_port(const char *s, unsigned *port)
{
  char *end;
  unsigned long v;

  if (*s < '0' || *s > '9')
    return "the port is not a number";
  errno = 0;
  v = strtoul(s, &end, 10);
  if (errno || *end != '\0' || v == 0 || v > 65535)
    return "the port must be a number from 1 to 65535";
  *port = (unsigned)v;
  return NULL;
}

const char *cli_parse_server(const char *spec, char *host, size_t host_size,
                             unsigned *port)
{
  const char *colon, *end = NULL, *start = spec;
  size_t len;

  *port = 0;
  if (spec[0] == '[') {
    /* "[v6]" or "[v6]:port" */
    end = strchr(spec, ']');
    if (end == NULL)
      return "missing ']' after an IPv6 address";
    start = spec + 1;
    if (end[1] == ':') {
      const char *err = parse_port(end + 2, port);
      if (err)
        return err;
    } else if (end[1] != '\0') {
      return "expected ':PORT' after ']'";
    }
  } else {
    colon = strchr(spec, ':');
    /* More than one colon and no brackets: a bare IPv6 address. */
    if (colon && strchr(colon + 1, ':') == NULL) {
      const char *err = parse_port(colon + 1, port);
      if (err)
        return err;
      end = colon;
    } else {
      end = spec + strlen(spec);
    }
  }
  len = (size_t)(end - start);
  if (len == 0)
    return "the host is empty";
  if (len >= host_size)
    return "the host name is too long";
  memcpy(host, start, len);
  host[len] = '\0';
  return NULL;
}

/* A component domain is a JID with only a domainpart. */
static int check_component(const cli_t *cli, const char *domain)
{
  kith_jid_t *j = NULL;
  const char *reason = NULL;
  int bad;

  if (kith_jid_parse(NULL, domain, &j, &reason) != KITH_OK)
    return cli_usage_error(cli, "invalid component domain '%s': %s", domain,
                           reason ? reason : "malformed");
  bad = kith_jid_local(j) != NULL || kith_jid_resource(j) != NULL;
  kith_jid_free(j);
  if (bad)
    return cli_usage_error(cli, "--component takes a bare domain, not '%s'",
                           domain);
  return CLI_EXIT_OK;
}

static int component_target(const cli_t *cli, cli_target_t *t)
{
  const char *secret;
  int rc;

  if (cli->jid)
    return cli_usage_error(cli, "--jid and --component exclude each other");
  if (cli->secret_env == NULL)
    return cli_usage_error(cli, "--component needs --secret-env VAR (the "
                                "secret is read from the environment)");
  if (cli->server == NULL)
    return cli_usage_error(cli, "--component needs --server HOST[:PORT]");
  rc = check_component(cli, cli->component);
  if (rc != CLI_EXIT_OK)
    return rc;
  secret = getenv(cli->secret_env);
  if (secret == NULL || *secret == '\0')
    return cli_usage_error(cli,
                           "environment variable %s (from --secret-env) is "
                           "not set",
                           cli->secret_env);
  t->component = cli->component;
  t->secret = secret;
  return CLI_EXIT_OK;
}

static int client_target(const cli_t *cli, cli_target_t *t)
{
  const char *jid = cli->jid ? cli->jid : getenv("KITH_JID");
  const char *password = getenv("KITH_PASSWORD");
  const char *reason = NULL;
  kith_jid_t *j = NULL;
  int has_local;

  if (cli->secret_env)
    return cli_usage_error(cli, "--secret-env needs --component");
  if (jid == NULL || *jid == '\0')
    return cli_usage_error(cli, "no account: give --jid JID or set KITH_JID");
  if (kith_jid_parse(NULL, jid, &j, &reason) != KITH_OK)
    return cli_usage_error(cli, "invalid JID '%s': %s", jid,
                           reason ? reason : "malformed");
  has_local = kith_jid_local(j) != NULL;
  kith_jid_free(j);
  if (!has_local)
    return cli_usage_error(cli, "'%s' is not an account JID (user@domain)",
                           jid);
  if (password == NULL)
    return cli_usage_error(cli, "KITH_PASSWORD is not set (the password is "
                                "read only from the environment)");
  t->jid = jid;
  t->password = password;
  return CLI_EXIT_OK;
}

int cli_target_from_options(const cli_t *cli, cli_target_t *t)
{
  int rc;

  memset(t, 0, sizeof(*t));
  rc = cli->component ? component_target(cli, t) : client_target(cli, t);
  if (rc != CLI_EXIT_OK)
    return rc;
  if (cli->server) {
    const char *err = cli_parse_server(cli->server, t->host_buf,
                                       sizeof(t->host_buf), &t->port);
    if (err)
      return cli_usage_error(cli, "bad --server '%s': %s", cli->server, err);
    t->host = t->host_buf;
  }
  /* XEP-0114 has no SRV lookup; 5347 is the customary port. */
  if (t->component && t->port == 0)
    t->port = 5347;
  if (cli->ca_file && access(cli->ca_file, R_OK) != 0)
    return cli_usage_error(cli, "cannot read --ca-file %s: %s", cli->ca_file,
                           strerror(errno));
  t->ca_file = cli->ca_file;
  t->insecure = cli->insecure;
  if (t->insecure)
    cli_warn("--insecure-skip-verify: the server's certificate is NOT "
             "verified; use this for testing only");
  return CLI_EXIT_OK;
}

/* ---- Stores ------------------------------------------------------------- */

static kith_log_level_t verbose_level(int verbose);

const char *cli_store_uri(const cli_t *cli)
{
  return cli->store && *cli->store ? cli->store : CLI_DEFAULT_STORE;
}

/* kith_store_open() with the failure in `text`: "cannot open the store
 * URI: why". */
static kith_status_t open_store(kith_ctx_t *ctx, const char *uri,
                                kith_store_t **out, char *text, size_t size)
{
  char err[256];
  kith_status_t rc = kith_store_open(ctx, uri, out, err, sizeof(err));

  if (rc != KITH_OK)
    snprintf(text, size, "cannot open the store %s: %s%s", uri,
             err[0] ? err : kith_strerror(rc),
             rc == KITH_ECORRUPT ? " (move it aside or use another --store)"
                                 : "");
  return rc;
}

int cli_store_open(const cli_t *cli, kith_ctx_t *ctx, const char *uri,
                   kith_store_t **out)
{
  char text[512];
  kith_status_t rc = open_store(ctx, uri, out, text, sizeof(text));

  if (rc == KITH_OK)
    return CLI_EXIT_OK;
  if (rc == KITH_EINVAL)
    return cli_usage_error(cli, "%s", text);
  return cli_fail(cli, rc, "%s", text);
}

/* The bare form of the account JID of --jid / $KITH_JID. */
static int offline_owner(const cli_t *cli, cli_offline_t *o)
{
  const char *jid = cli->jid ? cli->jid : getenv("KITH_JID");
  const char *reason = NULL;

  if (cli->component)
    return cli_usage_error(cli, "the roster of a component's JID is read "
                                "with --jid JID, not --component");
  if (jid == NULL || *jid == '\0')
    return cli_usage_error(cli, "no account: give --jid JID or set KITH_JID");
  if (kith_jid_normalize(NULL, jid, 1, &o->owner, &reason) != KITH_OK)
    return cli_usage_error(cli, "invalid JID '%s': %s", jid,
                           reason ? reason : "malformed");
  return CLI_EXIT_OK;
}

int cli_offline_open(const cli_t *cli, cli_offline_t *o, int with_roster)
{
  kith_status_t rc;
  int code;

  memset(o, 0, sizeof(*o));
  code = offline_owner(cli, o);
  if (code != CLI_EXIT_OK)
    return code;
  rc = kith_ctx_new(NULL, &o->ctx);
  if (rc != KITH_OK)
    return cli_fail(cli, rc, "%s", kith_strerror(rc));
  kith_ctx_set_log(o->ctx, verbose_level(cli->verbose), kith_log_stderr, NULL);
  code = cli_store_open(cli, o->ctx, cli_store_uri(cli), &o->store);
  if (code != CLI_EXIT_OK || !with_roster)
    return code;
  rc = kith_roster_new(o->ctx, &o->roster);
  if (rc == KITH_OK)
    rc = kith_roster_set_store(o->roster, o->store);
  if (rc != KITH_OK)
    return cli_fail(cli, rc, "%s", kith_strerror(rc));
  return CLI_EXIT_OK;
}

void cli_offline_close(cli_offline_t *o)
{
  /* The roster writes what is left, so it goes before its store. */
  kith_roster_free(o->roster);
  o->roster = NULL;
  kith_store_close(o->store);
  o->store = NULL;
  kith_free(NULL, o->owner);
  o->owner = NULL;
  kith_ctx_free(o->ctx);
  o->ctx = NULL;
}

/* ---- Sessions ----------------------------------------------------------- */

static kith_log_level_t verbose_level(int verbose)
{
  if (verbose >= 3)
    return KITH_LOG_TRACE;
  if (verbose == 2)
    return KITH_LOG_DEBUG;
  if (verbose == 1)
    return KITH_LOG_INFO;
  /* Failures are reported by the command itself, in one line. */
  return KITH_LOG_ERROR;
}

static void copy_str(char *dst, size_t size, const char *src)
{
  snprintf(dst, size, "%s", src ? src : "");
}

/* The public API has no accessor for the negotiated TLS version or SASL
 * mechanism yet, so pick them out of the library's info lines. This is
 * best effort: when the wording changes, the demo just shows less. */
static void remember_from_log(cli_session_t *s, kith_log_level_t level,
                              const char *area, const char *msg)
{
  static const char tls_prefix[] = "TLS established: ";
  static const char sasl_prefix[] = "authenticated with ";

  if (strcmp(area, "tls") == 0 &&
      strncmp(msg, tls_prefix, sizeof(tls_prefix) - 1) == 0)
    copy_str(s->tls, sizeof(s->tls), msg + sizeof(tls_prefix) - 1);
  else if (strcmp(area, "sasl") == 0 &&
           strncmp(msg, sasl_prefix, sizeof(sasl_prefix) - 1) == 0)
    copy_str(s->sasl, sizeof(s->sasl), msg + sizeof(sasl_prefix) - 1);
  /* ROSTER_RECEIVED fires only on success, and the fetch at session start
   * has no callback: its failure shows only as a warning ("roster fetch
   * failed: ...", "no roster fetch at session start: ..."). */
  else if (s->roster && !s->roster_received && level <= KITH_LOG_WARN &&
           strcmp(area, "roster") == 0 && strstr(msg, "fetch"))
    copy_str(s->roster_error, sizeof(s->roster_error), msg);
}

static void session_log(void *ud, kith_log_level_t level, const char *area,
                        const char *msg)
{
  cli_session_t *s = ud;

  remember_from_log(s, level, area, msg);
  if (level > verbose_level(s->cli->verbose))
    return;
  fflush(stdout);
  if (s->label) {
    char who[128];
    /* Several connections share stderr in the demo: say whose line in the
     * area ("alice/session"), leaving the message (maybe XML) whole. */
    snprintf(who, sizeof(who), "%s/%s", s->label, area);
    kith_log_stderr(NULL, level, who, msg);
  } else {
    kith_log_stderr(NULL, level, area, msg);
  }
}

static void session_event(kith_conn_t *conn, const kith_event_t *ev, void *ud)
{
  cli_session_t *s = ud;

  switch (ev->type) {
  case KITH_EVENT_SESSION_START:
    s->started = 1;
    copy_str(s->jid, sizeof(s->jid), ev->jid ? ev->jid : kith_conn_jid(conn));
    s->started_ms = cli_now_exact_ms() - s->connect_at_ms;
    if (s->on_start)
      s->on_start(s, s->on_start_ud);
    break;
  case KITH_EVENT_ROSTER_RECEIVED:
    s->roster_received = 1;
    break;
  case KITH_EVENT_STORE_ERROR:
    snprintf(s->store_error, sizeof(s->store_error), "%s: %s",
             kith_store_uri(s->store),
             ev->text && *ev->text ? ev->text : kith_strerror(ev->status));
    break;
  case KITH_EVENT_DISCONNECTED:
    s->ended = 1;
    s->status = ev->status;
    copy_str(s->text, sizeof(s->text),
             ev->text && *ev->text ? ev->text : kith_strerror(ev->status));
    break;
  default:
    break;
  }
}

static kith_status_t configure(cli_session_t *s, const cli_target_t *t)
{
  kith_conn_t *c = s->conn;
  kith_status_t rc;
  unsigned ms = s->cli->timeout_ms;

  if (t->component)
    rc = kith_conn_set_component(c, t->component, t->secret);
  else
    rc = kith_conn_set_jid(c, t->jid);
  if (rc == KITH_OK && !t->component)
    rc = kith_conn_set_password(c, t->password);
  if (rc == KITH_OK && t->host)
    rc = kith_conn_set_server(c, t->host, t->port);
  if (rc == KITH_OK && t->ca_file)
    rc = kith_conn_set_ca_file(c, t->ca_file);
  if (rc == KITH_OK && t->insecure)
    rc = kith_conn_set_insecure_skip_verify(c, 1);
  if (rc == KITH_OK)
    rc = kith_conn_set_timeouts(c, ms, CLI_CLOSE_TIMEOUT_MS);
  if (rc == KITH_OK)
    rc = kith_conn_set_iq_timeout(c, ms);
  return rc;
}

/* The normalized bare JID of `jid` into `buf` ("" when invalid). */
static void bare_of(const char *jid, char *buf, size_t size)
{
  char *bare = NULL;

  if (kith_jid_normalize(NULL, jid, 1, &bare, NULL) == KITH_OK)
    copy_str(buf, size, bare);
  else
    copy_str(buf, size, "");
  kith_free(NULL, bare);
}

kith_status_t cli_session_open(cli_session_t *s, const cli_t *cli,
                               const char *label, const cli_target_t *t)
{
  kith_status_t rc;
  kith_log_level_t level = verbose_level(cli->verbose);

  memset(s, 0, sizeof(*s));
  s->cli = cli;
  s->label = label;
  s->component = t->component != NULL;
  if (t->jid)
    bare_of(t->jid, s->account, sizeof(s->account));
  rc = kith_ctx_new(NULL, &s->ctx);
  if (rc != KITH_OK)
    goto fail;
  /* Info lines are always requested so that remember_from_log() sees
   * them; session_log() filters what reaches stderr. */
  kith_ctx_set_log(s->ctx, level > KITH_LOG_INFO ? level : KITH_LOG_INFO,
                   session_log, s);
  rc = kith_conn_new(s->ctx, &s->conn);
  if (rc == KITH_OK)
    rc = configure(s, t);
  if (rc == KITH_OK &&
      kith_conn_on(s->conn, KITH_EVENT_ANY, session_event, s) == 0)
    rc = KITH_ENOMEM;
  if (rc != KITH_OK)
    goto fail;
  s->connect_at_ms = cli_now_exact_ms();
  rc = kith_conn_connect(s->conn);
  if (rc == KITH_OK)
    return KITH_OK;
fail:
  s->status = rc;
  copy_str(s->text, sizeof(s->text),
           s->conn && *kith_conn_error_text(s->conn)
               ? kith_conn_error_text(s->conn)
               : kith_strerror(rc));
  return rc;
}

/* Open the store and put the roster on it; for a client, load the cached
 * roster now. On failure s->text says why. */
static kith_status_t use_store(cli_session_t *s, const char *uri)
{
  kith_status_t rc =
      open_store(s->ctx, uri, &s->store, s->text, sizeof(s->text));
  char again[1024];

  /* A client's cache the server can refill: a SQLite file damaged past
   * opening is set aside and the roster fetched whole (on_corrupt=reset),
   * saying so; a component's store is never thrown away. */
  if (rc == KITH_ECORRUPT && !s->component && strncmp(uri, "sqlite:", 7) == 0 &&
      strstr(uri, "on_corrupt=") == NULL &&
      (size_t)snprintf(again, sizeof(again), "%s%con_corrupt=reset", uri,
                       strchr(uri, '?') ? '&' : '?') < sizeof(again)) {
    fprintf(stderr,
            "kith: %s; setting it aside and fetching the whole "
            "roster\n",
            s->text);
    s->text[0] = '\0';
    rc = open_store(s->ctx, again, &s->store, s->text, sizeof(s->text));
  }
  if (rc != KITH_OK)
    return rc;
  rc = kith_roster_set_store(s->roster, s->store);
  if (rc != KITH_OK || s->component || !s->account[0])
    return rc;
  /* ENOTFOUND is a first run. A damaged cache is reset and fetched whole
   * at session start, which the library logs; only a store that cannot
   * be read at all stops us here. */
  rc = kith_roster_load(s->roster, s->account, NULL);
  if (rc == KITH_ESTORE) {
    snprintf(s->text, sizeof(s->text), "cannot read the store %s: %s",
             kith_store_uri(s->store), kith_store_errmsg(s->store));
    return rc;
  }
  return KITH_OK;
}

kith_status_t cli_session_attach_roster(cli_session_t *s, int initial_presence,
                                        const char *store_uri)
{
  kith_status_t rc = kith_roster_new(s->ctx, &s->roster);

  if (rc == KITH_OK && store_uri)
    rc = use_store(s, store_uri);
  if (rc != KITH_OK) {
    if (!s->text[0])
      copy_str(s->text, sizeof(s->text), kith_strerror(rc));
    return rc;
  }
  kith_roster_set_initial_presence(s->roster, initial_presence);
  kith_roster_set_auto_authorize(s->roster, KITH_AUTHORIZE_MANUAL);
  kith_roster_set_auto_subscribe(s->roster, 0);
  rc = kith_roster_attach(s->roster, s->conn);
  if (rc != KITH_OK)
    snprintf(s->text, sizeof(s->text), "cannot attach a roster: %s",
             kith_strerror(rc));
  return rc;
}

int cli_session_store_check(const cli_session_t *s, int code)
{
  if (code != CLI_EXIT_OK || !s->store_error[0])
    return code;
  return cli_fail(s->cli, KITH_ESTORE,
                  "cannot write the roster to the store %s", s->store_error);
}

int cli_roster_login(const cli_t *cli, cli_session_t *s, int initial_presence)
{
  cli_session_t *ss[1] = {s};
  cli_target_t t;
  char buf[1200];
  kith_status_t rc;
  int code;

  memset(s, 0, sizeof(*s));
  code = cli_target_from_options(cli, &t);
  if (code != CLI_EXIT_OK)
    return code;
  if (t.component)
    return cli_usage_error(cli, "roster commands need a client account "
                                "(--jid), not --component");
  rc = cli_session_open(s, cli, NULL, &t);
  if (rc != KITH_OK)
    return cli_fail(cli, rc, "%s", cli_session_error(s));
  rc = cli_session_attach_roster(s, initial_presence, cli_store_uri(cli));
  if (rc == KITH_EINVAL)
    return cli_usage_error(cli, "%s", cli_session_error(s));
  if (rc != KITH_OK)
    return cli_fail(cli, rc, "%s", cli_session_error(s));
  rc = cli_wait_roster(cli, ss, 1);
  if (rc != KITH_OK)
    return cli_fail(cli, rc, "%s", cli_wait_error(cli, rc, buf, sizeof(buf)));
  if (!s->started || s->ended)
    return cli_fail(cli, s->status, "%s", cli_session_error(s));
  if (!s->roster_received)
    return cli_fail(cli, KITH_OK, "%s", s->roster_error);
  return CLI_EXIT_OK;
}

void cli_session_free(cli_session_t *s)
{
  /* The roster first: it detaches from the connection and writes what is
   * left to its store, and all of them need the context. */
  kith_roster_free(s->roster);
  s->roster = NULL;
  kith_store_close(s->store);
  s->store = NULL;
  kith_conn_free(s->conn);
  s->conn = NULL;
  kith_ctx_free(s->ctx);
  s->ctx = NULL;
}

void cli_session_domain(const cli_session_t *s, char *buf, size_t size)
{
  kith_jid_t *j = NULL;

  if (kith_jid_parse(NULL, s->jid, &j, NULL) == KITH_OK)
    snprintf(buf, size, "%s", kith_jid_domain(j));
  else if (size > 0)
    buf[0] = '\0';
  kith_jid_free(j);
}

const char *cli_session_error(const cli_session_t *s)
{
  if (s->text[0])
    return s->text;
  return kith_strerror(s->status);
}

kith_status_t cli_wait(const cli_t *cli, cli_session_t *const *ss, size_t n,
                       cli_done_fn done, void *ud)
{
  kith_conn_t *conns[CLI_MAX_SESSIONS];
  size_t i, m = 0;

  for (i = 0; i < n && m < CLI_MAX_SESSIONS; i++)
    if (ss[i]->conn)
      conns[m++] = ss[i]->conn;
  for (;;) {
    uint64_t now;
    long wait;
    kith_status_t rc;

    if (done(ud))
      return KITH_OK;
    if (cli_interrupted)
      return KITH_ECANCELED;
    now = cli_now_ms();
    if (now >= cli->deadline_ms)
      return KITH_ETIMEDOUT;
    wait = (long)(cli->deadline_ms - now);
    if (wait > CLI_TICK_MS)
      wait = CLI_TICK_MS;
    rc = kith_run_once(conns, m, wait);
    if (rc != KITH_OK)
      return rc;
  }
}

typedef struct session_set {
  cli_session_t *const *ss;
  size_t n;
} session_set_t;

static int all_started_or_ended(void *ud)
{
  const session_set_t *set = ud;
  size_t i;

  for (i = 0; i < set->n; i++)
    if (!set->ss[i]->started && !set->ss[i]->ended)
      return 0;
  return 1;
}

kith_status_t cli_wait_started(const cli_t *cli, cli_session_t *const *ss,
                               size_t n)
{
  session_set_t set = {ss, n};

  return cli_wait(cli, ss, n, all_started_or_ended, &set);
}

static int all_have_roster(void *ud)
{
  const session_set_t *set = ud;
  size_t i;

  for (i = 0; i < set->n; i++) {
    const cli_session_t *s = set->ss[i];
    if (!s->ended && !s->roster_received && !s->roster_error[0])
      return 0;
  }
  return 1;
}

kith_status_t cli_wait_roster(const cli_t *cli, cli_session_t *const *ss,
                              size_t n)
{
  session_set_t set = {ss, n};

  return cli_wait(cli, ss, n, all_have_roster, &set);
}

static int any_closing(cli_session_t *const *ss, size_t n)
{
  size_t i;

  for (i = 0; i < n; i++)
    if (ss[i]->close_requested && kith_conn_is_active(ss[i]->conn))
      return 1;
  return 0;
}

kith_status_t cli_close_sessions(const cli_t *cli, cli_session_t *const *ss,
                                 size_t n)
{
  cli_t closing = *cli;
  kith_status_t rc = KITH_OK;
  int first_signals = (int)cli_interrupted;
  size_t i;

  /* Only a session that started is worth a clean close; one still
   * negotiating (after a timeout, say) is cut off by cli_session_free()
   * instead of making the user wait for a silent server. */
  for (i = 0; i < n; i++) {
    if (ss[i]->conn && kith_conn_is_ready(ss[i]->conn)) {
      ss[i]->close_requested = 1;
      kith_conn_disconnect(ss[i]->conn);
    }
  }
  closing.deadline_ms = cli_now_ms() + CLI_CLOSE_GRACE_MS;
  while (any_closing(ss, n)) {
    kith_conn_t *conns[CLI_MAX_SESSIONS];
    size_t m = 0;
    uint64_t now = cli_now_ms();

    /* One more Ctrl-C than we had when the close began: stop waiting. */
    if ((int)cli_interrupted > first_signals)
      return KITH_ECANCELED;
    if (now >= closing.deadline_ms)
      return KITH_ETIMEDOUT;
    for (i = 0; i < n && m < CLI_MAX_SESSIONS; i++)
      if (ss[i]->conn)
        conns[m++] = ss[i]->conn;
    if (kith_run_once(conns, m, CLI_TICK_MS) != KITH_OK)
      return KITH_EIO;
  }
  for (i = 0; i < n; i++)
    if (ss[i]->close_requested && ss[i]->status != KITH_OK && rc == KITH_OK)
      rc = ss[i]->status;
  return rc;
}

const char *cli_wait_error(const cli_t *cli, kith_status_t rc, char *buf,
                           size_t size)
{
  switch (rc) {
  case KITH_ETIMEDOUT:
    snprintf(buf, size, "timed out after %.3g s (see --timeout)",
             cli->timeout_ms / 1000.0);
    break;
  case KITH_ECANCELED:
    snprintf(buf, size, "interrupted");
    break;
  default:
    snprintf(buf, size, "%s", kith_strerror(rc));
    break;
  }
  return buf;
}
