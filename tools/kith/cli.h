/*
 * kith CLI: what every command shares.
 *
 * The CLI is written against the public API only (<kith/kith.h>). main.c
 * parses the global options into a cli_t and dispatches to one command from
 * its table; a command is a cli_command_t in its own cmd_*.c file. This
 * header holds the helpers the commands share: reporting (text or --json),
 * turning the global options into a connection target, driving connections
 * with a global deadline and Ctrl-C, and a clean disconnect.
 */
#ifndef KITH_CLI_H
#define KITH_CLI_H

#include <getopt.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>
#include <kith/kith.h>

/* Exit codes. */
#define CLI_EXIT_OK 0
#define CLI_EXIT_FAIL 1  /* runtime failure: connection, auth, TLS, timeout */
#define CLI_EXIT_USAGE 2 /* bad command line or environment */

/* The global timeout when --timeout is not given. */
#define CLI_DEFAULT_TIMEOUT_MS 30000u
/* The store when neither --store nor $KITH_STORE says: SQLite at
 * $XDG_DATA_HOME/kith/roster.db. */
#define CLI_DEFAULT_STORE "sqlite:"

/* How long the server may take to close the stream after ours, and how
 * long cli_close_sessions() waits in all (beyond the global deadline). */
#define CLI_CLOSE_TIMEOUT_MS 3000u
#define CLI_CLOSE_GRACE_MS 4000u

/* Command-specific long options get `val` numbers from here up, so they
 * never collide with the global ones. */
#define CLI_OPT_CMD_BASE 1000

typedef struct cli cli_t;

/*
 * One command. `options` (may be NULL) lists command-specific long options,
 * terminated by a zeroed entry, each with `flag` NULL and a `val` >=
 * CLI_OPT_CMD_BASE; main.c merges them with the global options and records
 * each occurrence in order for cli_cmd_opt() / cli_cmd_opt_at().
 */
typedef struct cli_command {
  const char *name;     /* "ping" */
  const char *synopsis; /* "ping [JID]" */
  const char *summary;  /* one line for `kith --help` */
  const char *help;     /* the rest of `kith ping --help` */
  const struct option *options;
  int min_args; /* positional arguments after the command name */
  int max_args; /* -1: no limit */
  /* Run with the positional arguments; returns a CLI_EXIT_* code. */
  int (*run)(cli_t *cli, int argc, char **argv);
} cli_command_t;

/* One occurrence of a command-specific option. */
typedef struct cli_optval {
  int val;
  const char *arg; /* NULL for an option without argument */
} cli_optval_t;

/* The parsed command line. Strings point into argv or the environment. */
struct cli {
  const cli_command_t *cmd;
  const char *jid;        /* --jid or $KITH_JID */
  const char *server;     /* --server HOST[:PORT] */
  const char *ca_file;    /* --ca-file */
  const char *component;  /* --component DOMAIN */
  const char *secret_env; /* --secret-env VAR */
  const char *store;      /* --store URI, else $KITH_STORE, else NULL */
  int store_given;        /* --store was on the command line */
  int insecure;           /* --insecure-skip-verify */
  int verbose;            /* number of -v */
  int json;               /* --json */
  unsigned timeout_ms;    /* --timeout, else CLI_DEFAULT_TIMEOUT_MS */
  cli_optval_t *cmd_opts; /* command-specific options in order */
  size_t n_cmd_opts;
  uint64_t deadline_ms; /* cli_now_ms() value when the command must end */
};

/* Set by the SIGINT/SIGTERM/SIGHUP handler: how many signals arrived. */
extern volatile sig_atomic_t cli_interrupted;

/**
 * Install SIGINT/SIGTERM/SIGHUP handlers that count into cli_interrupted,
 * and ignore SIGPIPE.
 */
void cli_install_signals(void);

/** Monotonic clock in milliseconds / with sub-millisecond precision. */
uint64_t cli_now_ms(void);
double cli_now_exact_ms(void);

/**
 * Parse seconds for an option like --for: from 0.001 to `max`. Prints a
 * usage error naming `option` and returns CLI_EXIT_USAGE when `arg` is not
 * such a number, else CLI_EXIT_OK with *secs set.
 */
int cli_parse_seconds(const cli_t *cli, const char *option, const char *arg,
                      double max, double *secs);

