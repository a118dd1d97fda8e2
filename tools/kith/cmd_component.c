/*
 * kith component: serve a XEP-0114 component whose per-JID rosters live
 * in a store, and print every event, one line each, as `kith watch` does.
 *
 * The roster acts as the server for its nodes (kith/roster.h): it answers
 * subscription stanzas and probes and keeps every change in the store.
 * At start every owner of the domain the store knows is loaded, so that
 * the roster probes their contacts when the session starts; --serve adds
 * JIDs that are not stored yet. Nodes used later load from the store on
 * their own. --memory-limit bounds the nodes in memory once those
 * start-up probes are out.
 */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COMP_OPT_DOMAIN (CLI_OPT_CMD_BASE + 0)
#define COMP_OPT_AUTO_AUTHORIZE (CLI_OPT_CMD_BASE + 1)
#define COMP_OPT_AUTO_SUBSCRIBE (CLI_OPT_CMD_BASE + 2)
#define COMP_OPT_NO_AUTO_SUBSCRIBE (CLI_OPT_CMD_BASE + 3)
#define COMP_OPT_SERVE (CLI_OPT_CMD_BASE + 4)
#define COMP_OPT_FOR (CLI_OPT_CMD_BASE + 5)
#define COMP_OPT_MEMORY_LIMIT (CLI_OPT_CMD_BASE + 6)

/* The longest --for: 30 days, as for watch. */
#define COMP_FOR_MAX_S 2592000.0

typedef struct component {
  cli_t *cli;
  cli_session_t s;
  char *domain; /* normalized (kith_free) */
  const char *policy_name;
  kith_auto_authorize_t policy;
  int auto_subscribe;
  double for_s;        /* 0: until a signal */
  size_t memory_limit; /* bytes; 0: unbounded */
  size_t skipped;      /* stored owners of other domains */
  int printing;        /* session_start printed */
  int out_failed;      /* stdout went away */
} component_t;

/* ---- Options ------------------------------------------------------------ */

/* BYTES, optionally with a K, M or G suffix (powers of 1024). */
static int parse_bytes(component_t *c, const char *arg)
{
  char *end;
  unsigned long long v, mul = 1;

  errno = 0;
  v = strtoull(arg, &end, 10);
  if (*end == 'K' || *end == 'k')
    mul = 1024ull, end++;
  else if (*end == 'M' || *end == 'm')
    mul = 1024ull * 1024, end++;
  else if (*end == 'G' || *end == 'g')
    mul = 1024ull * 1024 * 1024, end++;
  if (errno || end == arg || *arg < '0' || *arg > '9' || *end != '\0' ||
      v > (unsigned long long)SIZE_MAX / mul)
    return cli_usage_error(c->cli,
                           "--memory-limit takes bytes (with K, M or G for "
                           "KiB, MiB, GiB; 0: no bound), not '%s'",
                           arg);
  c->memory_limit = (size_t)(v * mul);
  return CLI_EXIT_OK;
}

/* --domain, or the global --component: the same thing said twice. */
static int parse_domain(component_t *c)
{
  cli_t *cli = c->cli;
  const char *d = cli_cmd_opt(cli, COMP_OPT_DOMAIN);
  const char *reason = NULL;

  if (d && cli->component && strcmp(d, cli->component) != 0)
    return cli_usage_error(cli, "--domain %s and --component %s disagree", d,
                           cli->component);
  if (d == NULL)
    d = cli->component;
  if (d == NULL)
    return cli_usage_error(cli, "component needs --domain DOMAIN");
  cli->component = d;
  if (kith_jid_normalize(NULL, d, 1, &c->domain, &reason) != KITH_OK)
    return cli_usage_error(cli, "invalid component domain '%s': %s", d,
                           reason ? reason : "malformed");
  return CLI_EXIT_OK;
}

/* Is `jid` (normalized) a JID of `domain`: local@domain or the domain? */
static int at_domain(const char *jid, const char *domain)
{
  const char *at = strchr(jid, '@');
  const char *dom = at ? at + 1 : jid;

  return strcmp(dom, domain) == 0 && strchr(dom, '/') == NULL;
}

