/* t_tar.c: unit tests of common/tar.c: header layout and checksums, long names, cap, tree walk, tar -t. */
#include "tests/unit/t.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/tar.h"

static unsigned long oct(const unsigned char *p, size_t n);
static int checksum_ok(const unsigned char *h);

static unsigned long
oct(const unsigned char *p, size_t n)
{
	unsigned long v = 0;
	size_t i;

	for (i = 0; i < n && p[i] >= '0' && p[i] <= '7'; i++)
		v = v * 8 + (unsigned long)(p[i] - '0');
	return v;
}

static int
checksum_ok(const unsigned char *h)
{
	unsigned long sum = 0;
	size_t i;

	for (i = 0; i < 512; i++)
		sum += (i >= 148 && i < 156) ? ' ' : h[i];
	return sum == oct(h + 148, 8);
}

void
test_tar__headers(void)
{
	struct tar t;
	const unsigned char *h;

	tar_init(&t, 0);
	T_CHECK(tar_add_dir(&t, "configs", 0755) == 0);
	T_CHECK(tar_add_file(&t, "configs/a.txt", "hello", 5, 0600) == 0);
	T_CHECK(tar_finish(&t) == 0);
	T_CHECK(t.len == 512 + 512 + 512 + 1024);
	h = t.buf;
	T_STREQ((const char *)h, "configs/");
	T_CHECK(h[156] == '5');
	T_CHECK(memcmp(h + 257, "ustar", 6) == 0 && memcmp(h + 263, "00", 2) == 0);
	T_CHECK(checksum_ok(h));
	T_CHECK(oct(h + 100, 8) == 0755);
	h = t.buf + 512;
	T_STREQ((const char *)h, "configs/a.txt");
	T_CHECK(h[156] == '0');
	T_CHECK(oct(h + 124, 12) == 5);
	T_CHECK(oct(h + 100, 8) == 0600);
	T_CHECK(checksum_ok(h));
	T_CHECK(memcmp(t.buf + 1024, "hello", 5) == 0 && t.buf[1029] == 0);
	T_CHECK(t.buf[t.len - 1] == 0 && t.buf[t.len - 1024] == 0);
	tar_free(&t);
}

void
test_tar__long_names(void)
{
	struct tar t;
	char name[300];
	const unsigned char *h;

	tar_init(&t, 0);
	/* 120 bytes of directory + "/" + 50-byte name: needs the prefix field */
	memset(name, 'd', 120);
	name[120] = '/';
	memset(name + 121, 'f', 50);
	name[171] = '\0';
	T_CHECK(tar_add_file(&t, name, "x", 1, 0644) == 0);
	h = t.buf;
	T_CHECK(strlen((const char *)h) == 50);
	T_CHECK(strncmp((const char *)h + 345, name, 120) == 0 && h[345 + 120] == 0);
	T_CHECK(checksum_ok(h));
	/* a single 150-byte component cannot be split */
	memset(name, 'z', 150);
	name[150] = '\0';
	T_CHECK(tar_add_file(&t, name, "x", 1, 0644) == -1);
	T_CHECK(strstr(t.err, "too long") != NULL);
	tar_free(&t);
}

void
test_tar__cap(void)
{
	struct tar t;
	char big[4096];

	memset(big, 'a', sizeof(big));
	tar_init(&t, 4096);
	T_CHECK(tar_add_file(&t, "a", big, 1000, 0644) == 0);
	T_CHECK(tar_add_file(&t, "b", big, sizeof(big), 0644) == -1);
	T_CHECK(strstr(t.err, "cap") != NULL);
	T_CHECK(t.len == 1536);
	tar_free(&t);
}

void
test_tar__tree_and_tar_t(void)
{
	char dir[] = "/tmp/t_tar_XXXXXX", p[256], outp[300], line[256];
	struct tar t;
	FILE *f;
	pid_t pid;
	int st, fd, seen = 0;

	T_CHECK(mkdtemp(dir) != NULL);
	snprintf(p, sizeof(p), "%s/sub", dir);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/.git", dir);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/.git/HEAD", dir);
	f = fopen(p, "w");
	fputs("ref", f);
	fclose(f);
	snprintf(p, sizeof(p), "%s/sub/Dockerfile", dir);
	f = fopen(p, "w");
	fputs("FROM scratch\n", f);
	fclose(f);
	snprintf(p, sizeof(p), "%s/link", dir);
	T_CHECK(symlink("sub/Dockerfile", p) == 0);
	tar_init(&t, 1 << 20);
	T_CHECK(tar_add_tree(&t, dir) == 0);
	T_CHECK(tar_finish(&t) == 0);
	/* GNU tar must read it back: names and the symlink, and nothing of .git */
	snprintf(outp, sizeof(outp), "%s.tar", dir);
	f = fopen(outp, "w");
	fwrite(t.buf, 1, t.len, f);
	fclose(f);
	snprintf(p, sizeof(p), "%s.list", dir);
	pid = fork();
	if (pid == 0) {
		fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		dup2(fd, 1);
		execlp("tar", "tar", "-tvf", outp, (char *)NULL);
		_exit(127);
	}
	waitpid(pid, &st, 0);
	T_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	f = fopen(p, "r");
	while (f && fgets(line, sizeof(line), f)) {
		if (strstr(line, ".git"))
			seen |= 8;
		if (strstr(line, " sub/Dockerfile") && line[0] == '-')
			seen |= 1;
		if (strstr(line, " sub/") && line[0] == 'd')
			seen |= 2;
		if (strstr(line, "link -> sub/Dockerfile") && line[0] == 'l')
			seen |= 4;
	}
	if (f)
		fclose(f);
	T_CHECK(seen == 7);
	unlink(p);
	unlink(outp);
	/* cleanup of the fixture without a shell */
	pid = fork();
	if (pid == 0) {
		execlp("rm", "rm", "-rf", dir, (char *)NULL);
		_exit(127);
	}
	waitpid(pid, &st, 0);
	tar_free(&t);
}
