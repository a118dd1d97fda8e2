/*
 * kith: the command-line tool. Parses the global options, finds the
 * command in `commands` and runs it.
 *
 * Options may come before or after the command name. Command-specific
 * options (cli_command_t.options) are merged into the same getopt_long()
 * pass and recorded for the command in order.
 */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Add a command: write cmd_NAME.c defining a cli_command_t, declare it in
 * cli.h and list it here. */
static const cli_command_t *const commands[] = {
    &cli_cmd_ping,  &cli_cmd_roster,    &cli_cmd_presence,
    &cli_cmd_watch, &cli_cmd_component, &cli_cmd_demo,
};
#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))
/* The column of synopses in `kith --help`. */
#define SYNOPSIS_WIDTH 20

enum {
  OPT_JID = 256,
  OPT_SERVER,
  OPT_CA_FILE,
  OPT_INSECURE,
  OPT_COMPONENT,
  OPT_SECRET_ENV,
  OPT_TIMEOUT,
  OPT_STORE,
  OPT_JSON,
  OPT_VERSION,
};

static const struct option global_options[] = {
    {"jid", required_argument, NULL, OPT_JID},
    {"server", required_argument, NULL, OPT_SERVER},
    {"ca-file", required_argument, NULL, OPT_CA_FILE},
    {"insecure-skip-verify", no_argument, NULL, OPT_INSECURE},
    {"component", required_argument, NULL, OPT_COMPONENT},
    {"secret-env", required_argument, NULL, OPT_SECRET_ENV},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"store", required_argument, NULL, OPT_STORE},
    {"json", no_argument, NULL, OPT_JSON},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};
#define N_GLOBAL_OPTIONS                                                       \
  (sizeof(global_options) / sizeof(global_options[0]) - 1)

static const char global_help[] =
    "Connection options:\n"
    "  --jid JID               the account (default: $KITH_JID); the password\n"
    "                          is read from $KITH_PASSWORD, never from the\n"
    "                          command line\n"
    "  --server HOST[:PORT]    connect there instead of looking up DNS SRV\n"
    "                          records (IPv6: [::1]:5222)\n"
    "  --ca-file FILE          trust the CA certificates in this PEM file\n"
    "  --insecure-skip-verify  do not verify the server's certificate\n"
    "                          (testing only)\n"
    "  --component DOMAIN      connect as an XEP-0114 component (needs\n"
    "                          --server; port 5347 by default)\n"
    "  --secret-env VAR        read the component secret from $VAR\n"
    "  --timeout SECONDS       give up after this long (default 30)\n"
    "\n"
    "Store options:\n"
    "  --store URI             where rosters are kept: sqlite:PATH,\n"
    "                          redis://HOST:PORT/DB, or memory: (this run\n"
    "                          only); default $KITH_STORE, else sqlite:, the\n"
    "                          file $XDG_DATA_HOME/kith/roster.db. A client\n"
    "                          reads its cached roster before connecting and\n"
    "                          fetches only what changed since\n"
    "\n"
    "Output options:\n"
    "  --json                  print one JSON object per line\n"
    "  -v, --verbose           log to stderr: -v info, -vv debug, -vvv XML\n"
    "  -h, --help              show help ('kith COMMAND --help' for one)\n"
    "  --version               show the version\n"
    "\n"
    "Options may come before or after the command. Exit status: 0 success,\n"
    "1 failure (connection, TLS, authentication, error reply, timeout,\n"
    "store), 2 usage error.\n";

static void print_usage(FILE *f)
{
  size_t i;

  fprintf(f, "Usage: kith [OPTIONS] COMMAND [ARGS]\n\n"
             "XMPP roster management and presence subscriptions.\n\n"
             "Commands:\n");
  /* A synopsis too long for the column gets the summary on a line of its
   * own. */
  for (i = 0; i < N_COMMANDS; i++) {
    const char *syn = commands[i]->synopsis;
    if (strlen(syn) > SYNOPSIS_WIDTH)
      fprintf(f, "  %s\n  %-*s  %s\n", syn, SYNOPSIS_WIDTH, "",
              commands[i]->summary);
    else
      fprintf(f, "  %-*s  %s\n", SYNOPSIS_WIDTH, syn, commands[i]->summary);
  }
  fprintf(f, "\n%s", global_help);
}

static void print_command_help(const cli_command_t *cmd)
{
  printf("Usage: kith [OPTIONS] %s\n\n%s\n%s", cmd->synopsis, cmd->help,
         global_help);
}