/* Every --serve is a bare JID user@domain. */
static int check_served(const component_t *c)
{
  const cli_t *cli = c->cli;
  size_t i;

  for (i = 0; i < cli->n_cmd_opts; i++) {
    const char *jid = cli->cmd_opts[i].arg;
    const char *reason = NULL;
    char *norm = NULL;
    int ok;

    if (cli->cmd_opts[i].val != COMP_OPT_SERVE)
      continue;
    if (kith_jid_normalize(NULL, jid, 0, &norm, &reason) != KITH_OK)
      return cli_usage_error(cli, "invalid --serve JID '%s': %s", jid,
                             reason ? reason : "malformed");
    ok = at_domain(norm, c->domain) && strchr(norm, '@') != NULL;
    kith_free(NULL, norm);
    if (!ok)
      return cli_usage_error(cli,
                             "--serve takes a bare JID at %s (user@%s), "
                             "not '%s'",
                             c->domain, c->domain, jid);
  }
  return CLI_EXIT_OK;
}

static int parse_options(component_t *c)
{
  cli_t *cli = c->cli;
  const char *pol = cli_cmd_opt(cli, COMP_OPT_AUTO_AUTHORIZE);
  const char *f = cli_cmd_opt(cli, COMP_OPT_FOR);
  const char *mem = cli_cmd_opt(cli, COMP_OPT_MEMORY_LIMIT);
  size_t i;
  int code = parse_domain(c);

  /* Never the default client cache, nor $KITH_STORE: a component's
   * rosters exist only in its store, so where is never implied. */
  if (code == CLI_EXIT_OK && !cli->store_given)
    code = cli_usage_error(cli, "component needs --store URI: its rosters "
                                "live there and nowhere else");
  /* Accept by default: no one else is there to answer. */
  c->policy_name = "accept";
  c->policy = KITH_AUTHORIZE_ACCEPT;
  if (code == CLI_EXIT_OK && pol)
    code = cli_parse_policy(cli, pol, &c->policy, &c->policy_name);
  c->auto_subscribe = 1;
  for (i = 0; i < cli->n_cmd_opts; i++) {
    if (cli->cmd_opts[i].val == COMP_OPT_AUTO_SUBSCRIBE)
      c->auto_subscribe = 1;
    else if (cli->cmd_opts[i].val == COMP_OPT_NO_AUTO_SUBSCRIBE)
      c->auto_subscribe = 0;
  }
  if (code == CLI_EXIT_OK && f)
    code = cli_parse_seconds(cli, "--for", f, COMP_FOR_MAX_S, &c->for_s);
  if (code == CLI_EXIT_OK && mem)
    code = parse_bytes(c, mem);
  if (code == CLI_EXIT_OK)
    code = check_served(c);
  return code;
}

/* ---- Owners ------------------------------------------------------------- */

typedef struct owner_list {
  const char *domain;
  char **v;
  size_t n, cap;
  size_t skipped;
  int nomem;
} owner_list_t;

static kith_status_t collect_owner(void *ud, const char *owner)
{
  owner_list_t *l = ud;
  char **v;

  if (!at_domain(owner, l->domain)) {
    l->skipped++;
    return KITH_OK;
  }
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 64;
    if ((v = realloc(l->v, cap * sizeof(*v))) == NULL)
      goto nomem;
    l->v = v;
    l->cap = cap;
  }
  if ((l->v[l->n] = strdup(owner)) == NULL)
    goto nomem;
  l->n++;
  return KITH_OK;
nomem:
  l->nomem = 1;
  return KITH_ENOMEM;
}

/* Load one owner; a roster we cannot read must not be served (its next
 * change would overwrite the stored one with a partial copy). */
