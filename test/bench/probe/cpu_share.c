/*
 * cpu_share.c — how much a CPU-bound process on one CPU disturbs a process
 * that has the other CPU to itself; not part of the extension or the suite.
 * docs/archive-benchmark.md quotes what it printed.
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
 *       check (src/runnable.h); idle and idle-yield: the same at SCHED_IDLE;
 *       stream and stream-yield: spin and yield, their work writing a byte
 *       of every 64-byte line of a 128 MB buffer in turn (memory traffic
 *       and cache eviction, as moving rows has, without PostgreSQL; the
 *       buffer is faulted in before the SECONDS start); yield-sy: yield,
 *       and sched_yield() at every look too (hands its CPU to a task
 *       queued behind it there, which the look at /proc/loadavg misses
 *       while the other CPU is idle)
 *       io-yield: yield, while a child process in a session of its own, at
 *       nice 0 and on any CPU, writes IO_MB_PER_S to a 64 MB file in
 *       $TMPDIR (or /tmp) round and round, 64 kB at a time, with an
 *       fdatasync every 20 ms: the WAL the archiver makes at its rate (about
 *       3 kB per order at 19,000 orders/s) and the WAL writer's flushes,
 *       without PostgreSQL
 *   /tmp/cpu_share wake NPROC SECONDS
 *       NPROC processes each sleep a pseudo-random 1-9 ms, then work 300 us,
 *       over and over; prints p50/p90/p99/max of how much later than asked
 *       that work ended (waking up, waiting for a CPU, being interrupted):
 *       the round trip of a small transaction, without PostgreSQL
 *   /tmp/cpu_share rate KIB SECONDS
 *       on CPU 0, increments counters at pseudo-random places of KIB KiB
 *       for SECONDS and prints how many rounds of 4096 it did per second:
 *       how fast work runs, in the caches (small KIB) or not (large)
 *
 * Run a hog on one CPU and a victim (or rate) meanwhile, against one alone.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../../src/runnable.h"	/* the archiver's own check */

#define STREAM_BYTES ((size_t) 128 << 20)
#define IO_MB_PER_S 56
#define IO_FILE_BYTES ((off_t) 64 << 20)
#define IO_CHUNK (64 << 10)

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
cmp_double(const void *a, const void *b)
{
	double		x = *(const double *) a,
				y = *(const double *) b;

	return (x > y) - (x < y);
}

/*
 * wake: NPROC processes each sleep a pseudo-random 1-9 ms, then work 300 us;
 * the delay is how much later than asked the work ends (wake-up plus
 * waiting for a CPU plus being interrupted), as a round trip of a
 * create_order call has; prints p50/p90/p99/max of all delays.
 */
static int
wake(int nproc, double secs)
{
	int			p;
	int			fds[2];

	if (pipe(fds) != 0)
		return 1;
	for (p = 0; p < nproc; p++)
		if (fork() == 0)
		{
			double		end = now_us() + secs * 1e6;
			unsigned long x = 12345 + p * 7919;

			close(fds[0]);
			while (now_us() < end)
			{
				double		want,
							t0,
							d;
				int			sleep_us;

				x = x * 6364136223846793005UL + 1;
				sleep_us = 1000 + (int) ((x >> 33) % 8000);
				t0 = now_us();
				usleep(sleep_us);
				want = t0 + sleep_us + 300;
				t0 = now_us();
				while (now_us() - t0 < 300)
					;
				d = now_us() - want;
				if (write(fds[1], &d, sizeof(d)) != sizeof(d))
					_exit(1);
			}
			_exit(0);
		}
	close(fds[1]);
	{
		size_t		n = 0,
					cap = 1 << 16;
		double	   *v = malloc(cap * sizeof(double));
		double		d;

		while (v != NULL && read(fds[0], &d, sizeof(d)) == sizeof(d))
		{
			if (n == cap)
			{
				double	   *more = realloc(v, (cap *= 2) * sizeof(double));

				if (more == NULL)
					free(v);
				v = more;
			}
			if (v != NULL)
				v[n++] = d;
		}
		if (v == NULL)
		{
			perror("malloc");
			return 1;
		}
		qsort(v, n, sizeof(double), cmp_double);
		if (n > 0)
			printf("wake %d procs %.0f s: %zu delays, us p50 %.0f p90 %.0f p99 %.0f max %.0f\n",
				   nproc, secs, n, v[n / 2], v[n * 9 / 10], v[n * 99 / 100], v[n - 1]);
	}
	return 0;
}

static int
rate(long kib, double secs)
{
	cpu_set_t	zero;
	size_t		n = (size_t) kib * 1024 / sizeof(long);
	volatile long *a = n > 0 ? calloc(n, sizeof(long)) : NULL;
	unsigned long x = 1;
	long		rounds = 0;
	double		start,
				end;

	if (a == NULL)
	{
		perror("calloc");
		return 1;
	}
	CPU_ZERO(&zero);
	CPU_SET(0, &zero);
	if (sched_setaffinity(0, sizeof(zero), &zero) != 0)
		perror("sched_setaffinity");
	start = now_us();
	end = start + secs * 1e6;
	while (now_us() < end)
	{
		int			k;

		for (k = 0; k < 4096; k++)
		{
			x = x * 6364136223846793005UL + 1;
			a[(x >> 20) % n]++;
		}
		rounds++;
	}
	printf("%ld KiB: %.0f rounds/s\n", kib, rounds / ((now_us() - start) / 1e6));
	return 0;
}

