/*
 * timers.h
 *		Timeouts (timers.c).
 */
#ifndef ORDER_EXT_TIMERS_H
#define ORDER_EXT_TIMERS_H

extern void TimersSchedule(const char *subject, int64 order_id, int64 subject_id,
						   const char *machine, const char *status, int32 version);

/*
 * The SQL that schedules the timers of a status entered at a version, as a
 * CTE named tm: events and delays come as arrays (see TimersArrays);
 * nothing is written unless the SQL condition COND holds.
 */
#define OE_TIMERS_CTE(COND, ORDER_ID, SUBJECT, SUBJECT_ID, STATUS, VERSION, EVENTS, AFTERS) \
	"tm AS (INSERT INTO order_ext.timers" \
	" (order_id, subject, subject_id, status, version, event, due_at)" \
	" SELECT " ORDER_ID ", " SUBJECT ", " SUBJECT_ID ", " STATUS ", " VERSION ", tev, now() + taf" \
	" FROM unnest(" EVENTS "::text[], " AFTERS "::interval[]) AS tu(tev, taf)" \
	" WHERE " COND ")"

extern void TimersArrays(const char *machine, const char *status, Datum *events, Datum *afters);

#endif