/**
 * Parse an --auto-authorize value (accept, reject, manual) into *policy
 * and its static name into *name. Prints a usage error and returns
 * CLI_EXIT_USAGE for anything else.
 */
int cli_parse_policy(const cli_t *cli, const char *arg,
                     kith_auto_authorize_t *policy, const char **name);

/** The value of the last occurrence of command option `val`, or NULL. */
const char *cli_cmd_opt(const cli_t *cli, int val);
/** Non-zero when command option `val` was given at least once. */
int cli_cmd_flag(const cli_t *cli, int val);

/* ---- Reporting -------------------------------------------------------- */

/**
 * Report a runtime failure: one line "kith: CMD: MESSAGE" on stderr, and
 * with --json also {"event":"error",...} on stdout. `status` (KITH_OK if
 * none) adds its symbolic name to the JSON. Returns CLI_EXIT_FAIL.
 */
int cli_fail(const cli_t *cli, kith_status_t status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/**
 * Report a usage error: "kith: CMD: MESSAGE" and a hint at --help on
 * stderr. Returns CLI_EXIT_USAGE.
 */
int cli_usage_error(const cli_t *cli, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/** A warning line "kith: warning: MESSAGE" on stderr. */
void cli_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/**
 * Print one result: with --json the object `obj` on one line, otherwise the
 * text. Takes ownership of `obj` (may be NULL: then nothing in JSON mode).
 * Flushes stdout, so a step shows at once.
 */
void cli_print(const cli_t *cli, json_t *obj, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- Connection targets ----------------------------------------------- */

/* Where and as whom to connect. Strings are borrowed. */
typedef struct cli_target {
  const char *jid;       /* client: account JID */
  const char *password;  /* client */
  const char *component; /* component: domain (then jid is unused) */
  const char *secret;    /* component */
  const char *host;      /* NULL: SRV lookup (client only) */
  unsigned port;         /* 0: default */
  const char *ca_file;   /* NULL: system CAs */
  int insecure;
  char host_buf[256]; /* storage for a host parsed from --server */
} cli_target_t;

/**
 * Parse "HOST", "HOST:PORT", "[IPV6]" or "[IPV6]:PORT" (a bare IPv6
 * address without port is accepted too). *port is 0 when absent. Returns
 * NULL on success or a static reason.
 */
const char *cli_parse_server(const char *spec, char *host, size_t host_size,
                             unsigned *port);

/**
 * Fill `t` from the global options and the environment ($KITH_PASSWORD,
 * the --secret-env variable). Prints the problem and returns
 * CLI_EXIT_USAGE when something is missing or malformed, else CLI_EXIT_OK.
 */
int cli_target_from_options(const cli_t *cli, cli_target_t *t);

/* ---- Stores ----------------------------------------------------------- */

/** The store URI for a client command: --store, $KITH_STORE or the
 * default (CLI_DEFAULT_STORE). */
const char *cli_store_uri(const cli_t *cli);

/**
 * Open the store at `uri` with `ctx`. On failure print why, naming the
 * URI ("cannot open the store sqlite:/x: ..."), and return CLI_EXIT_USAGE
 * for a malformed URI or CLI_EXIT_FAIL when the store failed; *out is NULL
 * then.
 */
int cli_store_open(const cli_t *cli, kith_ctx_t *ctx, const char *uri,
                   kith_store_t **out);

/*
 * A roster read from a store without connecting (roster list --offline,
 * export, import): its own context, the store and a roster on it.
 */
typedef struct cli_offline {
  kith_ctx_t *ctx;
  kith_store_t *store;
  kith_roster_t *roster; /* NULL unless asked for */
  char *owner;           /* the account's normalized bare JID (kith_free) */
} cli_offline_t;

/**
 * Open the store of cli_store_uri() for the account of --jid / $KITH_JID
 * (any JID; its bare form is the owner), with a roster on it when
 * `with_roster`. Prints the problem and returns a CLI_EXIT_* code; call
 * cli_offline_close() either way.
 */
int cli_offline_open(const cli_t *cli, cli_offline_t *o, int with_roster);

/** Free what cli_offline_open() made. Safe on a zeroed one. */
void cli_offline_close(cli_offline_t *o);

/* ---- Sessions --------------------------------------------------------- */

typedef struct cli_session cli_session_t;

/* A connection with what the CLI learns about it from events and logs. */
struct cli_session {
  const cli_t *cli;
  const char *label; /* "alice" in the demo; NULL for a lone session */
  kith_ctx_t *ctx;   /* one per session so its log lines can be told apart */
  kith_conn_t *conn;
  int component;        /* a XEP-0114 component connection */
  int started;          /* SESSION_START seen */
  int ended;            /* DISCONNECTED seen */
  int close_requested;  /* cli_close_sessions() asked for the close */
  kith_status_t status; /* the DISCONNECTED status */
  char text[512];       /* the DISCONNECTED text, or why connect failed */
  char jid[1024];       /* bound JID or component domain */
  char tls[128];        /* "TLSv1.3 ..." when the log said so, else "" */
  char sasl[64];        /* the SASL mechanism when the log said so */
  double connect_at_ms; /* cli_now_exact_ms() at kith_conn_connect() */
  double started_ms;    /* milliseconds from connect to session start */
  /* Called from the SESSION_START event, if set. */
  void (*on_start)(cli_session_t *s, void *ud);
  void *on_start_ud;
  /* The roster, when cli_session_attach_roster() attached one. */
  kith_roster_t *roster;
  int roster_received;    /* ROSTER_RECEIVED seen */
  char roster_error[256]; /* why the fetch at session start failed */
  /* The roster's store, when cli_session_attach_roster() opened one. */
  kith_store_t *store;
  char account[1024];    /* client: the bare JID logged in as */
  char store_error[512]; /* the last STORE_ERROR, "URI: text"; "" if none */
};

/**
 * Create the session's context and connection, configure them from `t`
 * and start connecting. `label` (may be NULL) is borrowed. On failure
 * returns the status with s->text set; call cli_session_free() either way.
 */
kith_status_t cli_session_open(cli_session_t *s, const cli_t *cli,
                               const char *label, const cli_target_t *t);

/**
 * Attach a new roster to the session opened by cli_session_open() (before
 * the loop runs, so it fetches at session start). `initial_presence` 0
 * keeps the session unavailable. The subscription policy starts as
 * manual without auto-subscribe, so that a command answers nothing it was
 * not asked to; change it with kith_roster_set_auto_*() on s->roster.
 *
 * With `store_uri` (NULL: none) the roster is kept in that store
 * (s->store): a client's cached roster is loaded now, before the session
 * starts, so the fetch sends its version, and every change is written
 * through. On failure s->text says why (naming the URI); the status is
 * KITH_EINVAL for a malformed URI.
 */
kith_status_t cli_session_attach_roster(cli_session_t *s, int initial_presence,
                                        const char *store_uri);

/**
 * After a one-shot command: when the session's store failed to write
 * (s->store_error), report it and return CLI_EXIT_FAIL, else `code`.
 */
int cli_session_store_check(const cli_session_t *s, int code);

/**
 * Log in as the account from the options with a roster attached, and wait
 * for the roster. Returns a CLI_EXIT_* code with any failure reported.
 * Call cli_close_sessions() and cli_session_free() on `s` either way.
 */
int cli_roster_login(const cli_t *cli, cli_session_t *s, int initial_presence);

/** Free the roster, connection and context. Safe on a zeroed or failed
 * session. */
void cli_session_free(cli_session_t *s);

/**
 * Write the domain of the session's bound JID (its server) into `buf`;
 * "" before the session started.
 */
void cli_session_domain(const cli_session_t *s, char *buf, size_t size);

/** The reason a session ended or failed, never empty. */
const char *cli_session_error(const cli_session_t *s);

/* A condition for cli_wait(); returns non-zero when the wait is over. */
typedef int (*cli_done_fn)(void *ud);

/**
 * Drive the sessions with kith_run_once() until `done(ud)` holds. Returns
 * KITH_OK, KITH_ETIMEDOUT when the global deadline passed, KITH_ECANCELED
 * when a signal arrived, or KITH_EIO when poll failed.
 */
kith_status_t cli_wait(const cli_t *cli, cli_session_t *const *ss, size_t n,
                       cli_done_fn done, void *ud);

/** cli_wait() until each session has started or ended. */
kith_status_t cli_wait_started(const cli_t *cli, cli_session_t *const *ss,
                               size_t n);

/**
 * cli_wait() until each session has its roster, its roster fetch failed
 * (s->roster_error) or it ended.
 */
kith_status_t cli_wait_roster(const cli_t *cli, cli_session_t *const *ss,
                              size_t n);

/**
 * Close every started session cleanly (kith_conn_disconnect) and run the
 * loop until they are closed, allowing CLI_CLOSE_GRACE_MS beyond the
 * global deadline; a second Ctrl-C stops waiting. Sessions that never
 * started are left to cli_session_free(). Returns KITH_OK when all closed
 * cleanly, else the first failing status.
 */
kith_status_t cli_close_sessions(const cli_t *cli, cli_session_t *const *ss,
                                 size_t n);

/** The text for a cli_wait() failure ("timed out after 30 s", ...). */
const char *cli_wait_error(const cli_t *cli, kith_status_t rc, char *buf,
                           size_t size);

/* ---- XEP-0199 ping (cmd_ping.c; the demo uses it too) ----------------- */

typedef struct cli_ping {
  char to[1024];   /* where the ping went */
  char from[1024]; /* who answered ("" if nobody) */
  int done;        /* the callback fired */
  kith_status_t status;
  char condition[64]; /* the error condition for KITH_ESTANZA */
  double sent_ms;
  double rtt_ms;
} cli_ping_t;

/**
 * Send a ping from session `s` to `to` (a JID) and track the reply in `p`
 * until the callback sets p->done. The timeout is what is left of the
 * global deadline. Returns the status of kith_conn_send_iq() (or of
 * building the stanza); on error p->done stays 0 and nothing fires.
 */
kith_status_t cli_ping_send(cli_session_t *s, const char *to, cli_ping_t *p);

/** A one-line description of a failed ping, for cli_fail(). */
const char *cli_ping_error(const cli_ping_t *p, char *buf, size_t size);

/* ---- Roster items as text and JSON (cmd_roster.c) --------------------- */

/*
 * The text form is "JID [name=NAME] subscription=SUB [ask=subscribe]
 * [pending-in] [approved] [groups=G1,G2]", groups sorted; a value is
 * written as is unless it is empty or holds a space, '"', '\\', ',', '='
 * or a control character: then it is double-quoted with C escapes.
 */

/** Write `v` to `f` as a value of the text form (quoted when needed). */
void cli_put_value(FILE *f, const char *v);

/**
 * The item's groups sorted (servers keep no order), in a new array of `*n`
 * borrowed strings to free(); NULL (and *n 0) for none, a NULL item, or
 * no memory.
 */
const char **cli_item_groups(const kith_roster_item_t *it, size_t *n);

/** Write the text form of `it` to `f` (no newline). */
void cli_item_put(FILE *f, const kith_roster_item_t *it);

/**
 * The item as a new JSON object {"jid", "name" (or null), "subscription",
 * "ask" ("subscribe" or null), "approved", "groups" (sorted)}; json null
 * for a NULL item. NULL when out of memory.
 */
json_t *cli_item_json(const kith_roster_item_t *it);

/**
 * The items of `node` (may be NULL) sorted by JID, in a new array of `*n`
 * borrowed pointers (free() it; NULL when empty or out of memory, then *n
 * is 0). Valid until the roster next changes.
 */
const kith_roster_item_t **cli_node_sorted(const kith_roster_node_t *node,
                                           size_t *n);

/** cli_node_sorted() of the session's own roster node. */
const kith_roster_item_t **cli_roster_sorted(const cli_session_t *s, size_t *n);

/**
 * The `roster list --json` array of `node`'s items (sorted by JID), new;
 * NULL when out of memory.
 */
json_t *cli_node_json(const kith_roster_node_t *node);

/* ---- Events as text and JSON (event.c: watch and component) ----------- */

/**
 * Print one roster or connection event as one line, text or --json (see
 * 'kith watch --help'), and flush. `roster` gives the counts of
 * roster_received. SESSION_START is the caller's to print. Returns 0, or
 * -1 when stdout failed.
 */
int cli_event_print(const cli_t *cli, const kith_roster_t *roster,
                    const kith_event_t *ev);

/** End a line on stdout and flush it; -1 when stdout failed. */
int cli_end_line(void);

/* ---- Commands --------------------------------------------------------- */

extern const cli_command_t cli_cmd_ping;
extern const cli_command_t cli_cmd_roster;
extern const cli_command_t cli_cmd_presence;
extern const cli_command_t cli_cmd_watch;
extern const cli_command_t cli_cmd_demo;
extern const cli_command_t cli_cmd_component;

#endif /* KITH_CLI_H */
