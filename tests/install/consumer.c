/*
 * A program built against an INSTALLED libkith (tests/install/run.sh):
 * once with pkg-config, once with CMake's find_package(kith). It uses a
 * little of each public header and checks the library it runs with is
 * the one it was compiled against.
 */
#include <stdio.h>
#include <string.h>

#include <kith/kith.h>

int main(void)
{
  kith_roster_t *roster = NULL;
  kith_store_t *store = NULL;
  kith_roster_node_t *node = NULL;
  char err[256];

  if (strcmp(kith_version(), KITH_VERSION_STRING) != 0) {
    fprintf(stderr, "header %s, library %s\n", KITH_VERSION_STRING,
            kith_version());
    return 1;
  }
  if (kith_store_open(NULL, "memory:", &store, err, sizeof(err)) != KITH_OK ||
      kith_roster_new(NULL, &roster) != KITH_OK ||
      kith_roster_set_store(roster, store) != KITH_OK ||
      kith_roster_add_node(roster, "Romeo@Example.NET/orchard", &node) !=
          KITH_OK) {
    fprintf(stderr, "setup failed\n");
    return 1;
  }
  printf("kith %s: node %s, %s\n", kith_version(), kith_roster_node_owner(node),
         kith_strerror(KITH_ENOTFOUND));
  kith_roster_free(roster);
  kith_store_close(store);
  return 0;
}
