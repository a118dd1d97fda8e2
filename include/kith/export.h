/*
 * kith: symbol visibility.
 *
 * libkith is built with hidden visibility; only declarations marked
 * KITH_EXTERN are exported from the shared library.
 */
#ifndef KITH_EXPORT_H
#define KITH_EXPORT_H

#if defined(_WIN32)
#define KITH_EXTERN __declspec(dllexport)
#elif defined(__GNUC__) && __GNUC__ >= 4
#define KITH_EXTERN __attribute__((visibility("default")))
#else
#define KITH_EXTERN
#endif

#endif /* KITH_EXPORT_H */
