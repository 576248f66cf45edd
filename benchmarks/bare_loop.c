// SPDX-License-Identifier: GPL-2.0
/*
 * The physical limit of what one gup_test ioctl costs a program: the ioctl
 * that `gupctl bench pin_fast_benchmark -s 4K -n 1` repeats, in a loop that
 * does nothing else, on the same kind of memory (private anonymous, touched
 * first), timed in-process around the loop.
 *
 *	bare_loop DEVICE PAGES REPEATS THREADS [CPU,CPU...]
 *
 * Prints one JSON object: {"loop_ns": [ns of each thread's loop], ...}.  Run
 * it under the same memory policy as gupctl's buffer (benchmarks/guest.py
 * binds the task to gupctl's node).  Threads share the buffer and the file,
 * as gupctl's do.  With CPUs, thread k is bound to the k-th (cycling) and
 * the buffer is touched on the first, as `gupctl bench --cpus` does.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include "gup_test.h"

#define FOLL_WRITE 0x1	/* the same value before and after v6.3 */

struct worker {
	pthread_t thread;
	int fd;
	unsigned long addr, size;
	long repeats;
	long long loop_ns;
	int cpu;	/* -1: unbound */
	int error;
};

static int bind_cpu(int cpu)
{
	cpu_set_t set;

	if (cpu < 0)
		return 0;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof(set), &set);	/* this thread */
}

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void *loop(void *arg)
{
	struct worker *w = arg;
	struct gup_test gup = {
		.addr = w->addr,
		.nr_pages_per_call = 1,
		.gup_flags = FOLL_WRITE,
	};
	long long start;
	long i;

	if (bind_cpu(w->cpu)) {
		w->error = 1;
		return NULL;
	}
	start = now_ns();
	for (i = 0; i < w->repeats; i++) {
		gup.size = w->size;
		if (ioctl(w->fd, PIN_FAST_BENCHMARK, &gup) < 0 || gup.size != w->size) {
			w->error = 1;
			break;
		}
	}
	w->loop_ns = now_ns() - start;
	return NULL;
}

int main(int argc, char **argv)
{
	struct worker *workers;
	unsigned long size;
	long repeats, threads, i;
	int cpus[64], nr_cpus = 0;
	char *cpu, *rest;
	void *buf;
	int fd;

	if (argc != 5 && argc != 6) {
		fprintf(stderr, "usage: %s DEVICE PAGES REPEATS THREADS [CPU,CPU...]\n", argv[0]);
		return 2;
	}
	for (rest = argc == 6 ? argv[5] : NULL; rest && nr_cpus < 64;) {
		cpu = strsep(&rest, ",");
		cpus[nr_cpus++] = atoi(cpu);
	}
	if (nr_cpus && bind_cpu(cpus[0])) {	/* the buffer is touched on the first */
		perror("sched_setaffinity");
		return 1;
	}
	size = strtoul(argv[2], NULL, 0) * sysconf(_SC_PAGESIZE);
	repeats = strtol(argv[3], NULL, 0);
	threads = strtol(argv[4], NULL, 0);
	if (!size || repeats < 1 || threads < 1) {
		fprintf(stderr, "%s: PAGES, REPEATS and THREADS must be positive\n", argv[0]);
		return 2;
	}
	fd = open(argv[1], O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		perror(argv[1]);
		return 1;
	}
	buf = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	workers = calloc(threads, sizeof(*workers));
	if (buf == MAP_FAILED || !workers) {
		perror("mmap");
		return 1;
	}
	memset(buf, 0, size);
	for (i = 0; i < threads; i++) {
		workers[i] = (struct worker){ .fd = fd, .addr = (unsigned long)buf,
					      .size = size, .repeats = repeats,
					      .cpu = nr_cpus ? cpus[i % nr_cpus] : -1 };
		if (pthread_create(&workers[i].thread, NULL, loop, &workers[i])) {
			perror("pthread_create");
			return 1;
		}
	}
	for (i = 0; i < threads; i++)
		pthread_join(workers[i].thread, NULL);
	for (i = 0; i < threads; i++) {
		if (workers[i].error) {
			fprintf(stderr, "%s: a thread's binding or PIN_FAST_BENCHMARK failed\n",
				argv[0]);
			return 1;
		}
	}
	printf("{\"repeats\": %ld, \"threads\": %ld, \"loop_ns\": [", repeats, threads);
	for (i = 0; i < threads; i++)
		printf("%s%lld", i ? ", " : "", workers[i].loop_ns);
	printf("]}\n");
	return 0;
}
