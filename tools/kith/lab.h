/*
 * kith CLI: the throwaway test server (tests/lab/lab.sh) for `kith demo`.
 *
 * The lab script starts Prosody on 127.0.0.1 with a test CA and accounts,
 * and writes DIR/lab.env (KEY=VALUE lines: XMPP_HOST, C2S_PORT, CA_FILE,
 * ALICE_JID, ALICE_PASSWORD, ...). These helpers find the script, run it
 * in a fresh temporary directory, read lab.env and stop it again.
 */
#ifndef KITH_CLI_LAB_H
#define KITH_CLI_LAB_H

#include <limits.h>
#include <stddef.h>

#define CLI_LAB_MAX_VARS 64

typedef struct cli_lab {
  char script[PATH_MAX]; /* the lab.sh in use */
  char dir[PATH_MAX];    /* the temporary directory ("" before start) */
  int running;           /* `start` ran: `stop` is needed */
  size_t n_vars;
  char *keys[CLI_LAB_MAX_VARS];
  char *values[CLI_LAB_MAX_VARS];
} cli_lab_t;

/**
 * Find lab.sh: $KITH_LAB_SCRIPT, else KITH_SOURCE_DIR/tests/lab/lab.sh
 * (the build tree), else PREFIX/share/kith/lab.sh next to the installed
 * binary, /usr/local/share/kith/lab.sh, /usr/share/kith/lab.sh. Returns 0
 * and fills lab->script, or -1 with a message in `err`.
 */
int cli_lab_find(cli_lab_t *lab, char *err, size_t err_size);

/**
 * Create a directory /tmp/kith-demo-XXXXXX, run `lab.sh start DIR` (its
 * output goes to stderr) and read DIR/lab.env. A Ctrl-C meanwhile does not
 * interrupt the script, so that whatever it started can be stopped.
 * Returns 0, or -1 with a message in `err`; lab->running tells whether
 * cli_lab_stop() is needed either way.
 */
int cli_lab_start(cli_lab_t *lab, char *err, size_t err_size);

/** A variable from lab.env, or NULL. */
const char *cli_lab_get(const cli_lab_t *lab, const char *key);

/**
 * Run `lab.sh stop DIR` (with --clean unless `keep`) and free the
 * variables. Returns 0 when the script succeeded. No-op when not running.
 */
int cli_lab_stop(cli_lab_t *lab, int keep);

#endif /* KITH_CLI_LAB_H */
