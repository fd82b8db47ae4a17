/*
 * timers.c
 *		Timeouts: scheduling a timer when a subject enters a status (per
 *		order_ext.timeouts), and order_ext.run_timers(), which fires the due
 *		ones through the state machine.
 *
 * Owns: the timers table.  Due timers are read without a lock; each is
 * then claimed under a lock of its own order, taken without waiting (FOR
 * UPDATE SKIP LOCKED on that one order row), by a DELETE of its row by
 * primary key: two runners never fire one timer twice, a runner never
 * waits for an order someone else holds (that timer is left for the next
 * run), so it cannot deadlock with a caller that holds the order and waits
 * for a stock row the runner took for an earlier timer, and no statement
 * locks rows of many orders at once (the rule that keeps this working on
 * Citus, API.md).  A timer whose subject has left the status it was set for
 * is stale and dropped; one whose transition fails (guard, actor, a
 * changed machine) is dropped with a WARNING, in its own subtransaction, so
 * one bad timer never holds the others back.  One that fails for the moment
 * (a lock timeout, a deadlock) is put back, due again a few seconds later.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/array.h"
#include "utils/backend_status.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "aftersale.h"
#include "fire.h"
#include "machine.h"
#include "order_ext.h"
#include "stock.h"
#include "timers.h"

static SPIPlanPtr schedule_plan = NULL;
static SPIPlanPtr leave_plan = NULL;
static SPIPlanPtr timer_exists_plan = NULL;
static SPIPlanPtr due_plan = NULL;
static SPIPlanPtr order_lock_plan = NULL;
static SPIPlanPtr order_exists_plan = NULL;
static SPIPlanPtr claim_plan = NULL;
static SPIPlanPtr requeue_plan = NULL;

/* timers fired by this process so far (the worker's run log counts them) */
uint64		TimersFired = 0;

PG_FUNCTION_INFO_V1(run_timers);
PG_FUNCTION_INFO_V1(run_timers_claimed);

/*
 * TimersArrays
 *		The timeouts of (machine, status) as a text[] of events and an
 *		interval[] of delays (both empty if there are none).
 */
void
TimersArrays(const char *machine, const char *status, Datum *events, Datum *afters)
{
	const TimeoutDef *d;
	Datum	   *ev;
	Datum	   *af;
	int			n = 0;
	int			dims[1];
	int			lbs[1] = {1};

	for (d = TimeoutsLookup(machine, status); d != NULL; d = d->next)
		n++;
	ev = palloc(sizeof(Datum) * Max(n, 1));
	af = palloc(sizeof(Datum) * Max(n, 1));
	n = 0;
	for (d = TimeoutsLookup(machine, status); d != NULL; d = d->next)
	{
		ev[n] = CStringGetTextDatum(d->event);
		af[n] = IntervalPGetDatum(&d->after);
		n++;
	}
	dims[0] = n;
	*events = PointerGetDatum(construct_md_array(ev, NULL, 1, dims, lbs, TEXTOID, -1, false,
												 TYPALIGN_INT));
	*afters = PointerGetDatum(construct_md_array(af, NULL, 1, dims, lbs, INTERVALOID, 16, false,
												 TYPALIGN_DOUBLE));
}

/*
 * TimersSchedule
 *		Set the timers of (machine, status) for a subject that has just
 *		entered that status at 'version'.  The caller is connected to SPI.
 */
