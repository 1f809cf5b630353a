/*
 * tar.c: in-memory ustar writer (POSIX.1-1988 headers, 512-byte blocks) with a size cap.
 * Owns t->buf; entries are written with uid/gid 0 and mtime 0 so the same tree gives the same bytes.
 */
#include "common/tar.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TAR_BLOCK 512
#define TAR_MAX_DEPTH 64

static int reserve(struct tar *t, size_t n);
static int split_name(struct tar *t, const char *name, char *prefix, char *base);
static void octal(char *dst, size_t width, unsigned long long v);
static int add_entry(struct tar *t, const char *name, char type, unsigned mode, const void *data, size_t len,
                     const char *linkname);
static int add_tree_at(struct tar *t, const char *path, const char *rel, int depth);
static int read_file(struct tar *t, const char *path, size_t size, unsigned char **out);

void
tar_init(struct tar *t, size_t max_bytes)
{
	memset(t, 0, sizeof(*t));
	t->max = max_bytes;
}

void
tar_free(struct tar *t)
{
	free(t->buf);
	t->buf = NULL;
	t->len = t->cap = 0;
}

static int
reserve(struct tar *t, size_t n)
{
	unsigned char *nb;
	size_t ncap;

	if (n > SIZE_MAX - t->len || (t->max > 0 && t->len + n > t->max)) {
		snprintf(t->err, sizeof(t->err), "archive larger than the %zu-byte cap", t->max);
		return -1;
	}
	if (t->len + n <= t->cap)
		return 0;
	ncap = t->cap ? t->cap : 16 * TAR_BLOCK;
	while (ncap < t->len + n)
		ncap *= 2;
	nb = realloc(t->buf, ncap);
	if (nb == NULL) {
		snprintf(t->err, sizeof(t->err), "out of memory");
		return -1;
	}
	t->buf = nb;
	t->cap = ncap;
	return 0;
}

/* Zero-padded octal in width-1 digits plus a NUL, as ustar readers expect. */
static void
octal(char *dst, size_t width, unsigned long long v)
{
	size_t i = width - 1;

	dst[i] = '\0';
	while (i-- > 0) {
		dst[i] = (char)('0' + (v & 7));
		v >>= 3;
	}
}

/* ustar keeps up to 255 bytes of path as prefix (155) + '/' + name (100), split at a slash. */
static int
split_name(struct tar *t, const char *name, char *prefix, char *base)
{
	size_t n = strlen(name), i;

	if (n == 0) {
		snprintf(t->err, sizeof(t->err), "empty entry name");
		return -1;
	}
	if (n <= 100) {
		memcpy(base, name, n);
		return 0;
	}
	for (i = n - 1; i > 0; i--) {
		if (name[i] != '/' || i == n - 1)
			continue;
		if (i > 155)
			continue;
		if (n - i - 1 > 100)
			break;
		memcpy(prefix, name, i);
		memcpy(base, name + i + 1, n - i - 1);
		return 0;
	}
	snprintf(t->err, sizeof(t->err), "name too long for ustar: %.80s...", name);
	return -1;
}

static int
add_entry(struct tar *t, const char *name, char type, unsigned mode, const void *data, size_t len,
          const char *linkname)
{
	char h[TAR_BLOCK];
	unsigned sum = 0;
	size_t i, pad;

	memset(h, 0, sizeof(h));
	if (split_name(t, name, h + 345, h) != 0)
		return -1;
	if (linkname != NULL) {
		if (strlen(linkname) > 100) {
			snprintf(t->err, sizeof(t->err), "link target too long for ustar: %.80s", name);
			return -1;
		}
		memcpy(h + 157, linkname, strlen(linkname));
	}
	if ((unsigned long long)len > 077777777777ULL) {
		snprintf(t->err, sizeof(t->err), "file too large for ustar: %.80s", name);
		return -1;
	}
	octal(h + 100, 8, mode & 07777);
	octal(h + 108, 8, 0);
	octal(h + 116, 8, 0);
	octal(h + 124, 12, len);
	octal(h + 136, 12, 0);
	h[156] = type;
	memcpy(h + 257, "ustar", 6);
	memcpy(h + 263, "00", 2);
	memcpy(h + 265, "root", 4);
	memcpy(h + 297, "root", 4);
	octal(h + 329, 8, 0);
	octal(h + 337, 8, 0);
	memset(h + 148, ' ', 8);
	for (i = 0; i < TAR_BLOCK; i++)
		sum += (unsigned char)h[i];
	octal(h + 148, 7, sum);
	h[155] = ' ';
	pad = (TAR_BLOCK - len % TAR_BLOCK) % TAR_BLOCK;
	if (reserve(t, TAR_BLOCK + len + pad) != 0)
		return -1;
	memcpy(t->buf + t->len, h, TAR_BLOCK);
	t->len += TAR_BLOCK;
	if (len > 0) {
		memcpy(t->buf + t->len, data, len);
		t->len += len;
	}
	memset(t->buf + t->len, 0, pad);
	t->len += pad;
	return 0;
}

