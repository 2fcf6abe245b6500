/*
 * What a system call costs on this machine (a probe for docs/benchmarks.md, not part of the product):
 *   gcc -O2 scripts/probes/syscall-cost.c -o /tmp/syscall-cost && /tmp/syscall-cost
 * Prints microseconds per getppid, per fcntl lock+unlock pair and per WAL-like pwrite pair (24 + 4096 bytes).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double since_us(const struct timespec *a, long n) {
  struct timespec b;
  clock_gettime(CLOCK_MONOTONIC, &b);
  return ((b.tv_sec - a->tv_sec) * 1e9 + (b.tv_nsec - a->tv_nsec)) / n / 1000.0;
}

int main(void) {
  char path[] = "/tmp/syscall-cost-XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0) return 1;
  static char page[4096];
  struct timespec a;
  struct flock lock = {.l_whence = SEEK_SET, .l_start = 0, .l_len = 1};

  clock_gettime(CLOCK_MONOTONIC, &a);
  for (int i = 0; i < 200000; i++) syscall(SYS_getppid);
  double getppid_us = since_us(&a, 200000);

  clock_gettime(CLOCK_MONOTONIC, &a);
  for (int i = 0; i < 200000; i++) {
    lock.l_type = F_WRLCK;
    fcntl(fd, F_SETLK, &lock);
    lock.l_type = F_UNLCK;
    fcntl(fd, F_SETLK, &lock);
  }
  double lock_pair_us = since_us(&a, 200000);

  clock_gettime(CLOCK_MONOTONIC, &a);
  for (int i = 0; i < 100000; i++) {
    if (pwrite(fd, page, 24, 0) < 0 || pwrite(fd, page, sizeof page, 24) < 0) return 1;
  }
  double pwrite_pair_us = since_us(&a, 100000);

  unlink(path);
  printf("{\"getppidUs\":%.3f,\"fcntlLockPairUs\":%.3f,\"pwritePairUs\":%.3f}\n", getppid_us, lock_pair_us, pwrite_pair_us);
  return 0;
}