void
TimersSchedule(const char *subject, int64 order_id, int64 subject_id, const char *machine,
			   const char *status, int32 version)
{
	Oid			argtypes[7] = {INT8OID, TEXTOID, INT8OID, TEXTOID, INT4OID, TEXTARRAYOID,
	INTERVALARRAYOID};
	Datum		values[7];
	SPIPlanPtr	plan;

	if (TimeoutsLookup(machine, status) == NULL)
		return;
	plan = OrderPlan(&schedule_plan,
					 "WITH " OE_TIMERS_CTE("true", "$1", "$2", "$3", "$4", "$5", "$6", "$7") " SELECT 1",
					 7, argtypes);
	values[0] = Int64GetDatum(order_id);
	values[1] = CStringGetTextDatum(subject);
	values[2] = Int64GetDatum(subject_id);
	values[3] = CStringGetTextDatum(status);
	values[4] = Int32GetDatum(version);
	TimersArrays(machine, status, &values[5], &values[6]);
	if (SPI_execute_plan(plan, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not schedule timers");
}

/*
 * TimersLeave
 *		A subject leaves its status (of machine): its pending timers (all of
 *		that status) go now, under the caller's lock of its order, rather than wait as
 *		stale rows until they come due (a shipped order's 10-day timer
 *		stayed 10 days after the buyer confirmed receipt, and every runner
 *		then had to claim and drop it).  The caller is connected to SPI.
 */
void
TimersLeave(const char *subject, int64 order_id, int64 subject_id, const char *machine,
			const char *status)
{
	Oid			argtypes[3] = {INT8OID, TEXTOID, INT8OID};
	Datum		values[3];

	if (TimeoutsLookup(machine, status) == NULL)
		return;					/* a status with no timeouts has no timers */
	values[0] = Int64GetDatum(order_id);
	values[1] = CStringGetTextDatum(subject);
	values[2] = Int64GetDatum(subject_id);
	if (SPI_execute_plan(OrderPlan(&leave_plan,
								   "DELETE FROM order_ext.timers"
								   " WHERE order_id = $1 AND subject = $2 AND subject_id = $3",
								   3, argtypes),
						 values, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not drop the timers of %s " INT64_FORMAT, subject, subject_id);
}

/* A claimed timer. */
typedef struct Timer
{
	int64		order_id;
	char		subject[OE_NAME_LEN];
	int64		subject_id;
	char		status[OE_NAME_LEN];
	int32		version;
	char		event[OE_NAME_LEN];
} Timer;

/*
 * FireOrderTimer
 *		Fire one order timer if the order is still where the timer found it;
 *		true if it fired.
 */
static bool
FireOrderTimer(Timer *tm, Jsonb *payload)
{
	OrderState	st;

	if (!OrderLock(tm->order_id, &st))
		return false;			/* archived or gone */
	if (strcmp(st.status, tm->status) != 0 || st.status_version != tm->version)
		return false;			/* moved on: stale */
	(void) OrderFire(&st, tm->event, true, st.version, "system", payload);
	return true;
}

/* A timer to fire in a subtransaction, and whether it fired. */
typedef struct TimerArgs
{
	Timer	   *tm;
	Jsonb	   *payload;
	bool		fired;
} TimerArgs;

static void
FireTimerSubject(void *arg)
{
	TimerArgs  *ta = arg;
	Timer	   *tm = ta->tm;

	if (strcmp(tm->subject, "order") == 0)
		ta->fired = FireOrderTimer(tm, ta->payload);
	else if (strcmp(tm->subject, "after_sale") == 0)
		ta->fired = AfterSaleTimerFire(tm->order_id, tm->subject_id, tm->status, tm->version,
									   tm->event, ta->payload);
	else
		elog(WARNING, "order_ext: dropping timer for unknown subject \"%s\"", tm->subject);
}

/*
 * TransientError
 *		An error that says nothing about the timer, only about the moment: a
 *		lock timeout, a deadlock or serialization failure, short of memory or
 *		disk, an I/O error.  Another try may well fire it.
 */
static bool
TransientError(int sqlerrcode)
{
	int			category = ERRCODE_TO_CATEGORY(sqlerrcode);

	return sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE ||
		sqlerrcode == ERRCODE_T_R_SERIALIZATION_FAILURE ||
		sqlerrcode == ERRCODE_T_R_DEADLOCK_DETECTED ||
		category == ERRCODE_INSUFFICIENT_RESOURCES ||
		category == ERRCODE_SYSTEM_ERROR;
}

/* What ClaimTimer found. */
typedef enum TimerClaim
{
	TIMER_CLAIMED,				/* its row deleted, its order locked: fire it */
	TIMER_BUSY,					/* its order is held by another transaction: leave it */
	TIMER_GONE					/* another runner took it, or its order is gone */
} TimerClaim;

/*
 * ClaimTimer
 *		Lock the timer's order without waiting, then delete the timer's row
 *		by primary key.  A timer whose order is archived or gone is deleted
 *		too (TIMER_GONE: nothing to fire).
 */
/* A timer's row as SQL parameters $1..$6, in the timers table's order. */
static Oid	timer_argtypes[6] = {INT8OID, TEXTOID, INT8OID, TEXTOID, INT4OID, TEXTOID};

static void
TimerValues(const Timer *tm, Datum *values)
{
	values[0] = Int64GetDatum(tm->order_id);
	values[1] = CStringGetTextDatum(tm->subject);
	values[2] = Int64GetDatum(tm->subject_id);
	values[3] = CStringGetTextDatum(tm->status);
	values[4] = Int32GetDatum(tm->version);
	values[5] = CStringGetTextDatum(tm->event);
}

/* a timer's row by its key ($4, the status, is not part of it) */
#define TIMER_KEY " WHERE (order_id, subject, subject_id, version, event) = ($1, $2, $3, $5, $6)"
#define TIMER_BY_KEY(...) "SELECT " #__VA_ARGS__ " FROM order_ext.timers" TIMER_KEY

static TimerClaim
ClaimTimer(const Timer *tm)
{
	Oid		   *argtypes = timer_argtypes;
	Datum		values[6];
	bool		order_gone = false;

	TimerValues(tm, values);
	if (SPI_execute_plan(OrderPlan(&order_lock_plan,
								   "SELECT 1 FROM order_ext.orders WHERE order_id = $1 FOR UPDATE SKIP LOCKED",
								   1, argtypes),
						 values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not lock order " INT64_FORMAT, tm->order_id);
	if (SPI_processed == 0)
	{
		if (SPI_execute_plan(OrderPlan(&order_exists_plan,
									   "SELECT 1 FROM order_ext.orders WHERE order_id = $1",
									   1, argtypes),
							 values, NULL, false, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not read order " INT64_FORMAT, tm->order_id);
		if (SPI_processed > 0)
			return TIMER_BUSY;
		order_gone = true;		/* archived or gone: its timer goes too */
	}
	/*
	 * The timer's row without waiting either: a transaction moving an
	 * after-sale holds its timer rows (TimersLeave) without the order's
	 * lock; a runner waiting for them, outside the timer's subtransaction,
	 * would wait as long as it lasts, holding the rows of the timers it
	 * fired before (and could close a deadlock with it).
	 */
	if (SPI_execute_plan(OrderPlan(&claim_plan,
								   "DELETE FROM order_ext.timers" TIMER_KEY
								   " AND (order_id, subject, subject_id, version, event) IN ("
								   TIMER_BY_KEY(order_id, subject, subject_id, version, event)
								   " FOR UPDATE SKIP LOCKED)",
								   6, argtypes),	/* $4, the status, is not part of the key */
						 values, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not claim timer of %s " INT64_FORMAT, tm->subject, tm->subject_id);
	if (SPI_processed == 0)
	{
		/* held (then it is there still), or gone */
		if (SPI_execute_plan(OrderPlan(&timer_exists_plan, TIMER_BY_KEY(1), 6, argtypes),
							 values, NULL, false, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not read timer of %s " INT64_FORMAT, tm->subject, tm->subject_id);
		return SPI_processed > 0 ? TIMER_BUSY : TIMER_GONE;
	}
	return order_gone ? TIMER_GONE : TIMER_CLAIMED;
}

/*
 * TIMER_LOCK_TIMEOUT_MS
 *		How long a timer fired after others in the same call waits for any
 *		lock (lock_timeout, unless the caller's is shorter).  The timers of
 *		one call fire in one transaction, so the stock rows, holdings and
 *		orders of the timers fired so far stay locked until it ends, and
 *		they are taken in due order, not in the SKU order buyers take them
 *		in: a runner that waited for a stock row a buyer holds, while the
 *		buyer waits for one the runner took for an earlier timer, would
 *		deadlock, and the buyer could be the one cancelled (40P01).  Giving
 *		up well before any deadlock_timeout (1 s by default) breaks such a
 *		cycle on the runner's side: the timer is put back and the buyer goes
 *		on.  The first timer of a call holds nothing yet and waits as the
 *		caller would (so a busy SKU's expiries still make progress), and
 *		the claims outside the subtransaction wait for nothing (SKIP LOCKED)
 *		or as the caller would.
 */
#define TIMER_LOCK_TIMEOUT_MS 50

/*
 * FireTimer
 *		Fire one timer in a subtransaction; true if it fired.  One that fails
 *		for the moment (TransientError) is put back, due again in
 *		TIMER_RETRY_S; any other failure (a guard, a missing stock row) drops
 *		it, with a warning either way.
 */
#define TIMER_RETRY_S 5

/*
 * FireTimerSubxact
 *		The timer's subtransaction; after other timers of the call (holding)
 *		it locks stock and holdings rows without waiting (StockNoWait), and
 *		the setting goes back however it ends.
 */
static ErrorData *
FireTimerSubxact(TimerArgs *ta, bool holding)
{
	ErrorData  *edata;

	(void) StockNoWait(holding);
	PG_TRY();
	{
		edata = OrderSubxact(FireTimerSubject, ta);
	}
	PG_CATCH();
	{
		(void) StockNoWait(false);	/* a cancel, rethrown */
		PG_RE_THROW();
	}
	PG_END_TRY();
	(void) StockNoWait(false);
	return edata;
}

static bool
FireTimer(Timer *tm, Jsonb *payload, bool holding, bool *lock_busy, int *nbusy)
{
	TimerArgs	ta = {tm, payload, false};
	ErrorData  *edata;
	int			guc_level = -1;

	/* after other timers of the call: a short lock wait, for this one only */
	if (holding && (LockTimeout == 0 || LockTimeout > TIMER_LOCK_TIMEOUT_MS))
	{
		guc_level = NewGUCNestLevel();
		(void) set_config_option("lock_timeout", CppAsString2(TIMER_LOCK_TIMEOUT_MS), PGC_USERSET,
								 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	}
	/* ... and none for stock and holdings rows */
	edata = FireTimerSubxact(&ta, holding);
	if (guc_level >= 0)
		AtEOXact_GUC(true, guc_level);

	if (edata == NULL)
		return ta.fired;
	if (TransientError(edata->sqlerrcode))
	{
		Datum		values[6];

		*lock_busy = edata->sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE;

		TimerValues(tm, values);
		if (SPI_execute_plan(OrderPlan(&requeue_plan,
									   "INSERT INTO order_ext.timers"
									   " (order_id, subject, subject_id, status, version, event, due_at)"
									   " VALUES ($1, $2, $3, $4, $5, $6,"
									   "         clock_timestamp() + interval '" CppAsString2(TIMER_RETRY_S) " seconds')"
									   " ON CONFLICT DO NOTHING",
									   6, timer_argtypes),
							 values, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not put back timer of %s " INT64_FORMAT, tm->subject, tm->subject_id);
		/* rows held by others: the first in a call warns, the rest are counted */
		ereport(*lock_busy && (*nbusy)++ > 0 ? DEBUG1 : WARNING,
				(errcode(edata->sqlerrcode),
				 errmsg("order_ext: timer %s of %s " INT64_FORMAT " (%s at version %d) put back for %d s: %s",
						tm->event, tm->subject, tm->subject_id, tm->status, tm->version,
						TIMER_RETRY_S, edata->message)));
		FreeErrorData(edata);
		return false;
	}
	ereport(WARNING,
			(errcode(edata->sqlerrcode),
			 errmsg("order_ext: timer %s of %s " INT64_FORMAT " (%s at version %d) dropped: %s",
					tm->event, tm->subject, tm->subject_id, tm->status, tm->version,
					edata->message)));
	FreeErrorData(edata);
	return false;
}

/*
 * RunTimers
 *		Fire up to max due timers; returns how many fired, and in *claimed
 *		how many were due and handled (fired, or dropped as stale).  A timer
 *		fired after others waits for no lock longer than
 *		TIMER_LOCK_TIMEOUT_MS.
 */
static int
RunTimers(int32 max, uint64 *claimed, bool end_at_lock)
{
	Oid			argtypes[1] = {INT4OID};
	Datum		values[1];
	SPIPlanPtr	plan;
	Timer	   *timers;
	uint64		n;
	uint64		i;
	int			fired = 0;
	Jsonb	   *payload;
	bool		holding = false;
	bool		lock_busy = false;
	int			nbusy = 0;

	if (max < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max must not be negative")));
	*claimed = 0;
	if (max == 0)
		return 0;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	plan = OrderPlan(&due_plan,
					 "SELECT order_id, subject, subject_id, status, version, event"
					 " FROM order_ext.timers WHERE due_at <= now() ORDER BY due_at LIMIT $1",
					 1, argtypes);
	values[0] = Int32GetDatum(max);
	if (SPI_execute_plan(plan, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the due timers");

	/* copy out: SPI calls below reuse the tuple table */
	n = SPI_processed;
	timers = palloc(sizeof(Timer) * Max(n, 1));
	for (i = 0; i < n; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;

		timers[i].order_id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		strlcpy(timers[i].subject, SPI_getvalue(tup, desc, 2), OE_NAME_LEN);
		timers[i].subject_id = DatumGetInt64(SPI_getbinval(tup, desc, 3, &isnull));
		strlcpy(timers[i].status, SPI_getvalue(tup, desc, 4), OE_NAME_LEN);
		timers[i].version = DatumGetInt32(SPI_getbinval(tup, desc, 5, &isnull));
		strlcpy(timers[i].event, SPI_getvalue(tup, desc, 6), OE_NAME_LEN);
	}

	payload = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{\"timer\": true}")));
	for (i = 0; i < n; i++)
	{
		TimerClaim claim;

		CHECK_FOR_INTERRUPTS();
		claim = ClaimTimer(&timers[i]);
		if (claim != TIMER_BUSY)
			(*claimed)++;
		if (claim == TIMER_CLAIMED && FireTimer(&timers[i], payload, holding, &lock_busy, &nbusy))
		{
			fired++;
			TimersFired++;
		}
		holding = holding || claim != TIMER_BUSY;
		/*
		 * A lock a buyer holds: the worker's call (end_at_lock) ends here,
		 * so that the rows of the timers fired so far are let go now rather
		 * than after the rest of the batch and its waits; it calls again at
		 * once, and the timers left are due still.  run_timers() goes on,
		 * as a caller that runs it once a minute (pg_cron) expects.
		 */
		if (lock_busy && end_at_lock)
			break;
		lock_busy = false;
		if ((i + 1) % 500 == 0)
		{
			/* progress in pg_stat_activity.query while the call runs */
			char		activity[128];

			snprintf(activity, sizeof(activity),
					 "order_ext.run_timers: %llu of %llu due timers handled, %d fired",
					 (unsigned long long) (i + 1), (unsigned long long) n, fired);
			pgstat_report_activity(STATE_RUNNING, activity);
		}
		if ((i + 1) % 1000 == 0)
			ereport(LOG,
					(errmsg("order_ext: run_timers progress: %llu of %llu timers handled, %d fired",
							(unsigned long long) (i + 1), (unsigned long long) n, fired)));
	}
	SPI_finish();
	if (nbusy > 1)
		ereport(WARNING,
				(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
				 errmsg("order_ext: %d more timers put back for %d s: other transactions held their rows",
						nbusy - 1, TIMER_RETRY_S)));
	/* the caller's statement again, not a progress line that looks stuck */
	if (n >= 500)
		pgstat_report_activity(STATE_RUNNING,
							   debug_query_string ? debug_query_string : "order_ext.run_timers: done");
	if (n > 0)
		ereport(DEBUG1,
				(errmsg("order_ext: run_timers claimed %llu due timers, fired %d",
						(unsigned long long) n, fired)));
	return fired;
}

/*
 * run_timers(max) -> int
 *		Fire up to max due timers; returns how many fired.
 */
Datum
run_timers(PG_FUNCTION_ARGS)
{
	uint64		claimed;

	PG_RETURN_INT32(RunTimers(PG_ARGISNULL(0) ? 1000 : PG_GETARG_INT32(0), &claimed, false));
}

/*
 * run_timers_claimed(max) -> int
 *		Like run_timers, but returns how many due timers were handled (fired
 *		or dropped), so that the background worker loops until none are due.
 */
Datum
run_timers_claimed(PG_FUNCTION_ARGS)
{
	uint64		claimed;

	(void) RunTimers(PG_ARGISNULL(0) ? 1000 : PG_GETARG_INT32(0), &claimed, true);
	PG_RETURN_INT32((int32) claimed);
}
