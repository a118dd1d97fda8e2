/*
 * kith CLI: running tests/lab/lab.sh for `kith demo`.
 */
#include "lab.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int is_file(const char *path)
{
  struct stat st;

  return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int try_path(cli_lab_t *lab, const char *path)
{
  size_t len = strlen(path);

  /* A path that does not fit is no path we can run. */
  if (len >= sizeof(lab->script) || !is_file(path))
    return 0;
  memcpy(lab->script, path, len + 1);
  return 1;
}

/* PREFIX/share/kith/lab.sh, where PREFIX is the parent of the directory
 * holding this executable (PREFIX/bin/kith). */
static int try_next_to_binary(cli_lab_t *lab)
{
  char exe[PATH_MAX], path[PATH_MAX + 32];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  char *bin, *prefix;

  if (n <= 0)
    return 0;
  exe[n] = '\0';
  bin = dirname(exe); /* modifies exe in place and may return it */
  prefix = dirname(bin);
  snprintf(path, sizeof(path), "%s/share/kith/lab.sh", prefix);
  return try_path(lab, path);
}

int cli_lab_find(cli_lab_t *lab, char *err, size_t err_size)
{
  const char *env = getenv("KITH_LAB_SCRIPT");

  if (env && *env) {
    if (try_path(lab, env))
      return 0;
    snprintf(err, err_size, "KITH_LAB_SCRIPT=%s: no such file", env);
    return -1;
  }
#ifdef KITH_SOURCE_DIR
  if (try_path(lab, KITH_SOURCE_DIR "/tests/lab/lab.sh"))
    return 0;
#endif
  if (try_next_to_binary(lab) ||
      try_path(lab, "/usr/local/share/kith/lab.sh") ||
      try_path(lab, "/usr/share/kith/lab.sh"))
    return 0;
  snprintf(err, err_size,
           "cannot find the lab script tests/lab/lab.sh; set "
           "KITH_LAB_SCRIPT to its path");
  return -1;
}

/* Run `bash SCRIPT VERB DIR [EXTRA]` and return its exit status, or -1
 * when it could not run. The child gets its own process group so that a
 * Ctrl-C at the terminal reaches only us: the script must finish what it
 * started before we stop it. Its stdout goes to our stderr, keeping our
 * stdout clean for --json. */
static int run_script(const cli_lab_t *lab, const char *verb, const char *extra)
{
  pid_t pid, r;
  int status;

  fflush(NULL);
  pid = fork();
  if (pid < 0)
    return -1;
  if (pid == 0) {
    int devnull = open("/dev/null", O_RDONLY);
    setpgid(0, 0);
    if (devnull >= 0)
      dup2(devnull, STDIN_FILENO);
    dup2(STDERR_FILENO, STDOUT_FILENO);
    if (extra)
      execlp("bash", "bash", lab->script, verb, lab->dir, extra, (char *)NULL);
    else
      execlp("bash", "bash", lab->script, verb, lab->dir, (char *)NULL);
    _exit(127);
  }
  do {
    r = waitpid(pid, &status, 0);
  } while (r < 0 && errno == EINTR);
  if (r < 0)
    return -1;
  if (WIFEXITED(status))
    return WEXITSTATUS(status);
  return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

static void free_vars(cli_lab_t *lab)
{
  size_t i;

  for (i = 0; i < lab->n_vars; i++) {
    free(lab->keys[i]);
    free(lab->values[i]);
  }
  lab->n_vars = 0;
}

/* Add KEY=VALUE from one line of lab.env; comments and blanks are skipped. */
static int add_var(cli_lab_t *lab, char *line)
{
  char *eq = strchr(line, '=');
  size_t len = strlen(line);

  while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
    line[--len] = '\0';
  if (line[0] == '#' || eq == NULL || eq == line)
    return 0;
  if (lab->n_vars == CLI_LAB_MAX_VARS)
    return 0;
  *eq = '\0';
  lab->keys[lab->n_vars] = strdup(line);
  lab->values[lab->n_vars] = strdup(eq + 1);
  if (lab->keys[lab->n_vars] == NULL || lab->values[lab->n_vars] == NULL) {
    free(lab->keys[lab->n_vars]);
    free(lab->values[lab->n_vars]);
    return -1;
  }
  lab->n_vars++;
  return 0;
}

static int read_env(cli_lab_t *lab, char *err, size_t err_size)
{
  char path[PATH_MAX + 16], line[4096];
  FILE *f;
  int rc = 0;

  snprintf(path, sizeof(path), "%s/lab.env", lab->dir);
  f = fopen(path, "r");
  if (f == NULL) {
    snprintf(err, err_size, "cannot read %s: %s", path, strerror(errno));
    return -1;
  }
  while (rc == 0 && fgets(line, sizeof(line), f))
    rc = add_var(lab, line);
  fclose(f);
  if (rc != 0)
    snprintf(err, err_size, "out of memory reading %s", path);
  return rc;
}

int cli_lab_start(cli_lab_t *lab, char *err, size_t err_size)
{
  int rc;

  snprintf(lab->dir, sizeof(lab->dir), "/tmp/kith-demo-XXXXXX");
  if (mkdtemp(lab->dir) == NULL) {
    snprintf(err, err_size, "cannot create a directory in /tmp: %s",
             strerror(errno));
    lab->dir[0] = '\0';
    return -1;
  }
  lab->running = 1;
  rc = run_script(lab, "start", NULL);
  if (rc != 0) {
    if (rc < 0)
      snprintf(err, err_size, "cannot run bash %s: %s", lab->script,
               strerror(errno));
    else
      snprintf(err, err_size, "'%s start %s' failed (exit status %d)",
               lab->script, lab->dir, rc);
    return -1;
  }
  return read_env(lab, err, err_size);
}

const char *cli_lab_get(const cli_lab_t *lab, const char *key)
{
  size_t i;

  for (i = 0; i < lab->n_vars; i++)
    if (strcmp(lab->keys[i], key) == 0)
      return lab->values[i];
  return NULL;
}

int cli_lab_stop(cli_lab_t *lab, int keep)
{
  int rc;

  free_vars(lab);
  if (!lab->running)
    return 0;
  lab->running = 0;
  rc = run_script(lab, "stop", keep ? NULL : "--clean");
  return rc == 0 ? 0 : -1;
}
