/*
 * sig.h: the one signal pattern of every process: handlers only set flags, and the signals
 * stay blocked except while the process waits (ppoll, accept). Owns the flags.
 */
#ifndef MOLECULE_SIG_H
#define MOLECULE_SIG_H

#include <signal.h>
#include <stddef.h>

extern volatile sig_atomic_t sig_chld;	/* SIGCHLD */
extern volatile sig_atomic_t sig_term;	/* SIGTERM or SIGINT */
extern volatile sig_atomic_t sig_hup;	/* SIGHUP */
extern volatile sig_atomic_t sig_alrm;	/* SIGALRM */

/*
 * Clears the flags, installs the flag-setting handler (no SA_RESTART, so a blocking call
 * returns EINTR) for each of catch_sigs, ignores SIGPIPE and each of ignore_sigs, and blocks
 * catch_sigs; *blocked receives that set, to unblock around the wait.
 */
void sig_setup(const int *catch_sigs, size_t ncatch, const int *ignore_sigs, size_t nignore,
    sigset_t *blocked);

#endif
