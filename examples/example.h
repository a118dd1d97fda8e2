/*
 * example.h: the plumbing every example shares: copy it along with the
 * example. None of it is about rosters; it reads the command line and the
 * environment, configures a kith_conn_t from them and runs kith_run_once()
 * until a deadline.
 *
 * The options, each with a value:
 *
 *   --jid JID             log in as JID (default $KITH_JID)
 *   --server HOST[:PORT]  connect there (default: a DNS SRV lookup)
 *   --ca-file FILE        trust these CAs (default: the system's)
 *   --timeout SECONDS     or --for SECONDS, as the example chooses
 *
 * The password comes only from $KITH_PASSWORD, never from the command
 * line, where `ps` would show it. A component (example_init_component())
 * takes --domain DOMAIN instead of --jid and --ca-file, needs --server
 * (there is no DNS lookup for components) and reads its secret from
 * $KITH_COMPONENT_SECRET.
 *
 *   example_t ex;
 *   int i;
 *
 *   example_init(&ex, "--timeout", 30);
 *   for (i = 1; example_option(&ex, argc, argv, &i); i++)
 *     ;  // the example's own options and operands start at argv[i]
 *   if (!example_complete(&ex)) { example_usage(&ex, argv[0], "ARGS"); ... }
 *   kith_conn_new(NULL, &conn);
 *   if (example_configure(&ex, conn) != 0) ...  // exit status 2
 *   example_run(&ex, conn, NULL, NULL);         // connects, then runs
 *
 * An example with a loop of its own and no options of its own needs only
 * example_init() and example_setup().
 *
 * The functions are static inline, as in kith's own header-only adapters,
 * so that an example that uses only some of them builds without warnings.
 */
#ifndef KITH_EXAMPLE_H
#define KITH_EXAMPLE_H

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <kith/kith.h>

typedef struct example {
  int component;        /* a XEP-0114 component: --domain, a secret */
  const char *jid;      /* --jid or $KITH_JID; a component's --domain */
  const char *password; /* $KITH_PASSWORD; a component's secret */
  const char *server;   /* --server HOST[:PORT]; NULL: DNS SRV */
  const char *ca_file;  /* --ca-file; NULL: the system's CAs */
  const char *time_opt; /* "--timeout" or "--for" */
  double seconds;       /* its value */
} example_t;

/* A client logging in as $KITH_JID with $KITH_PASSWORD unless the options
 * say otherwise; TIME_OPT ("--timeout", "--for") sets SECONDS. */
static inline void example_init(example_t *ex, const char *time_opt,
                                double seconds)
{
  memset(ex, 0, sizeof(*ex));
  ex->jid = getenv("KITH_JID");
  ex->password = getenv("KITH_PASSWORD");
  ex->time_opt = time_opt;
  ex->seconds = seconds;
}

/* A component: --domain, a --server of its own and $KITH_COMPONENT_SECRET;
 * --for sets SECONDS. */
static inline void example_init_component(example_t *ex, double seconds)
{
  example_init(ex, "--for", seconds);
  ex->component = 1;
  ex->jid = NULL; /* --domain only */
  ex->password = getenv("KITH_COMPONENT_SECRET");
}

/* If argv[*i] is one of the options above and has its value, takes both
 * (*i then indexes the value) and returns 1; otherwise returns 0. */
static inline int example_option(example_t *ex, int argc, char **argv, int *i)
{
  const char *opt = *i + 1 < argc ? argv[*i] : "";
  const char **value = NULL;

  if (strcmp(opt, "--server") == 0)
    value = &ex->server;
  else if (strcmp(opt, ex->component ? "--domain" : "--jid") == 0)
    value = &ex->jid;
  else if (!ex->component && strcmp(opt, "--ca-file") == 0)
    value = &ex->ca_file;
  else if (strcmp(opt, ex->time_opt) == 0)
    ex->seconds = atof(argv[*i + 1]);
  else
    return 0;
  if (value)
    *value = argv[*i + 1];
  ++*i;
  return 1;
}

/* Whether there is enough to log in with. */
static inline int example_complete(const example_t *ex)
{
  return ex->jid && ex->password && (ex->server || !ex->component);
}

/* A client's usage line; OPERANDS ("" for none) follow the options. */
static inline void example_usage(const example_t *ex, const char *argv0,
                                 const char *operands)
{
  fprintf(stderr,
          "usage: KITH_PASSWORD=... %s [--jid JID] [--server HOST[:PORT]] "
          "[--ca-file FILE] [%s SECONDS]%s%s\n",
          argv0, ex->time_opt, operands[0] ? " " : "", operands);
}

