/*
 * redact.h: replaces secret-looking substrings of free text (agent memories) with labels, in
 * linear time. Owns nothing: results are allocated from the caller's arena.
 */
#ifndef MOLECULE_REDACT_H
#define MOLECULE_REDACT_H

#include "common/arena.h"

/*
 * Applies the reference's rules in order (subsystems.md §11): NAME_API_KEY=, NAME_TOKEN=,
 * NAME_SECRET= values; "Bearer " tokens; sk- and ctx7_ keys; base64-looking runs of 33 or more
 * characters. Names and "Bearer " stay readable; values become "[REDACTED:<KIND>]".
 * Each rule is one pass over the text, so hostile input cannot make it slow (POSIX regexec is
 * quadratic on long runs). Returns an arena string, or NULL when out of memory.
 */
const char *redact_secrets(struct arena *a, const char *in);

#endif
