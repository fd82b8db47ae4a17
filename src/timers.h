/*
 * timers.h
 *		Timeouts (timers.c).
 */
#ifndef ORDER_EXT_TIMERS_H
#define ORDER_EXT_TIMERS_H

extern uint64 TimersFired;
extern void TimersLeave(const char *subject, int64 order_id, int64 subject_id, const char *machine,
						const char *status);
extern void TimersSchedule(const char *subject, int64 order_id, int64 subject_id,
						   const char *machine, const char *status, int32 version);

/*
 * The SQL that schedules the timers of a status entered at a version, as a
 * CTE named tm: events and delays come as arrays (see TimersArrays);
 * nothing is written unless the SQL condition COND holds.  A timer row
 * already there for that (order, subject, version, event) is kept: one an
 * archived order left behind, when create_order inserts its id again
 * (which is then refused with 40001, not a unique violation).  The due
 * time is reckoned in UTC, whatever the session's TimeZone (a day is 24
 * hours even across a daylight-saving change), and is never in the past (an
 * interval such as '-12 mons +360 days' passes the timeouts CHECK, which
 * counts a month as 30 days).
 */
#define OE_TIMERS_CTE(COND, ORDER_ID, SUBJECT, SUBJECT_ID, STATUS, VERSION, EVENTS, AFTERS) \
	"tm AS (INSERT INTO order_ext.timers" \
	" (order_id, subject, subject_id, status, version, event, due_at)" \
	" SELECT " ORDER_ID ", " SUBJECT ", " SUBJECT_ID ", " STATUS ", " VERSION ", tev," \
	"        greatest(now(), (now() AT TIME ZONE 'UTC' + taf) AT TIME ZONE 'UTC')" \
	" FROM unnest(" EVENTS "::text[], " AFTERS "::interval[]) AS tu(tev, taf)" \
	" WHERE " COND " ON CONFLICT DO NOTHING)"

extern void TimersArrays(const char *machine, const char *status, Datum *events, Datum *afters);

#endif
