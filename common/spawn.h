/*
 * spawn.h: runs an external program (git) with a deadline, without a shell.
 * The child gets its own process group, which spawn_run owns and kills as a whole at the deadline.
 */
#ifndef MOLECULE_SPAWN_H
#define MOLECULE_SPAWN_H

#include <stddef.h>

/*
 * Runs argv (argv[0] looked up in PATH) with env additions (NULL-terminated "K=V"; may be NULL),
 * in its own process group, fds >= 3 closed, stdout+stderr appended to log_path (or /dev/null when
 * NULL), in cwd (NULL = current). After timeout_ms kills the group (SIGKILL).
 * Returns the exit code (0..255), or -1 (spawn failed / killed by deadline / by a signal: err says which).
 */
int spawn_run(char *const argv[], char *const env_add[], const char *cwd, const char *log_path,
              long timeout_ms, char *err, size_t errlen);

#endif