static int load_owner(component_t *c, const char *owner)
{
  kith_status_t rc = kith_roster_load(c->s.roster, owner, NULL);

  if (rc == KITH_OK)
    return CLI_EXIT_OK;
  return cli_fail(c->cli, rc,
                  "cannot read the roster of %s from the store %s: %s", owner,
                  kith_store_uri(c->s.store),
                  *kith_store_errmsg(c->s.store) ? kith_store_errmsg(c->s.store)
                                                 : kith_strerror(rc));
}

/* Every owner of our domain the store lists, into memory. */
static int load_owners(component_t *c)
{
  owner_list_t l;
  kith_status_t rc;
  size_t i;
  int code = CLI_EXIT_OK;

  memset(&l, 0, sizeof(l));
  l.domain = c->domain;
  rc = kith_store_owners(c->s.store, collect_owner, &l);
  if (rc != KITH_OK)
    code = cli_fail(c->cli, rc, "cannot list the owners in the store %s: %s",
                    kith_store_uri(c->s.store),
                    l.nomem ? kith_strerror(KITH_ENOMEM)
                            : kith_store_errmsg(c->s.store));
  for (i = 0; code == CLI_EXIT_OK && i < l.n; i++)
    code = load_owner(c, l.v[i]);
  for (i = 0; i < l.n; i++)
    free(l.v[i]);
  free(l.v);
  c->skipped = l.skipped;
  if (code == CLI_EXIT_OK && l.skipped)
    cli_warn("component: %zu owner%s in %s %s not at %s: not served", l.skipped,
             l.skipped == 1 ? "" : "s", kith_store_uri(c->s.store),
             l.skipped == 1 ? "is" : "are", c->domain);
  return code;
}

/* --serve JID: a node for each, loaded from the store or new (the JIDs
 * were checked by check_served()). */
static int add_served(component_t *c)
{
  const cli_t *cli = c->cli;
  size_t i;

  for (i = 0; i < cli->n_cmd_opts; i++) {
    const char *jid = cli->cmd_opts[i].arg;
    kith_status_t rc;

    if (cli->cmd_opts[i].val != COMP_OPT_SERVE)
      continue;
    rc = kith_roster_add_node(c->s.roster, jid, NULL);
    if (rc != KITH_OK)
      return cli_fail(cli, rc, "cannot serve %s: %s", jid,
                      rc == KITH_ESTORE || rc == KITH_ECORRUPT
                          ? kith_store_errmsg(c->s.store)
                          : kith_strerror(rc));
  }
  return CLI_EXIT_OK;
}

/* ---- Printing ----------------------------------------------------------- */

static void print_start(component_t *c, const char *jid)
{
  size_t owners = kith_roster_node_count(c->s.roster);
  const char *uri = kith_store_uri(c->s.store);

  if (c->cli->json) {
    json_t *o = json_pack("{s:s, s:s, s:s, s:b, s:s, s:I}", "event",
                          "session_start", "jid", jid, "auto_authorize",
                          c->policy_name, "auto_subscribe", c->auto_subscribe,
                          "store", uri, "owners", (json_int_t)owners);
    json_dumpf(o, stdout, JSON_COMPACT);
    json_decref(o);
  } else {
    printf("session_start %s auto_authorize=%s auto_subscribe=%s store=", jid,
           c->policy_name, c->auto_subscribe ? "on" : "off");
    cli_put_value(stdout, uri);
    printf(" owners=%zu", owners);
  }
  if (cli_end_line() != 0)
    c->out_failed = 1;
}

static void on_event(kith_conn_t *conn, const kith_event_t *ev, void *ud)
{
  component_t *c = ud;

  if (ev->type == KITH_EVENT_SESSION_START) {
    c->printing = 1;
    print_start(c, ev->jid ? ev->jid : kith_conn_jid(conn));
    /* The roster's own handler ran first and probed every node in
     * memory; from now on the bound may send idle ones back. */
    if (c->memory_limit)
      kith_roster_set_memory_limit(c->s.roster, c->memory_limit);
    return;
  }
  if (c->printing && !c->out_failed &&
      cli_event_print(c->cli, c->s.roster, ev) != 0)
    c->out_failed = 1;
}

/* ---- Running ------------------------------------------------------------ */

