/*
 * urlcheck.h: the syntactic safety check of an agent URL before it is stored (SSRF guard).
 * Owns nothing; reasons go to caller buffers. No DNS here: the A2A proxy pins resolved addresses.
 */
#ifndef MOLECULE_URLCHECK_H
#define MOLECULE_URLCHECK_H

#include <stddef.h>

/* Longest URL accepted, in bytes. */
#define URLCHECK_MAX_LEN 2048

/*
 * Accepts http(s)://host[:port][/...] where host is `localhost`, a DNS-syntax name, a public
 * or RFC-1918/ULA IP literal. Rejects other schemes, credentials, bad ports and IP literals
 * in loopback, unspecified, link-local, multicast, reserved, CGNAT and documentation ranges
 * (IPv4-mapped/compatible and NAT64 IPv6 forms are judged by their IPv4 address).
 * Returns 0, or -1 with a lowercase human reason in why (may be NULL).
 */
int urlcheck_agent_url(const char *url, char *why, size_t whylen);

#endif
