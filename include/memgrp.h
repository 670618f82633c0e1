/* memgrp.h - the public client API of memgrp (libmemgrp). */
#ifndef MEMGRP_H
#define MEMGRP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Versioning: the API version is MG_VERSION_MAJOR.MG_VERSION_MINOR. A minor
 * bump only adds; a major bump may break. mg_version() tells which library
 * was loaded at run time, so a program can check it against the header it
 * was built with.
 */
#define MG_VERSION_MAJOR 0
#define MG_VERSION_MINOR 1
#define MG_VERSION_PATCH 0
#define MG_VERSION ((MG_VERSION_MAJOR << 16) | (MG_VERSION_MINOR << 8) | MG_VERSION_PATCH)

#if defined(__GNUC__)
#define MG_API __attribute__((visibility("default")))
#else
#define MG_API
#endif

/* The version of the loaded library, encoded like MG_VERSION. Cannot fail. */
MG_API unsigned mg_version(void);

/* The value of "max": no limit. */
#define MG_SIZE_MAX UINT64_MAX

/*
 * Parses a size as every memgrp interface accepts it: "4096", "64K",
 * "1.5G", "2TiB", "max". Suffixes K M G T P E are powers of 1024, in either
 * case; a fraction needs a suffix and is rounded down to a whole byte.
 * Returns 0 and stores the byte count in *bytes; or -EINVAL (malformed) or
 * -ERANGE (over 64 bits), leaving *bytes unaltered and, if err is not NULL,
 * writing a one-line reason into err (errlen bytes, always NUL-terminated).
 */
MG_API int mg_parse_size(const char *text, uint64_t *bytes, char *err, size_t errlen);

/*
 * Formats a byte count the way memgrp prints sizes ("64M", "1.5G", "max").
 * Writes at most len bytes, always NUL-terminated; returns buf.
 */
MG_API char *mg_format_size(uint64_t bytes, char *buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif
