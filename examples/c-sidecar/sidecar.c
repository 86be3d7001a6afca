/*
 * A sidecar written in C, answering a Node client through two shm-channel
 * channels: it consumes requests from NAME-req and produces responses on
 * NAME-res, one response per request, in order. Requests are UTF-8 text:
 *
 *   "upper <text>"   -> the text in upper case
 *   "sum <n> <n>..." -> the sum of the integers
 *   anything else    -> "error: unknown request"
 *
 * It runs until the client closes its request channel.
 *
 *   make -C c && c/build/c-sidecar NAME     (main.mjs starts it for you)
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shmc.h"

static size_t answer(const char *request, size_t length, char *response, size_t room) {
  if (length >= 6 && memcmp(request, "upper ", 6) == 0) {
    size_t n = length - 6 < room ? length - 6 : room;
    for (size_t i = 0; i < n; i++) response[i] = (char)toupper((unsigned char)request[6 + i]);
    return n;
  }
  if (length >= 4 && memcmp(request, "sum ", 4) == 0) {
    char text[256];
    size_t n = length < sizeof text - 1 ? length : sizeof text - 1;
    memcpy(text, request, n);
    text[n] = '\0';
    long long sum = 0;
    for (char *p = text + 4, *end; *p != '\0'; p = end) {
      sum += strtoll(p, &end, 10);
      if (end == p) break;
    }
    return (size_t)snprintf(response, room, "%lld", sum);
  }
  return (size_t)snprintf(response, room, "error: unknown request");
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: c-sidecar NAME\n");
    return 64;
  }
  char req_name[200], res_name[200];
  snprintf(req_name, sizeof req_name, "%s-req", argv[1]);
  snprintf(res_name, sizeof res_name, "%s-res", argv[1]);

  shmc_channel *requests, *responses;
  int r = shmc_open(&requests, req_name, SHMC_CONSUMER, NULL);
  if (r == SHMC_OK && (r = shmc_open(&responses, res_name, SHMC_PRODUCER, NULL)) != SHMC_OK) shmc_close(requests);
  if (r != SHMC_OK) {
    fprintf(stderr, "c-sidecar: cannot open %s: %s\n", argv[1], shmc_strerror(r));
    return 1;
  }
  fprintf(stderr, "c-sidecar: serving %s\n", argv[1]);

  unsigned long served = 0;
  for (;;) {
    const void *request;
    size_t length;
    r = shmc_read(requests, &request, &length, -1); /* in place: valid until shmc_release */
    if (r != SHMC_OK) break;
    void *response;
    size_t room = shmc_max_record(responses);
    /* Zero copy both ways: the answer is written straight into the response ring. */
    r = shmc_claim(responses, room, &response, -1);
    if (r != SHMC_OK) break;
    size_t n = answer(request, length, response, room);
    shmc_release(requests);
    if ((r = shmc_commit(responses, n)) != SHMC_OK) break;
    served++;
  }
  fprintf(stderr, "c-sidecar: %lu requests served, stopped: %s\n", served, shmc_strerror(r));
  shmc_close(responses);
  shmc_close(requests);
  return r == SHMC_ECLOSED ? 0 : 1;
}