static const cli_command_t *find_command(const char *name)
{
  size_t i;

  for (i = 0; i < N_COMMANDS; i++)
    if (strcmp(commands[i]->name, name) == 0)
      return commands[i];
  return NULL;
}

/* Does the global long option `arg` ("--name" or "--name=value") take the
 * next argument as its value? Prefixes count as getopt_long() allows. */
static int takes_next_arg(const char *arg)
{
  const char *name = arg + 2;
  size_t len = strcspn(name, "=");
  size_t i;

  if (name[len] == '=')
    return 0;
  for (i = 0; i < N_GLOBAL_OPTIONS; i++)
    if (strncmp(global_options[i].name, name, len) == 0 &&
        global_options[i].has_arg == required_argument)
      return 1;
  return 0;
}

/* The index of the command name in argv: the first argument that is not
 * an option or an option's value; 0 when there is none. Only the global
 * options can precede it. */
static int find_command_index(int argc, char **argv)
{
  int i;

  for (i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--") == 0)
      return i + 1 < argc ? i + 1 : 0;
    if (a[0] != '-' || a[1] == '\0')
      return i;
    if (a[1] == '-' && takes_next_arg(a))
      i++;
  }
  return 0;
}

/* The global options followed by the command's own. Freed by the caller. */
static struct option *merge_options(const cli_command_t *cmd)
{
  size_t n = 0, i;
  struct option *all;

  while (cmd && cmd->options && cmd->options[n].name)
    n++;
  all = calloc(N_GLOBAL_OPTIONS + n + 1, sizeof(*all));
  if (all == NULL)
    return NULL;
  memcpy(all, global_options, N_GLOBAL_OPTIONS * sizeof(*all));
  for (i = 0; i < n; i++)
    all[N_GLOBAL_OPTIONS + i] = cmd->options[i];
  return all;
}

static int parse_timeout(cli_t *cli, const char *arg)
{
  char *end;
  double secs;

  errno = 0;
  secs = strtod(arg, &end);
  if (errno || end == arg || *end != '\0' || !(secs > 0) || secs > 86400)
    return cli_usage_error(cli,
                           "--timeout takes seconds from 0.001 to "
                           "86400, not '%s'",
                           arg);
  cli->timeout_ms = (unsigned)(secs * 1000.0 + 0.5);
  if (cli->timeout_ms == 0)
    cli->timeout_ms = 1;
  return CLI_EXIT_OK;
}

/* What parse_args() found besides the options in cli_t. */
typedef struct parsed {
  int help;
  int version;
  char **args; /* positional arguments; args[0] is the command name */
  int n_args;
} parsed_t;

static int bad_option(cli_t *cli, int c, char **argv)
{
  const char *arg = argv[optind - 1];

  if (c == ':')
    return cli_usage_error(cli, "option '%s' needs a value", arg);
  if (optopt && optopt < 256)
    return cli_usage_error(cli, "unknown option '-%c'", optopt);
  return cli_usage_error(cli, "unknown option '%s'", arg);
}

/* Handle one option getopt_long() returned. */
static int take_option(cli_t *cli, parsed_t *p, int c, char **argv)
{
  switch (c) {
  case 1: /* a positional argument, in order ("-" in the optstring) */
    p->args[p->n_args++] = optarg;
    return CLI_EXIT_OK;
  case OPT_JID:
    cli->jid = optarg;
    return CLI_EXIT_OK;
  case OPT_SERVER:
    cli->server = optarg;
    return CLI_EXIT_OK;
  case OPT_CA_FILE:
    cli->ca_file = optarg;
    return CLI_EXIT_OK;
  case OPT_INSECURE:
    cli->insecure = 1;
    return CLI_EXIT_OK;
  case OPT_COMPONENT:
    cli->component = optarg;
    return CLI_EXIT_OK;
  case OPT_SECRET_ENV:
    cli->secret_env = optarg;
    return CLI_EXIT_OK;
  case OPT_TIMEOUT:
    return parse_timeout(cli, optarg);
  case OPT_STORE:
    if (*optarg == '\0')
      return cli_usage_error(cli, "--store takes a URI (sqlite:PATH, "
                                  "redis://HOST:PORT/DB or memory:)");
    cli->store = optarg;
    cli->store_given = 1;
    return CLI_EXIT_OK;
  case OPT_JSON:
    cli->json = 1;
    return CLI_EXIT_OK;
  case 'v':
    cli->verbose++;
    return CLI_EXIT_OK;
  case 'h':
    p->help = 1;
    return CLI_EXIT_OK;
  case OPT_VERSION:
    p->version = 1;
    return CLI_EXIT_OK;
  default:
    if (c >= CLI_OPT_CMD_BASE) {
      cli->cmd_opts[cli->n_cmd_opts].val = c;
      cli->cmd_opts[cli->n_cmd_opts].arg = optarg;
      cli->n_cmd_opts++;
      return CLI_EXIT_OK;
    }
    return bad_option(cli, c, argv);
  }
}

