/*
 * sig.c: the one signal pattern of every process: handlers only set flags (nothing else is
 * async-signal-safe enough to do there). Owns the flags.
 */
#include "common/sig.h"

#include <string.h>

volatile sig_atomic_t sig_chld, sig_term, sig_hup, sig_alrm;

static void on_signal(int sig);

void
sig_setup(const int *catch_sigs, size_t ncatch, const int *ignore_sigs, size_t nignore,
    sigset_t *blocked)
{
	struct sigaction sa;
	size_t i;

	sig_chld = sig_term = sig_hup = sig_alrm = 0;
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sigemptyset(blocked);
	sa.sa_handler = on_signal;
	for (i = 0; i < ncatch; i++) {
		sigaction(catch_sigs[i], &sa, NULL);
		sigaddset(blocked, catch_sigs[i]);
	}
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	for (i = 0; i < nignore; i++)
		sigaction(ignore_sigs[i], &sa, NULL);
	sigprocmask(SIG_BLOCK, blocked, NULL);
}

static void
on_signal(int sig)
{
	switch (sig) {
	case SIGCHLD:
		sig_chld = 1;
		break;
	case SIGHUP:
		sig_hup = 1;
		break;
	case SIGALRM:
		sig_alrm = 1;
		break;
	default:
		sig_term = 1;
		break;
	}
}