/* io-yield's writer: IO_MB_PER_S into a file, fdatasync every 20 ms, for secs */
static void
io_writer(double secs)
{
	const char *dir = getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp";
	char		path[4096];
	static char chunk[IO_CHUNK];
	double		start = now_us(),
				last_sync = start;
	long		written = 0;
	off_t		at = 0;
	int			fd;

	setsid();					/* an autogroup of its own, as the WAL writer has */
	snprintf(path, sizeof(path), "%s/cpu_share_io.%d", dir, (int) getpid());
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
	{
		perror(path);
		_exit(1);
	}
	unlink(path);
	memset(chunk, 'x', sizeof(chunk));
	while (now_us() - start < secs * 1e6)
	{
		double		t = now_us();

		/* ahead of the rate: sleep until it catches up */
		if (written >= (t - start) / 1e6 * IO_MB_PER_S * 1048576.0)
		{
			usleep(1000);
			continue;
		}
		if (pwrite(fd, chunk, IO_CHUNK, at) != IO_CHUNK)
		{
			perror("pwrite");
			_exit(1);
		}
		written += IO_CHUNK;
		at = (at + IO_CHUNK) % IO_FILE_BYTES;
		if (t - last_sync >= 20000)
		{
			fdatasync(fd);
			last_sync = t;
		}
	}
	fprintf(stderr, "io writer: %.0f MB in %.1f s\n", written / 1048576.0, (now_us() - start) / 1e6);
	_exit(0);
}

static int
hog(int cpu, double secs, const char *mode)
{
	cpu_set_t	one;
	FILE	   *f;
	int			yield = strstr(mode, "yield") != NULL;
	int			sy = strstr(mode, "-sy") != NULL;
	size_t		stream = strncmp(mode, "stream", 6) == 0 ? STREAM_BYTES : 0,
				at = 0;
	volatile char *buf = stream ? malloc(stream) : NULL;
	int			fd = open("/proc/loadavg", O_RDONLY);
	long		ncpu = sysconf(_SC_NPROCESSORS_ONLN),
				slept = 0;
	double		end = now_us() + secs * 1e6;
	pid_t		writer = 0;

	if (strncmp(mode, "io", 2) == 0)
	{
		writer = fork();
		if (writer < 0)
		{
			perror("fork");		/* not a floor-io window without its writer */
			return 1;
		}
		if (writer == 0)
			io_writer(secs);	/* before the hog's CPU, nice and autogroup */
	}
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
	if (stream && buf == NULL)
	{
		perror("malloc");
		return 1;
	}
	if (stream)
		memset((char *) buf, 0, stream);
	end = now_us() + secs * 1e6;
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
		{
			/* stream: write a byte of every cache line, round a buffer far over any cache */
			int			i;

			for (i = 0; stream && i < 512; i++, at = (at + 64) % stream)
				buf[at]++;
		}
		if (sy)
			sched_yield();
		for (us = 0; yield && fd >= 0 && us < 2000; us += 200)
		{
			if (RunnableTasks(fd) <= ncpu)
				break;
			usleep(200);
			slept += 200;
		}
	}
	fprintf(stderr, "hog (%s): slept %ld ms\n", mode, slept / 1000);
	if (writer > 0)
	{
		/* a writer that stopped early (open or pwrite failed) left a plain floor */
		int			status;

		if (waitpid(writer, &status, 0) != writer || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		{
			fprintf(stderr, "hog (%s): the io writer failed\n", mode);
			return 1;
		}
	}
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "victim") == 0)
		return victim(atof(argv[2]));
	if (argc == 4 && strcmp(argv[1], "wake") == 0 && atoi(argv[2]) > 0)
		return wake(atoi(argv[2]), atof(argv[3]));
	if (argc == 4 && strcmp(argv[1], "rate") == 0 && atol(argv[2]) > 0)
		return rate(atol(argv[2]), atof(argv[3]));
	if (argc == 5 && strcmp(argv[1], "hog") == 0 &&
		(strcmp(argv[4], "spin") == 0 || strcmp(argv[4], "yield") == 0 ||
		 strcmp(argv[4], "idle") == 0 || strcmp(argv[4], "idle-yield") == 0 ||
		 strcmp(argv[4], "stream") == 0 || strcmp(argv[4], "stream-yield") == 0 ||
		 strcmp(argv[4], "yield-sy") == 0 || strcmp(argv[4], "io-yield") == 0))
		return hog(atoi(argv[2]), atof(argv[3]), argv[4]);
	fprintf(stderr, "usage: %s victim SECONDS | wake NPROC SECONDS | rate KIB SECONDS | hog CPU SECONDS spin|yield|yield-sy|io-yield|idle|idle-yield|stream|stream-yield\n", argv[0]);
	return 2;
}
