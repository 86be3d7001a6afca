/*
 * The C end of bench/c-interop.mjs: the same traffic through a channel
 * (shmc) and over a Unix stream socket (4-byte little-endian length, then
 * the bytes), so that the Node end measures both in one run.
 *
 *   shmc-bench chan-send NAME SIZE COUNT | chan-recv NAME SIZE COUNT | chan-echo NAME
 *   shmc-bench unix-send PATH SIZE COUNT | unix-recv PATH SIZE COUNT | unix-echo PATH
 *
 * Senders and receivers print "ok" when done; echo answers until the other end closes.
 */
#include "../include/shmc.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static void fail(const char *what, int r) {
  fprintf(stderr, "shmc-bench: %s: %s\n", what, shmc_strerror(r));
  exit(1);
}

static shmc_channel *open_end(const char *name, shmc_role role) {
  shmc_options o = { .capacity = 1u << 20 };
  shmc_channel *c;
  int r = shmc_open(&c, name, role, &o);
  if (r != SHMC_OK) fail(name, r);
  return c;
}

static int unix_connect(const char *path) {
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un a = { .sun_family = AF_UNIX };
  strncpy(a.sun_path, path, sizeof a.sun_path - 1);
  if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    perror("connect");
    exit(1);
  }
  return fd;
}

static void write_all(int fd, const void *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w <= 0) { perror("write"); exit(1); }
    p = (const char *)p + w;
    n -= (size_t)w;
  }
}

/* 0 at end of stream. */
static int read_all(int fd, void *p, size_t n) {
  while (n > 0) {
    ssize_t r = read(fd, p, n);
    if (r == 0) return 0;
    if (r < 0) { perror("read"); exit(1); }
    p = (char *)p + r;
    n -= (size_t)r;
  }
  return 1;
}

int main(int argc, char **argv) {
  if (argc < 3) return 64;
  const char *mode = argv[1], *target = argv[2];
  size_t size = argc > 3 ? strtoul(argv[3], NULL, 0) : 0;
  unsigned long count = argc > 4 ? strtoul(argv[4], NULL, 0) : 0;
  unsigned char *buffer = calloc(1, size + 4 > 1u << 20 ? size + 4 : 1u << 20);
  if (strcmp(mode, "chan-send") == 0) {
    shmc_channel *c = open_end(target, SHMC_PRODUCER);
    for (unsigned long i = 0; i < count; i++) {
      buffer[0] = (unsigned char)i;
      int r = shmc_send(c, buffer, size, -1);
      if (r != SHMC_OK) fail("send", r);
    }
    shmc_close(c);
  } else if (strcmp(mode, "chan-recv") == 0) {
    shmc_channel *c = open_end(target, SHMC_CONSUMER);
    for (unsigned long i = 0; i < count; i++) {
      const void *data;
      size_t length;
      int r = shmc_read(c, &data, &length, -1);
      if (r != SHMC_OK) fail("read", r);
      if (length != size) fail("read: wrong size", SHMC_EINVALID_SEGMENT);
      shmc_release(c);
    }
    shmc_close(c);
  } else if (strcmp(mode, "chan-echo") == 0) {
    char name[220];
    snprintf(name, sizeof name, "%s-req", target);
    shmc_channel *in = open_end(name, SHMC_CONSUMER);
    snprintf(name, sizeof name, "%s-res", target);
    shmc_channel *out = open_end(name, SHMC_PRODUCER);
    for (;;) {
      const void *data;
      size_t length;
      if (shmc_read(in, &data, &length, -1) != SHMC_OK) break;
      int r = shmc_send(out, data, length, -1);
      shmc_release(in);
      if (r != SHMC_OK) break;
    }
    shmc_close(out);
    shmc_close(in);
  } else if (strcmp(mode, "unix-send") == 0) {
    int fd = unix_connect(target);
    uint32_t n = (uint32_t)size;
    for (unsigned long i = 0; i < count; i++) {
      memcpy(buffer, &n, 4);
      buffer[4] = (unsigned char)i;
      write_all(fd, buffer, size + 4);
    }
    close(fd);
  } else if (strcmp(mode, "unix-recv") == 0) {
    int fd = unix_connect(target);
    for (unsigned long i = 0; i < count; i++) {
      uint32_t n;
      if (!read_all(fd, &n, 4) || n != size || !read_all(fd, buffer, n)) fail("unix-recv: short stream", SHMC_EINVALID_SEGMENT);
    }
    close(fd);
  } else if (strcmp(mode, "unix-echo") == 0) {
    int fd = unix_connect(target);
    for (;;) {
      uint32_t n;
      if (!read_all(fd, &n, 4) || !read_all(fd, buffer + 4, n)) break;
      memcpy(buffer, &n, 4);
      write_all(fd, buffer, n + 4);
    }
    close(fd);
  } else {
    return 64;
  }
  printf("ok\n");
  free(buffer);
  return 0;
}
