/*
 * kith: status codes.
 *
 * Every fallible kith function returns a kith_status_t. KITH_OK is 0; every
 * other value is an error. The codes and their texts come from one table,
 * KITH_STATUS_MAP. New codes are appended; numbers never change.
 */
#ifndef KITH_STATUS_H
#define KITH_STATUS_H

#include "export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* XX(name, number, text). Append only. */
#define KITH_STATUS_MAP(XX)                                                    \
  XX(OK, 0, "success")                                                         \
  XX(ENOMEM, 1, "out of memory")                                               \
  XX(EINVAL, 2, "invalid argument")                                            \
  XX(EJID, 3, "invalid JID")                                                   \
  XX(EXML, 4, "malformed XML")                                                 \
  XX(ELIMIT, 5, "limit exceeded")                                              \
  XX(EIO, 6, "input/output error")                                             \
  XX(ERESOLVE, 7, "host name resolution failed")                               \
  XX(ECONNECT, 8, "connection failed")                                         \
  XX(ETLS, 9, "TLS failure")                                                   \
  XX(ECERT, 10, "certificate verification failed")                             \
  XX(EAUTH, 11, "authentication failed")                                       \
  XX(ESTREAM, 12, "stream error")                                              \
  XX(ETIMEDOUT, 13, "timed out")                                               \
  XX(ECANCELED, 14, "operation canceled")                                      \
  XX(ESTANZA, 15, "stanza error")                                              \
  XX(ESTATE, 16, "operation not valid in this state")                          \
  XX(ECLOSED, 17, "connection closed")                                         \
  XX(ENOTFOUND, 18, "not found")                                               \
  XX(EPROTO, 19, "protocol violation")                                         \
  XX(EUNSUPPORTED, 20, "not supported")                                        \
  XX(EAGAIN, 21, "resource temporarily unavailable")                           \
  XX(EEXIST, 22, "already exists")                                             \
  XX(ESTORE, 23, "store failure")                                              \
  XX(ECORRUPT, 24, "store is corrupt or unreadable")

/** The status type. KITH_OK (0) is success; everything else is an error. */
typedef enum kith_status {
#define KITH_STATUS_ENUM_(name, num, text) KITH_##name = num,
  KITH_STATUS_MAP(KITH_STATUS_ENUM_)
#undef KITH_STATUS_ENUM_
} kith_status_t;

/**
 * Return a static, human-readable text for a status code. Never returns
 * NULL; unknown codes give "unknown status".
 */
KITH_EXTERN const char *kith_strerror(kith_status_t status);

/**
 * Return the symbolic name of a status code without the KITH_ prefix
 * ("OK", "EJID", ...), or "UNKNOWN". Static storage.
 */
KITH_EXTERN const char *kith_status_name(kith_status_t status);

#ifdef __cplusplus
}
#endif

#endif /* KITH_STATUS_H */
