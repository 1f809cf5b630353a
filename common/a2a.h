/*
 * a2a.h: A2A (agent-to-agent JSON-RPC) helpers shared by the proxy route and the dispatcher worker.
 * Owns nothing: returned json_objects belong to the caller (json_object_put); strings to caller buffers.
 */
#ifndef MOLECULE_A2A_H
#define MOLECULE_A2A_H

#include <stddef.h>

#include <json-c/json.h>

#include "common/arena.h"

/* Longest CURLOPT_RESOLVE entry a2a_pin_target writes ("host:port:addr"), NUL included. */
#define A2A_RESOLVE_MAX 512

/*
 * Wraps a bare A2A params/message body into JSON-RPC message/send (keeps an existing id), new
 * reference when needed. A body that already has "jsonrpc" + "method" is returned (new reference)
 * with only a missing id and params.message.messageId filled in. Returns NULL + err when the body
 * is not an object or has neither a message nor params.
 */
struct json_object *a2a_wrap(struct json_object *body, char *err, size_t errlen);
/*
 * Builds a message/send request with one text part and a given messageId (and metadata, may be NULL)
 * placed at params.message.metadata (a reference is taken: metadata is not consumed). The JSON-RPC
 * id is the messageId too; a NULL message_id gets a fresh UUID.
 */
struct json_object *a2a_text_request(const char *text, const char *message_id, struct json_object *metadata);
/*
 * Resolves url's host once, checks every address against the SSRF rules (common/urlcheck.h;
 * loopback only when allow_loopback), and writes a CURLOPT_RESOLVE entry "host:port:addr" pinning
 * the checked address (every checked address, comma-separated, IPv6 in brackets). Returns 0, or
 * a negative value + err: A2A_PIN_TEMPORARY when the lookup failed for now (EAI_AGAIN: try again
 * later), -1 for anything permanent. Callers that do not care test < 0.
 * For an IP-literal host resolve is left empty: curl does not resolve literals, nothing to pin.
 * resolve should hold A2A_RESOLVE_MAX bytes.
 */
#define A2A_PIN_TEMPORARY (-2)
int a2a_pin_target(const char *url, int allow_loopback, char *resolve, size_t rlen, char *err, size_t errlen);
/* Reads the agent's URL for workspace id (DB url column; Redis ws:<id>:url cache if present). 0, or -1 (none) */
int a2a_target_url(struct arena *a, const char *workspace_id, char *url, size_t len);
/*
 * Extracts the first text part of a JSON-RPC result (for cron staleness / activity summaries);
 * NULL if none. The string belongs to response.
 */
const char *a2a_result_text(struct json_object *response);

#endif
