/*
 * kith roster: what cmd_roster.c (list, add, set, remove) and roster_io.c
 * (export, import) share.
 */
#ifndef KITH_CLI_ROSTER_CMD_H
#define KITH_CLI_ROSTER_CMD_H

#include "cli.h"

/* The roster command's own options. */
#define ROSTER_OPT_NAME (CLI_OPT_CMD_BASE + 0)
#define ROSTER_OPT_GROUP (CLI_OPT_CMD_BASE + 1)
#define ROSTER_OPT_OFFLINE (CLI_OPT_CMD_BASE + 2)
#define ROSTER_OPT_ONLINE (CLI_OPT_CMD_BASE + 3)
#define ROSTER_OPT_REPLACE (CLI_OPT_CMD_BASE + 4)

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

typedef struct roster_import roster_import_t;

/* What the command line asked for, and the work in flight. */
typedef struct roster_cmd {
  cli_t *cli;
  const char *jid_arg; /* JID as given */
  char *jid;           /* normalized bare JID (kith_free) */
  const char *file;    /* export / import: FILE as given, or NULL */
  const char *name;    /* --name, or NULL */
  const char **groups; /* --group values without duplicates (free) */
  size_t n_groups;
  int offline;       /* --offline */
  int online;        /* --online */
  int replace;       /* --replace */
  cli_session_t s;   /* the connection, unless offline */
  cli_offline_t off; /* the store read offline */
  /* Here, not on a stack frame: their callbacks may fire as late as
   * cli_session_free(). */
  change_t change;
  roster_import_t *import;
} roster_cmd_t;

/** Does `it` already have exactly this name and these groups? */
int roster_same_item(const kith_roster_item_t *it, const char *name,
                     const char *const *groups, size_t n);

/**
 * Open the store for the account offline and load its roster into *node.
 * Prints the problem ("no roster for JID in the store URI") and returns a
 * CLI_EXIT_* code.
 */
int roster_load_offline(roster_cmd_t *rc, const kith_roster_node_t **node);

/** roster export [FILE] [--online] (roster_io.c). */
int roster_export(roster_cmd_t *rc);
/** roster import FILE [--online] [--replace] (roster_io.c). */
int roster_import(roster_cmd_t *rc);
/** Free rc->import, after the session (its callbacks point into it). */
void roster_import_free(roster_cmd_t *rc);

#endif /* KITH_CLI_ROSTER_CMD_H */
