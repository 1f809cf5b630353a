/*
 * jsonx.h: compact JSON output the existing clients match byte for byte ("x":100, no spaces).
 * Owns nothing: serialised strings belong to the json_object (or the arena) they came from.
 */
#ifndef MOLECULE_JSONX_H
#define MOLECULE_JSONX_H

#include <json-c/json.h>
#include <stddef.h>

#include "common/arena.h"

/* Compact, no "\/" escaping; the string lives as long as obj. */
const char *jsonx_dump(struct json_object *obj, size_t *len);
/* A number that prints as 100 when whole and shortest-round-trip otherwise (0.8, not 0.80000000000000004). */
struct json_object *jsonx_number(double d);
/* Frees obj when the arena resets; returns obj (NULL stays NULL). */
struct json_object *jsonx_own(struct arena *a, struct json_object *obj);
/* Parses len bytes; NULL when they are not one JSON value. Caller puts the result. */
struct json_object *jsonx_parse(const char *buf, size_t len);

#endif