static int open_component(component_t *c)
{
  cli_session_t *ss[1] = {&c->s};
  cli_target_t t;
  char buf[1200];
  kith_status_t rc;
  int code = cli_target_from_options(c->cli, &t);

  if (code != CLI_EXIT_OK)
    return code;
  rc = cli_session_open(&c->s, c->cli, NULL, &t);
  if (rc != KITH_OK)
    return cli_fail(c->cli, rc, "%s", cli_session_error(&c->s));
  rc = cli_session_attach_roster(&c->s, 0, c->cli->store);
  if (rc == KITH_EINVAL)
    return cli_usage_error(c->cli, "%s", cli_session_error(&c->s));
  if (rc != KITH_OK)
    return cli_fail(c->cli, rc, "%s", cli_session_error(&c->s));
  kith_roster_set_auto_authorize(c->s.roster, c->policy);
  kith_roster_set_auto_subscribe(c->s.roster, c->auto_subscribe);
  /* The loop has not run yet: everything is loaded before the session
   * starts, and the roster's start-up probes cover it all. */
  code = load_owners(c);
  if (code == CLI_EXIT_OK)
    code = add_served(c);
  if (code != CLI_EXIT_OK)
    return code;
  if (kith_conn_on(c->s.conn, KITH_EVENT_ANY, on_event, c) == 0)
    return cli_fail(c->cli, KITH_ENOMEM, "%s", kith_strerror(KITH_ENOMEM));
  rc = cli_wait_started(c->cli, ss, 1);
  if (rc != KITH_OK)
    return cli_fail(c->cli, rc, "%s",
                    cli_wait_error(c->cli, rc, buf, sizeof(buf)));
  if (!c->s.started)
    return cli_fail(c->cli, c->s.status, "%s", cli_session_error(&c->s));
  return CLI_EXIT_OK;
}

static int ended_or_broken(void *ud)
{
  const component_t *c = ud;

  return c->s.ended || c->out_failed;
}

/* Serve until --for runs out, a signal arrives or the server goes away. */
static int serve(component_t *c)
{
  cli_session_t *ss[1] = {&c->s};
  cli_t until = *c->cli;
  kith_status_t rc;

  until.deadline_ms = c->for_s > 0
                          ? cli_now_ms() + (uint64_t)(c->for_s * 1000.0 + 0.5)
                          : UINT64_MAX;
  rc = cli_wait(&until, ss, 1, ended_or_broken, c);
  if (rc != KITH_OK && rc != KITH_ETIMEDOUT && rc != KITH_ECANCELED)
    return cli_fail(c->cli, rc, "%s", kith_strerror(rc));
  if (c->out_failed)
    return CLI_EXIT_FAIL; /* nobody left to tell */
  if (c->s.ended)
    return cli_fail(c->cli, c->s.status, "%s", cli_session_error(&c->s));
  return CLI_EXIT_OK;
}

static int run_component(cli_t *cli, int argc, char **argv)
{
  cli_session_t *ss[1];
  component_t *c = calloc(1, sizeof(*c));
  int code;
  kith_status_t rc;

  (void)argc;
  (void)argv;
  if (c == NULL)
    return cli_fail(cli, KITH_ENOMEM, "%s", kith_strerror(KITH_ENOMEM));
  c->cli = cli;
  ss[0] = &c->s;
  code = parse_options(c);
  if (code == CLI_EXIT_OK)
    code = open_component(c);
  if (code == CLI_EXIT_OK)
    code = serve(c);
  /* Freeing the roster sends unavailable from every owner that was
   * available and writes what is left; then the stream closes. */
  kith_roster_free(c->s.roster);
  c->s.roster = NULL;
  rc = cli_close_sessions(cli, ss, 1);
  if (rc != KITH_OK && code == CLI_EXIT_OK)
    code = cli_fail(cli, rc, "the connection did not close cleanly: %s",
                    rc == KITH_ETIMEDOUT || rc == KITH_ECANCELED
                        ? kith_strerror(rc)
                        : cli_session_error(&c->s));
  cli_session_free(&c->s);
  kith_free(NULL, c->domain);
  free(c);
  return code;
}

