/* escape.h - making text from clients safe to print on one line (logs, events), and appending text to bounded buffers. */
#ifndef MGI_CORE_ESCAPE_H
#define MGI_CORE_ESCAPE_H

#include <stddef.h>

/*
 * Copies at most inlen bytes of in (stopping at a NUL) to out as printable
 * text: every control byte (below 0x20, and 0x7f) and the backslash become
 * "\xNN" escapes, so no newline, carriage return or terminal escape from a
 * client reaches a log line or an event, and the original bytes can be told
 * from an escape. Other bytes (UTF-8 included) pass. The result is truncated
 * to fit outlen (an escape is never cut in half) and always NUL-terminated
 * when outlen > 0. Returns out.
 */
char *mgi_escape(const char *in, size_t inlen, char *out, size_t outlen);

/* Appends printf-formatted text to buf at *at, what fits of it (buf stays
 * NUL-terminated when len > 0), and adds to *at what the whole text needs:
 * after a series of calls, *at >= len says the buffer was too short and
 * by how much. */
__attribute__((format(printf, 4, 5)))
void mgi_text_put(char *buf, size_t len, size_t *at, const char *fmt, ...);

#endif
