/*
 * cpu_share.c — how much a CPU-bound process on one CPU disturbs a process
 * that has the other CPU to itself; not part of the extension or the suite.
 * README ("Archiving history orders", benchmark) quotes what it printed.
 *
 *   gcc -O2 -o /tmp/cpu_share test/bench/probe/cpu_share.c
 *   /tmp/cpu_share victim SECONDS
 *       spins for SECONDS (on no CPU in particular) and counts the gaps of
 *       over 0.5 ms in its own progress: with a context switch of its own
 *       (another task of this machine ran instead) or without (the virtual
 *       CPU itself did not run)
 *   /tmp/cpu_share hog CPU SECONDS MODE
 *       keeps CPU busy for SECONDS at nice 10 (its autogroup too, as the
 *       archiver does); MODE spin: nothing else; yield: every 80 us of work
 *       it sleeps 200 us at a time (at most 2 ms) while more tasks are
 *       runnable than there are CPUs, as ArchiveYieldPoint does, with its
 *       check (src/runnable.h); idle and idle-yield: the same at SCHED_IDLE
 *
 * Run a hog on one CPU and a victim meanwhile, against a victim alone.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "../../../src/runnable.h"	/* the archiver's own check */

static double
now_us(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static long
switches(void)
{
	struct rusage r;

	getrusage(RUSAGE_SELF, &r);
	return r.ru_nivcsw + r.ru_nvcsw;
}

static int
victim(double secs)
{
	double		last = now_us(),
				end = last + secs * 1e6,
				ms_sw = 0,
				ms_vm = 0;
	long		last_sw = switches(),
				n_sw = 0,
				n_vm = 0;

	for (;;)
	{
		double		t = now_us();
		long		sw = switches();

		if (t > end)
			break;
		if (t - last > 500)
		{
			if (sw != last_sw)
				n_sw++, ms_sw += (t - last) / 1000;
			else
				n_vm++, ms_vm += (t - last) / 1000;
		}
		last = t;
		last_sw = sw;
	}
	printf("gaps over 0.5 ms in %.0f s: %ld with a switch to another task (%.1f ms), %ld without (%.1f ms)\n",
		   secs, n_sw, ms_sw, n_vm, ms_vm);
	return 0;
}

static int
hog(int cpu, double secs, const char *mode)
{
	cpu_set_t	one;
	FILE	   *f;
	int			yield = strstr(mode, "yield") != NULL;
	int			fd = open("/proc/loadavg", O_RDONLY);
	long		ncpu = sysconf(_SC_NPROCESSORS_ONLN),
				slept = 0;
	double		end = now_us() + secs * 1e6;

	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	if (sched_setaffinity(0, sizeof(one), &one) != 0)
		perror("sched_setaffinity");
	if (setpriority(PRIO_PROCESS, 0, 10) != 0)
		perror("setpriority");
	if ((f = fopen("/proc/self/autogroup", "w")) != NULL)
	{
		fprintf(f, "10\n");
		fclose(f);
	}
	if (strncmp(mode, "idle", 4) == 0)
	{
		struct sched_param sp = {0};

		if (sched_setscheduler(0, SCHED_IDLE, &sp) != 0)
			perror("SCHED_IDLE");
	}
	while (now_us() < end)
	{
		double		t = now_us();
		int			us;

		while (now_us() - t < 80)
			;
		for (us = 0; yield && fd >= 0 && us < 2000; us += 200)
		{
			if (RunnableTasks(fd) <= ncpu)
				break;
			usleep(200);
			slept += 200;
		}
	}
	fprintf(stderr, "hog (%s): slept %ld ms\n", mode, slept / 1000);
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "victim") == 0)
		return victim(atof(argv[2]));
	if (argc == 5 && strcmp(argv[1], "hog") == 0 &&
		(strcmp(argv[4], "spin") == 0 || strcmp(argv[4], "yield") == 0 ||
		 strcmp(argv[4], "idle") == 0 || strcmp(argv[4], "idle-yield") == 0))
		return hog(atoi(argv[2]), atof(argv[3]), argv[4]);
	fprintf(stderr, "usage: %s victim SECONDS | hog CPU SECONDS spin|yield|idle|idle-yield\n", argv[0]);
	return 2;
}
