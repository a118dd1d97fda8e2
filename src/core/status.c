/*
 * Status texts, generated from KITH_STATUS_MAP.
 */
#include "kith/status.h"

const char *kith_strerror(kith_status_t status)
{
  switch (status) {
#define KITH_STATUS_TEXT_(name, num, text)                                     \
  case KITH_##name:                                                            \
    return text;
    KITH_STATUS_MAP(KITH_STATUS_TEXT_)
#undef KITH_STATUS_TEXT_
  }
  return "unknown status";
}

const char *kith_status_name(kith_status_t status)
{
  switch (status) {
#define KITH_STATUS_NAME_(name, num, text)                                     \
  case KITH_##name:                                                            \
    return #name;
    KITH_STATUS_MAP(KITH_STATUS_NAME_)
#undef KITH_STATUS_NAME_
  }
  return "UNKNOWN";
}
