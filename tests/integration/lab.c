/*
 * Integration-test helper: reads $KITH_LAB_ENV once. See lab.h.
 */
#include "lab.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LAB_MAX_ENTRIES 128

struct entry {
  char *key;
  char *value;
};

static struct entry entries[LAB_MAX_ENTRIES];
static int n_entries = -1; /* -1: not read yet */

static void fail(const char *fmt, const char *arg)
{
  fputs("lab: ", stderr);
  fprintf(stderr, fmt, arg);
  fputc('\n', stderr);
  abort();
}

static void add_line(char *line, const char *path)
{
  size_t len = strcspn(line, "\r\n");
  char *eq;

  line[len] = '\0';
  if (line[0] == '\0' || line[0] == '#')
    return;
  eq = strchr(line, '=');
  if (!eq || eq == line)
    fail("malformed line in %s", path);
  if (n_entries == LAB_MAX_ENTRIES)
    fail("too many entries in %s", path);
  *eq = '\0';
  entries[n_entries].key = strdup(line);
  entries[n_entries].value = strdup(eq + 1);
  if (!entries[n_entries].key || !entries[n_entries].value)
    fail("out of memory reading %s", path);
  n_entries++;
}

static void load(void)
{
  const char *path = getenv("KITH_LAB_ENV");
  char line[4096];
  FILE *f;

  if (n_entries >= 0)
    return;
  if (!path || !*path)
    fail("%s", "KITH_LAB_ENV is not set: run this test through ctest, or "
               "start tests/lab/lab.sh start DIR and export "
               "KITH_LAB_ENV=DIR/lab.env");
  f = fopen(path, "r");
  if (!f)
    fail("cannot open KITH_LAB_ENV=%s (did lab.start run?)", path);
  n_entries = 0;
  while (fgets(line, sizeof line, f))
    add_line(line, path);
  fclose(f);
}

const char *lab_find(const char *key)
{
  int i;

  load();
  /* Later lines win, as when the file is sourced by a shell. */
  for (i = n_entries - 1; i >= 0; i--)
    if (strcmp(entries[i].key, key) == 0)
      return entries[i].value;
  return NULL;
}

const char *lab_get(const char *key)
{
  const char *v = lab_find(key);

  if (!v)
    fail("no %s in the lab environment file", key);
  return v;
}

int lab_get_int(const char *key)
{
  const char *v = lab_get(key);
  char *end;
  long n;

  errno = 0;
  n = strtol(v, &end, 10);
  if (errno || end == v || *end != '\0' || n < INT_MIN || n > INT_MAX)
    fail("lab value of %s is not an integer", key);
  return (int)n;
}