int
tar_add_file(struct tar *t, const char *name, const void *data, size_t len, unsigned mode)
{
	return add_entry(t, name, '0', mode, data, len, NULL);
}

int
tar_add_dir(struct tar *t, const char *name, unsigned mode)
{
	char d[300];
	size_t n = strlen(name);

	if (n == 0 || n + 2 > sizeof(d)) {
		snprintf(t->err, sizeof(t->err), "bad directory name");
		return -1;
	}
	/* a trailing slash marks a directory for readers that ignore the type flag */
	snprintf(d, sizeof(d), "%s%s", name, name[n - 1] == '/' ? "" : "/");
	return add_entry(t, d, '5', mode, NULL, 0, NULL);
}

static int
read_file(struct tar *t, const char *path, size_t size, unsigned char **out)
{
	unsigned char *b;
	size_t got = 0;
	ssize_t r;
	int fd, rc = -1;

	*out = NULL;
	if (t->max > 0 && size > t->max) {
		snprintf(t->err, sizeof(t->err), "archive larger than the %zu-byte cap", t->max);
		return -1;
	}
	b = malloc(size ? size : 1);
	if (b == NULL) {
		snprintf(t->err, sizeof(t->err), "out of memory");
		return -1;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		snprintf(t->err, sizeof(t->err), "open %.200s: %s", path, strerror(errno));
		goto out;
	}
	while (got < size) {
		r = read(fd, b + got, size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			snprintf(t->err, sizeof(t->err), "read %.200s: %s", path,
			         r < 0 ? strerror(errno) : "file shrank");
			goto out;
		}
		got += (size_t)r;
	}
	*out = b;
	b = NULL;
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	free(b);
	return rc;
}

static int
add_tree_at(struct tar *t, const char *path, const char *rel, int depth)
{
	struct dirent **ents = NULL;
	struct stat st;
	char p[PATH_MAX], r[PATH_MAX], link[PATH_MAX];
	unsigned char *data;
	ssize_t ln;
	int n, i, rc = -1;

	if (depth > TAR_MAX_DEPTH) {
		snprintf(t->err, sizeof(t->err), "directory tree deeper than %d levels", TAR_MAX_DEPTH);
		return -1;
	}
	n = scandir(path, &ents, NULL, alphasort);
	if (n < 0) {
		snprintf(t->err, sizeof(t->err), "scandir %.200s: %s", path, strerror(errno));
		return -1;
	}
	for (i = 0; i < n; i++) {
		const char *nm = ents[i]->d_name;

		if (strcmp(nm, ".") == 0 || strcmp(nm, "..") == 0 || strcmp(nm, ".git") == 0)
			continue;
		if ((size_t)snprintf(p, sizeof(p), "%s/%s", path, nm) >= sizeof(p) ||
		    (size_t)snprintf(r, sizeof(r), "%s%s%s", rel, *rel ? "/" : "", nm) >= sizeof(r)) {
			snprintf(t->err, sizeof(t->err), "path too long under %.200s", path);
			goto out;
		}
		if (lstat(p, &st) != 0) {
			snprintf(t->err, sizeof(t->err), "lstat %.200s: %s", p, strerror(errno));
			goto out;
		}
		if (S_ISDIR(st.st_mode)) {
			if (tar_add_dir(t, r, st.st_mode) != 0 || add_tree_at(t, p, r, depth + 1) != 0)
				goto out;
		} else if (S_ISREG(st.st_mode)) {
			if (read_file(t, p, (size_t)st.st_size, &data) != 0)
				goto out;
			if (tar_add_file(t, r, data, (size_t)st.st_size, st.st_mode) != 0) {
				free(data);
				goto out;
			}
			free(data);
		} else if (S_ISLNK(st.st_mode)) {
			ln = readlink(p, link, sizeof(link) - 1);
			if (ln < 0) {
				snprintf(t->err, sizeof(t->err), "readlink %.200s: %s", p, strerror(errno));
				goto out;
			}
			link[ln] = '\0';
			if (add_entry(t, r, '2', 0777, NULL, 0, link) != 0)
				goto out;
		}
		/* sockets, fifos and devices have no place in a build context */
	}
	rc = 0;
out:
	for (i = 0; i < n; i++)
		free(ents[i]);
	free(ents);
	return rc;
}

int
tar_add_tree(struct tar *t, const char *root)
{
	return add_tree_at(t, root, "", 0);
}

int
tar_finish(struct tar *t)
{
	if (reserve(t, 2 * TAR_BLOCK) != 0)
		return -1;
	memset(t->buf + t->len, 0, 2 * TAR_BLOCK);
	t->len += 2 * TAR_BLOCK;
	return 0;
}
