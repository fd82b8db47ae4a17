/*
 * timers.h
 *		Timeouts (timers.c).
 */
#ifndef ORDER_EXT_TIMERS_H
#define ORDER_EXT_TIMERS_H

extern void TimersSchedule(const char *subject, int64 order_id, int64 subject_id,
						   const char *machine, const char *status, int32 version);

#endif
