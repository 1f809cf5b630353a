/*
 * hello_fcgi.c: the benchmark baseline, the smallest useful libfcgi responder.
 * Owns nothing; pre-forks like molecule-api so the comparison is process for process.
 */
#include <fcgiapp.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

int
main(int argc, char **argv)
{
	static const char resp[] = "Status: 200 OK\r\nContent-Type: application/json\r\n"
	    "Content-Length: 15\r\n\r\n{\"status\":\"ok\"}";
	FCGX_Request rq;
	int fd, i, workers;

	if (argc != 3) {
		fprintf(stderr, "usage: hello-fcgi SOCKET WORKERS\n");
		return 2;
	}
	FCGX_Init();
	fd = FCGX_OpenSocket(argv[1], 1024);
	if (fd < 0)
		return 1;
	workers = atoi(argv[2]);
	for (i = 0; i < workers; i++) {
		if (fork() == 0) {
			prctl(PR_SET_PDEATHSIG, SIGTERM);
			FCGX_InitRequest(&rq, fd, 0);
			while (FCGX_Accept_r(&rq) >= 0) {
				FCGX_PutStr(resp, sizeof(resp) - 1, rq.out);
				FCGX_Finish_r(&rq);
			}
			_exit(0);
		}
	}
	while (wait(NULL) > 0)
		;
	return 0;
}
