/*
 * runnable.h
 *		How many tasks the machine has runnable right now, from /proc/loadavg
 *		(Linux): what archive()'s yield point steps aside on.  Plain C, no
 *		PostgreSQL headers, so that test/bench/probe/cpu_share.c measures the
 *		same check.
 */
#ifndef ORDER_EXT_RUNNABLE_H
#define ORDER_EXT_RUNNABLE_H

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * RunnableTasks
 *		The runnable tasks of the machine, read from fd (/proc/loadavg opened
 *		for reading), the caller's own included; -1 if it cannot tell.
 */
static inline long
RunnableTasks(int fd)
{
	char		buf[128];
	ssize_t		n = pread(fd, buf, sizeof(buf) - 1, 0);
	char	   *field = buf;
	int			i;

	/* "0.52 0.58 0.59 3/467 12345": the 4th field is runnable/all */
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	for (i = 0; i < 3 && field != NULL; i++)
		field = strchr(field + 1, ' ');
	return field == NULL ? -1 : strtol(field, NULL, 10);
}

#endif							/* ORDER_EXT_RUNNABLE_H */