static const struct option component_options[] = {
    {"domain", required_argument, NULL, COMP_OPT_DOMAIN},
    {"auto-authorize", required_argument, NULL, COMP_OPT_AUTO_AUTHORIZE},
    {"auto-subscribe", no_argument, NULL, COMP_OPT_AUTO_SUBSCRIBE},
    {"no-auto-subscribe", no_argument, NULL, COMP_OPT_NO_AUTO_SUBSCRIBE},
    {"serve", required_argument, NULL, COMP_OPT_SERVE},
    {"for", required_argument, NULL, COMP_OPT_FOR},
    {"memory-limit", required_argument, NULL, COMP_OPT_MEMORY_LIMIT},
    {NULL, 0, NULL, 0},
};

const cli_command_t cli_cmd_component = {
    "component",
    "component --domain D --secret-env VAR --store URI",
    "serve a component (XEP-0114), its rosters in a store",
    "Connects to the server as the component D and acts as the server for\n"
    "the rosters of JIDs at D (RFC 6121): it answers subscription requests\n"
    "by --auto-authorize, answers probes, and keeps every roster in the\n"
    "--store, where they outlive the process (pending requests included).\n"
    "At start it loads every roster of a JID at D that the store holds\n"
    "(owners at other domains are skipped with a warning) and probes their\n"
    "contacts once the session starts; later rosters load from the store\n"
    "when first used. Presence to a JID at D that has no roster is not\n"
    "answered. It prints each event on one line until --for runs out or\n"
    "SIGINT/SIGTERM arrives, then closes the stream cleanly and exits 0;\n"
    "it exits 1 when the server ends the session.\n"
    "\n"
    "Options:\n"
    "  --domain D       the component's domain (the global --component D\n"
    "                   says the same); the secret comes from the\n"
    "                   environment variable named by --secret-env, and\n"
    "                   --server HOST[:PORT] is required (port 5347 by\n"
    "                   default)\n"
    "  --store URI      required: sqlite:PATH, redis://HOST:PORT/DB or\n"
    "                   memory: (neither $KITH_STORE nor the default client\n"
    "                   cache applies)\n"
    "  --serve JID      serve JID (user@D) even when the store has no\n"
    "                   roster for it yet; may be repeated\n"
    "  --auto-authorize accept|reject|manual\n"
    "                   answer subscription requests 'subscribed' (accept,\n"
    "                   the default), 'unsubscribed' (reject), or not at all\n"
    "                   (manual: the request stays pending in the store)\n"
    "  --auto-subscribe, --no-auto-subscribe\n"
    "                   after accepting a request, subscribe back unless\n"
    "                   already subscribed or asking (default on)\n"
    "  --memory-limit BYTES\n"
    "                   keep at most about this much roster data in memory\n"
    "                   (K, M, G suffixes; default: no bound); rosters used\n"
    "                   least recently leave memory, not the store. It\n"
    "                   applies from the session start: the rosters loaded\n"
    "                   at start are all in memory until then\n"
    "  --for SECONDS    stop that long after the session started\n"
    "\n"
    "Output: as 'kith watch' (text, or --json one object per line), every\n"
    "roster event naming its owner (the served JID). The first line is\n"
    "  session_start D auto_authorize=accept auto_subscribe=on\n"
    "      store=sqlite:/var/lib/kith/bot.db owners=N\n"
    "(N: rosters in memory at start), in JSON with \"store\" and \"owners\".\n"
    "A store_error line reports a failed write; the roster in memory stays\n"
    "right and the write is retried at the next change.\n"
    "\n"
    "Example:\n"
    "  BOT_SECRET=... kith component --domain bot.localhost \\\n"
    "      --secret-env BOT_SECRET --server 127.0.0.1:5347 \\\n"
    "      --store sqlite:bot.db --serve echo@bot.localhost --json\n",
    component_options,
    0,
    0,
    run_component,
};
