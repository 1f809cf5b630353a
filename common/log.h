/*
 * log.h: one-line logs on stderr with time, process name, pid and request id.
 * Owns the process name, the current request id and the list of strings masked in every line.
 */
#ifndef MOLECULE_LOG_H
#define MOLECULE_LOG_H

enum log_level { LOG_LVL_DEBUG, LOG_LVL_INFO, LOG_LVL_WARN, LOG_LVL_ERR };

/* Names this process in every line ("moleculed", "api-worker-3"). */
void log_set_name(const char *name);
void log_set_level(enum log_level lvl);
/* Parses "debug|info|warn|error"; returns -1 for anything else. */
int log_parse_level(const char *s, enum log_level *out);
/* The request being served (NULL between requests): printed as req=<id>. */
void log_set_request_id(const char *id);
const char *log_request_id(void);
/*
 * Registers a secret (token, key) that must never reach a log line: every occurrence
 * is replaced by "[masked]". Values shorter than 6 bytes are ignored (too many false hits).
 */
void log_add_secret(const char *secret);
void log_clear_secrets(void);
/* Registers the password of a URL ("scheme://user:password@host/...") as a secret, if any. */
void log_add_url_password(const char *url);

__attribute__((format(printf, 2, 3))) void log_msg(enum log_level lvl, const char *fmt, ...);

#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_err(...) log_msg(LOG_LVL_ERR, __VA_ARGS__)

#endif