/* --server HOST[:PORT]; no port (0) means the service's usual one. */
static inline kith_status_t example_set_server(kith_conn_t *conn,
                                               const char *spec)
{
  char host[256];
  const char *colon = strrchr(spec, ':');
  size_t len = colon ? (size_t)(colon - spec) : strlen(spec);

  if (len == 0 || len >= sizeof(host))
    return KITH_EINVAL;
  memcpy(host, spec, len);
  host[len] = '\0';
  return kith_conn_set_server(conn, host,
                              colon ? (unsigned)atoi(colon + 1) : 0);
}

/* Gives CONN the login, the server and the CAs. Returns KITH_OK, or an
 * error for a malformed JID, domain or --server. */
static inline kith_status_t example_apply(const example_t *ex,
                                          kith_conn_t *conn)
{
  kith_status_t rc;

  if (ex->component)
    rc = kith_conn_set_component(conn, ex->jid, ex->password);
  else if ((rc = kith_conn_set_jid(conn, ex->jid)) == KITH_OK)
    rc = kith_conn_set_password(conn, ex->password);
  if (rc == KITH_OK && ex->server)
    rc = example_set_server(conn, ex->server);
  if (rc == KITH_OK && ex->ca_file)
    rc = kith_conn_set_ca_file(conn, ex->ca_file);
  return rc;
}

/* example_apply(), saying what is wrong. Returns 0, or 2: the exit status
 * for a usage error. */
static inline int example_configure(const example_t *ex, kith_conn_t *conn)
{
  if (example_apply(ex, conn) == KITH_OK)
    return 0;
  fprintf(stderr, "invalid %s %s or --server %s\n",
          ex->component ? "--domain" : "--jid", ex->jid,
          ex->server ? ex->server : "-");
  return 2;
}

/* For an example whose only options are those above: reads them all and
 * applies them to CONN. Returns 0, or 2 after printing the usage. */
static inline int example_setup(example_t *ex, int argc, char **argv,
                                kith_conn_t *conn)
{
  int i;

  for (i = 1; example_option(ex, argc, argv, &i); i++)
    ;
  if (i < argc || !example_complete(ex) || example_apply(ex, conn) != KITH_OK) {
    example_usage(ex, argv[0], "");
    return 2;
  }
  return 0;
}

/* ---- Running: kith_run(), with an end ---------------------------------- */

static volatile sig_atomic_t example_stopped; /* by SIGINT or SIGTERM */

static inline void example_on_signal(int sig)
{
  (void)sig;
  example_stopped = 1;
}

/* SIGINT and SIGTERM then end example_run() as the time running out does. */
static inline void example_stop_on_signals(void)
{
  signal(SIGINT, example_on_signal);
  signal(SIGTERM, example_on_signal);
}

static inline double example_now(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* What example_run() calls at the end, just before it disconnects. */
typedef void example_end_fn(kith_conn_t *conn, void *ud);

/* An example_end_fn for when running out of time is a failure; UD is the
 * example_t. */
static inline void example_timed_out(kith_conn_t *conn, void *ud)
{
  const example_t *ex = ud;

  (void)conn;
  fprintf(stderr, "timed out after %g s\n", ex->seconds);
}

/* Connects CONN and runs it one round at a time (at most 100 ms each)
 * until the session has ended. Once ex->seconds have passed or a signal
 * came (example_stop_on_signals()), it calls AT_END (unless NULL) and asks
 * for a clean disconnect, once: what was queued goes out first. */
static inline void example_run(const example_t *ex, kith_conn_t *conn,
                               example_end_fn *at_end, void *ud)
{
  double end;
  int asked = 0;

  if (kith_conn_connect(conn) != KITH_OK) {
    fprintf(stderr, "connect: %s\n", kith_conn_error_text(conn));
    return;
  }
  end = example_now() + ex->seconds;
  while (kith_conn_is_active(conn)) {
    kith_run_once(&conn, 1, 100);
    if (!asked && (example_stopped || example_now() >= end)) {
      if (at_end)
        at_end(conn, ud);
      kith_conn_disconnect(conn);
      asked = 1;
    }
  }
}

#endif /* KITH_EXAMPLE_H */