static int parse_args(cli_t *cli, parsed_t *p, int argc, char **argv)
{
  struct option *options = merge_options(cli->cmd);
  int c, code = CLI_EXIT_OK;

  /* argc bounds both the positionals and the command options. */
  p->args = calloc((size_t)argc + 1, sizeof(*p->args));
  cli->cmd_opts = calloc((size_t)argc + 1, sizeof(*cli->cmd_opts));
  if (options == NULL || p->args == NULL || cli->cmd_opts == NULL) {
    free(options);
    return cli_fail(cli, KITH_ENOMEM, "%s", kith_strerror(KITH_ENOMEM));
  }
  opterr = 0;
  /* "-": return positionals in order (no reliance on permutation or
   * POSIXLY_CORRECT); ":": report a missing value as ':'. */
  while (code == CLI_EXIT_OK &&
         (c = getopt_long(argc, argv, "-:vh", options, NULL)) != -1)
    code = take_option(cli, p, c, argv);
  /* Whatever follows "--" is positional. */
  while (code == CLI_EXIT_OK && optind < argc)
    p->args[p->n_args++] = argv[optind++];
  free(options);
  return code;
}

static int check_arg_count(const cli_t *cli, int n)
{
  const cli_command_t *cmd = cli->cmd;

  if (n < cmd->min_args)
    return cli_usage_error(cli, "missing arguments: %s", cmd->synopsis);
  if (cmd->max_args >= 0 && n > cmd->max_args)
    return cli_usage_error(cli, "too many arguments: %s", cmd->synopsis);
  return CLI_EXIT_OK;
}

/* Run the command named by p->args[0] (help and version already done). */
static int dispatch(cli_t *cli, parsed_t *p)
{
  int code;

  if (p->n_args == 0) {
    print_usage(stderr);
    return CLI_EXIT_USAGE;
  }
  if (cli->cmd == NULL)
    return cli_usage_error(cli, "unknown command '%s'", p->args[0]);
  code = check_arg_count(cli, p->n_args - 1);
  if (code != CLI_EXIT_OK)
    return code;
  cli->deadline_ms = cli_now_ms() + cli->timeout_ms;
  cli_install_signals();
  return cli->cmd->run(cli, p->n_args - 1, p->args + 1);
}

/* `kith help [COMMAND]` is `kith [COMMAND] --help`. */
static int run_help(parsed_t *p)
{
  const cli_command_t *cmd;

  if (p->n_args < 2) {
    print_usage(stdout);
    return CLI_EXIT_OK;
  }
  cmd = find_command(p->args[1]);
  if (cmd == NULL) {
    fprintf(stderr, "kith: unknown command '%s' (see 'kith --help')\n",
            p->args[1]);
    return CLI_EXIT_USAGE;
  }
  print_command_help(cmd);
  return CLI_EXIT_OK;
}

int main(int argc, char **argv)
{
  cli_t cli;
  parsed_t p;
  int code, idx;

  memset(&cli, 0, sizeof(cli));
  memset(&p, 0, sizeof(p));
  cli.timeout_ms = CLI_DEFAULT_TIMEOUT_MS;
  /* Find the command first so that its options can be parsed with the
   * global ones, wherever they appear. */
  idx = find_command_index(argc, argv);
  if (idx > 0)
    cli.cmd = find_command(argv[idx]);
  code = parse_args(&cli, &p, argc, argv);
  if (cli.store == NULL)
    cli.store = getenv("KITH_STORE");
  if (code == CLI_EXIT_OK) {
    if (p.version)
      printf("kith %s (libkith %s)\n", KITH_VERSION_STRING, kith_version());
    else if (p.n_args > 0 && strcmp(p.args[0], "help") == 0)
      code = run_help(&p);
    else if (p.help && cli.cmd)
      print_command_help(cli.cmd);
    else if (p.help && p.n_args == 0)
      print_usage(stdout);
    else
      code = dispatch(&cli, &p);
  }
  free(p.args);
  free(cli.cmd_opts);
  return code;
}
