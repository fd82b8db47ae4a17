/*
 * aftersale.c
 *		After-sales requests: order_ext.open_after_sale() and
 *		order_ext.fire_after_sale(), on the state machine 'after_sale', and
 *		their timers (auto-approval).
 *
 * Owns: order_ext.after_sales.  A request names units of a paid order's
 * lines; it moves through the after_sale machine with the same checks as
 * an order (expected_version: OE002; transition, actor and the kind guard:
 * OE001), and every move is an outbox notice 'after_sale'.  Requests under
 * way (not rejected, refunded or otherwise finished: RequestClaims) may not
 * claim more units of a line than it has left to refund.  Two events do more: 'receive_return' gives the
 * returned units back to stock (restock), and 'refund' refunds the units through the same code as refund(), with
 * refund_id 'after_sale:<id>' (so the order's timeline shows the refund
 * and a full refund closes the order).  Ids come from new_order_id(); the
 * table is keyed (order_id, id) and indexed on id, so fire_after_sale(id)
 * finds its order with one index probe.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/snapmgr.h"

#include "aftersale.h"
#include "events.h"
#include "fire.h"
#include "machine.h"
#include "money.h"
#include "order_ext.h"
#include "stock.h"
#include "timers.h"

#define MAX_REASON_LEN		2000

/* What fire_after_sale reads of a locked request. */
typedef struct AfterSaleState
{
	int64		id;
	int64		order_id;
	char		kind[OE_NAME_LEN];
	char		status[OE_NAME_LEN];
	int32		version;
	int32		status_version;
	Jsonb	   *lines;
} AfterSaleState;

static SPIPlanPtr lock_plan = NULL;
static SPIPlanPtr insert_plan = NULL;
static SPIPlanPtr update_plan = NULL;
static SPIPlanPtr skus_plan = NULL;

static bool RequestClaims(const char *status);

PG_FUNCTION_INFO_V1(open_after_sale);
PG_FUNCTION_INFO_V1(fire_after_sale);

/*
 * AfterSaleLock
 *		Lock the request and read it; false if there is none.  order_id 0:
 *		not known yet, found by id first (an index probe), so that the lock
 *		itself is by the full key (one shard on a distributed cluster).
 */
static bool
AfterSaleLock(int64 order_id, int64 id, AfterSaleState *as)
{
	static SPIPlanPtr find_plan = NULL;
	Oid			argtypes[2] = {INT8OID, INT8OID};
	Datum		values[2];
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;

	values[0] = Int64GetDatum(id);
	if (order_id == 0)
	{
		if (SPI_execute_plan(OrderPlan(&find_plan,
									   "SELECT order_id FROM order_ext.after_sales WHERE id = $1",
									   1, argtypes),
							 values, NULL, false, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not find after-sale " INT64_FORMAT, id);
		if (SPI_processed == 0)
			return false;
		order_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
											   &isnull));
	}
	values[1] = Int64GetDatum(order_id);
	if (SPI_execute_plan(OrderPlan(&lock_plan,
								   "SELECT kind, status, version, status_version, lines"
								   " FROM order_ext.after_sales WHERE order_id = $2 AND id = $1 FOR UPDATE",
								   2, argtypes),
						 values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not lock after-sale " INT64_FORMAT, id);
	if (SPI_processed == 0)
		return false;
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	as->id = id;
	as->order_id = order_id;
	strlcpy(as->kind, SPI_getvalue(tup, desc, 1), OE_NAME_LEN);
	strlcpy(as->status, SPI_getvalue(tup, desc, 2), OE_NAME_LEN);
	as->version = DatumGetInt32(SPI_getbinval(tup, desc, 3, &isnull));
	as->status_version = DatumGetInt32(SPI_getbinval(tup, desc, 4, &isnull));
	as->lines = DatumGetJsonbPCopy(SPI_getbinval(tup, desc, 5, &isnull));
	return true;
}

/*
 * AfterSaleNotice
 *		The outbox notice of a request's change.
 */
static void
AfterSaleNotice(int64 order_id, int64 id, const char *kind, const char *event,
				const char *from, const char *to, int32 version, const char *actor,
				int64 amount)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, "{\"after_sale_id\": " INT64_FORMAT ", ", id);
	JsonAppendKeyString(&buf, "kind", kind, true);
	JsonAppendKeyString(&buf, "event", event, false);
	appendStringInfoString(&buf, ", \"from_status\": ");
	if (from)
		escape_json(&buf, from);
	else
		appendStringInfoString(&buf, "null");
	JsonAppendKeyString(&buf, "to_status", to, false);
	JsonAppendKeyString(&buf, "actor", actor, false);
	appendStringInfo(&buf, ", \"version\": %d, \"amount\": " INT64_FORMAT "}", version, amount);
	OutboxNotice(order_id, 0, "after_sale", JsonbPGetDatum(JsonbFromString(buf.data)));
}

/*
 * ReturnUnits
 *		'receive_return': the returned units go back to stock.
 */
static void
ReturnUnits(AfterSaleState *as, const UnitLine *lines, int nlines)
{
	Oid			argtypes[2] = {INT8OID, INT4OID};
	Datum		values[2];
	StockLine  *back = palloc(sizeof(StockLine) * Max(nlines, 1));
	OrderState	st;
	int			i;

	if (!OrderLock(as->order_id, &st))
		OrderNotFound(as->order_id);

	for (i = 0; i < nlines; i++)
	{
		values[0] = Int64GetDatum(as->order_id);
		values[1] = Int32GetDatum(lines[i].line_no);
		if (SPI_execute_plan(OrderPlan(&skus_plan,
									   "SELECT sku FROM order_ext.order_items"
									   " WHERE order_id = $1 AND line_no = $2",
									   2, argtypes),
							 values, NULL, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "could not read line %d of order " INT64_FORMAT, lines[i].line_no,
				 as->order_id);
		back[i].sku = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		back[i].qty = lines[i].qty;
	}
	/*
	 * Back to stock now; still the buyer's for the purchase limit until
	 * refunded (API.md: refunded units no longer count), which the
	 * request's refund does (REFUND_STOCK_DONE).
	 */
	OrderReturnUnits(&st, nlines, back, true, true, false);
}

/*
 * AfterSaleFire
 *		Fire event on a request locked with AfterSaleLock; returns the new
 *		row (SPI context).
 */
static Datum
AfterSaleFire(AfterSaleState *as, const char *event, bool has_expected, int32 expected,
			  const char *actor)
{
	Oid			argtypes[7] = {INT8OID, INT8OID, TEXTOID, INT4OID, BOOLOID, INT8OID, TEXTOID};
	Datum		values[7];
	char		nulls[7] = {' ', ' ', ' ', ' ', ' ', 'n', 'n'};
	const TransitionDef *t;
	StringInfoData attrs;
	char		to_status[OE_NAME_LEN];
	int32		new_version;
	bool		moved;
	bool		isnull;
	int64		amount;
	Datum		row;

	CheckVersion("after-sale", as->id, as->version, has_expected, expected);
	initStringInfo(&attrs);
	appendStringInfoChar(&attrs, '{');
	JsonAppendKeyString(&attrs, "kind", as->kind, true);
	appendStringInfoChar(&attrs, '}');
	t = TransitionCheck("after-sale", as->id, AFTER_SALE_MACHINE, as->status, event, actor,
						JsonbFromString(attrs.data));
	strlcpy(to_status, t->to_status, OE_NAME_LEN);
	if (as->version == PG_INT32_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("version of after-sale " INT64_FORMAT " is at its maximum", as->id)));
	new_version = as->version + 1;
	moved = strcmp(to_status, as->status) != 0;

	/*
	 * A request that claims no units (rejected: another may have taken them
	 * since) and moves to a status that does (an appeal) claims them again,
	 * so they must still be free.
	 */
	if (!RequestClaims(as->status) && RequestClaims(to_status))
	{
		UnitLine   *lines;
		int			nlines = ParseUnitLines(as->lines, "lines", &lines);
		OrderState	st;

		if (!OrderLock(as->order_id, &st))
			OrderNotFound(as->order_id);
		ClaimsCovered(&st, NULL, 0, lines, nlines, 0, as->id,
					  psprintf("after-sale " INT64_FORMAT " to claim again", as->id));
	}

	if (strcmp(event, "receive_return") == 0 || strcmp(event, "refund") == 0)
	{
		UnitLine   *lines;
		int			nlines = ParseUnitLines(as->lines, "lines", &lines);

		if (strcmp(event, "receive_return") == 0)
			ReturnUnits(as, lines, nlines);
		else
		{
			OrderState	st;
			char	   *refund_id = psprintf(AFTER_SALE_REFUND_PREFIX INT64_FORMAT, as->id);
			int64		before;

			if (!OrderLock(as->order_id, &st))
				OrderNotFound(as->order_id);
			before = st.refunded_total;
			/* a return's units went back to stock when it was received */
			(void) RefundApply(&st, refund_id, lines, nlines, false, 0, false,
							   strcmp(as->kind, "return_refund") == 0
							   ? REFUND_STOCK_DONE : REFUND_RETURN_UNITS,
							   as->id, actor);
			values[5] = Int64GetDatum(st.refunded_total - before);
			nulls[5] = ' ';
			values[6] = CStringGetTextDatum(refund_id);
			nulls[6] = ' ';
		}
	}

	values[0] = Int64GetDatum(as->order_id);
	values[1] = Int64GetDatum(as->id);
	values[2] = CStringGetTextDatum(to_status);
	values[3] = Int32GetDatum(new_version);
	values[4] = BoolGetDatum(moved);
	if (SPI_execute_plan(OrderPlan(&update_plan,
								   "UPDATE order_ext.after_sales a SET status = $3, version = $4,"
								   " status_version = CASE WHEN $5 THEN $4 ELSE status_version END,"
								   " amount = coalesce($6, amount), refund_id = coalesce($7, refund_id),"
								   " updated_at = now()"
								   " WHERE order_id = $1 AND id = $2 RETURNING a, a.amount",
								   7, argtypes),
						 values, nulls, false, 0) != SPI_OK_UPDATE_RETURNING || SPI_processed != 1)
		elog(ERROR, "could not update after-sale " INT64_FORMAT, as->id);
	row = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	/* the event's amount is the request's, as its row has it after the move */
	amount = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));

	if (moved)
	{
		TimersLeave("after_sale", as->order_id, as->id, AFTER_SALE_MACHINE, as->status);
		TimersSchedule("after_sale", as->order_id, as->id, AFTER_SALE_MACHINE, to_status,
					   new_version);
	}
	AfterSaleNotice(as->order_id, as->id, as->kind, event, as->status, to_status, new_version,
					actor, amount);
	strlcpy(as->status, to_status, OE_NAME_LEN);
	as->version = new_version;
	if (moved)
		as->status_version = new_version;
	return row;
}

/*
 * AfterSaleTimerFire
 *		Fire a due timer of a request if the request is still where the
 *		timer found it; true if it fired.  The caller is connected to SPI.
 */
bool
AfterSaleTimerFire(int64 order_id, int64 id, const char *status, int32 version,
				   const char *event, Jsonb *payload)
{
	AfterSaleState as;

	(void) payload;
	if (!AfterSaleLock(order_id, id, &as))
		return false;
	if (strcmp(as.status, status) != 0 || as.status_version != version)
		return false;			/* moved on: stale */
	(void) AfterSaleFire(&as, event, true, as.version, "system");
	return true;
}

/*
 * RequestClaims
 *		Whether a request in this status holds units of its order's lines:
 *		one under way does; a rejected one does not (until it is appealed),
 *		nor a finished one (refunded, or another terminal status of the
 *		after_sale machine, such as a shop's 'closed').
 */
static bool
RequestClaims(const char *status)
{
	const MachineDef *m = MachineLookup(AFTER_SALE_MACHINE);

	return strcmp(status, "rejected") != 0 && strcmp(status, "refunded") != 0 &&
		(m == NULL || !MachineIsTerminal(m, status));
}

/*
 * NotClaiming
 *		The statuses of RequestClaims that hold nothing, as a text[] for SQL.
 */
static Datum
NotClaiming(void)
{
	const MachineDef *m = MachineLookup(AFTER_SALE_MACHINE);
	int			nterminal = m ? m->nterminal : 0;
	Datum	   *d = palloc(sizeof(Datum) * (nterminal + 2));
	int			i;

	d[0] = CStringGetTextDatum("rejected");
	d[1] = CStringGetTextDatum("refunded");
	for (i = 0; i < nterminal; i++)
		d[i + 2] = CStringGetTextDatum(m->terminal[i]);
	return PointerGetDatum(construct_array(d, nterminal + 2, TEXTOID, -1, false, TYPALIGN_INT));
}

/*
 * AfterSaleClaimedUnits
 *		The units of each line that the order's requests claiming units
 *		(RequestClaims; other than except_id) hold, one UnitLine a request
 *		and line, ordered by line_no; returns the count.  The caller holds
 *		the order's lock (OrderLock).
 *
 *		Read with the latest snapshot, not the transaction's: opening or
 *		appealing a request inserts or updates an after_sales row under the
 *		order's lock without changing the order row, so a REPEATABLE READ
 *		refund that waited for that lock would otherwise not see the claim
 *		it must respect (and no serialization error would tell it).  Every
 *		claim committed before the caller took the order's lock is seen;
 *		later ones wait for that lock.
 */
int
AfterSaleClaimedUnits(int64 order_id, int64 except_id, UnitLine **out)
{
	static SPIPlanPtr claimed_units_plan = NULL;
	Oid			argtypes[3] = {INT8OID, INT8OID, TEXTARRAYOID};
	Datum		values[3];
	UnitLine   *u;
	uint64		r;

	values[0] = Int64GetDatum(order_id);
	values[1] = Int64GetDatum(except_id);
	values[2] = NotClaiming();
	if (SPI_execute_snapshot(OrderPlan(&claimed_units_plan,
									   "SELECT (e->>'line_no')::int, sum((e->>'qty')::int)::int"
									   " FROM order_ext.after_sales a, jsonb_array_elements(a.lines) e"
									   " WHERE a.order_id = $1 AND a.status <> ALL ($3) AND a.id <> $2"
									   " GROUP BY a.id, 1 ORDER BY 1",
									   3, argtypes),
							 values, NULL, GetLatestSnapshot(), InvalidSnapshot, false, false, 0)
		!= SPI_OK_SELECT)
		elog(ERROR, "could not read the order's after-sales");
	u = palloc(sizeof(UnitLine) * Max(SPI_processed, 1));
	for (r = 0; r < SPI_processed; r++)
	{
		bool		isnull;

		u[r].line_no = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &isnull));
		u[r].qty = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 2, &isnull));
	}
	*out = u;
	return (int) SPI_processed;
}

/*
 * AfterSaleUnderWay
 *		Whether an order has a request not in a terminal status of the
 *		after_sale machine (a rejected one can still be appealed).  The
 *		caller holds the order's lock; read with the latest snapshot, as
 *		AfterSaleClaimedUnits does: open_after_sale takes that lock without
 *		changing the order row, so a REPEATABLE READ caller that waited for
 *		it gets no serialization error and its own snapshot would miss the
 *		request just opened.
 */
bool
AfterSaleUnderWay(int64 order_id)
{
	static SPIPlanPtr statuses_plan = NULL;
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1];
	const MachineDef *m = MachineLookup(AFTER_SALE_MACHINE);
	uint64		r;

	values[0] = Int64GetDatum(order_id);
	if (SPI_execute_snapshot(OrderPlan(&statuses_plan,
									   "SELECT DISTINCT status FROM order_ext.after_sales WHERE order_id = $1",
									   1, argtypes),
							 values, NULL, GetLatestSnapshot(), InvalidSnapshot, false, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the after-sales of order " INT64_FORMAT, order_id);
	for (r = 0; r < SPI_processed; r++)
	{
		char	   *status = SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1);

		if (m == NULL || !MachineIsTerminal(m, status))
			return true;
	}
	return false;
}

/*
 * open_after_sale(order_id, kind, lines, reason) -> bigint
 */
Datum
open_after_sale(PG_FUNCTION_ARGS)
{
	Oid			argtypes[7] = {INT8OID, INT8OID, TEXTOID, TEXTOID, JSONBOID, INT8OID, TEXTOID};
	Datum		values[7];
	char		nulls[7] = {' ', ' ', ' ', ' ', ' ', ' ', ' '};
	int64		order_id;
	char	   *kind;
	UnitLine   *lines;
	int			nlines;
	OrderState	st;
	const MachineDef *m;
	const MachineDef *asm_;
	int64		amount;
	int64		id;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be NULL",
						PG_ARGISNULL(0) ? "order_id" : PG_ARGISNULL(1) ? "kind" : "lines")));
	order_id = PG_GETARG_INT64(0);
	kind = NameTextArg(fcinfo, 1);
	if (strcmp(kind, "refund_only") != 0 && strcmp(kind, "return_refund") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("kind must be refund_only or return_refund"),
				 errdetail("Got \"%s\".", kind)));
	nlines = ParseUnitLines(PG_GETARG_JSONB_P(2), "lines", &lines);
	if (!PG_ARGISNULL(3) && VARSIZE_ANY_EXHDR(PG_GETARG_TEXT_PP(3)) > MAX_REASON_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("reason must be at most %d bytes", MAX_REASON_LEN)));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	OrderLockLive(order_id, &st, "after-sales are closed");
	m = MachineLookup(st.machine);
	if (m != NULL && MachineIsTerminal(m, st.status))
		ereport(ERROR,
				(errcode(ERRCODE_OE_TRANSITION),
				 errmsg("order " INT64_FORMAT " is %s: after-sales are closed", order_id, st.status)));
	asm_ = MachineLookup(AFTER_SALE_MACHINE);
	if (asm_ == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("machine \"%s\" does not exist", AFTER_SALE_MACHINE)));
	/* the units must be there to refund: the same checks as refund() */
	amount = RefundQuoteUnits(&st, lines, nlines);
	ClaimsCovered(&st, NULL, 0, lines, nlines, 0, 0, "another after-sale");
	id = NewOrderId();

	values[0] = Int64GetDatum(id);
	values[1] = Int64GetDatum(order_id);
	values[2] = CStringGetTextDatum(kind);
	values[3] = CStringGetTextDatum(asm_->initial_status);
	values[4] = JsonbPGetDatum(UnitLinesObjects(lines, nlines));
	values[5] = Int64GetDatum(amount);
	if (PG_ARGISNULL(3))
		nulls[6] = 'n';
	else
		values[6] = PG_GETARG_DATUM(3);
	if (SPI_execute_plan(OrderPlan(&insert_plan,
								   "INSERT INTO order_ext.after_sales"
								   " (id, order_id, kind, status, version, status_version, lines, amount,"
								   "  reason, created_at, updated_at)"
								   " VALUES ($1, $2, $3, $4, 1, 1, $5, $6, $7, now(), now())",
								   7, argtypes),
						 values, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not insert after-sale");
	TimersSchedule("after_sale", order_id, id, AFTER_SALE_MACHINE, asm_->initial_status, 1);
	AfterSaleNotice(order_id, id, kind, "open", NULL, asm_->initial_status, 1, "buyer", amount);
	SPI_finish();
	PG_RETURN_INT64(id);
}

/*
 * AfterSaleNotLive
 *		fire_after_sale for a request that is not live: one archived with
 *		its order is OE002 if the version is stale (checked first, as
 *		everywhere), else OE001, as fire() answers for an archived order;
 *		one that is nowhere is OE008.
 */
static void
AfterSaleNotLive(int64 id, bool has_expected, int32 expected, const char *event)
{
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1];
	bool		isnull;
	int32		version;

	values[0] = Int64GetDatum(id);
	if (SPI_execute_with_args("SELECT version, status FROM order_ext.after_sales_history WHERE id = $1",
							  1, argtypes, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read after-sale " INT64_FORMAT " in history", id);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OE_NOT_FOUND),
				 errmsg("after-sale " INT64_FORMAT " does not exist", id)));
	version = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	CheckVersion("after-sale", id, version, has_expected, expected);
	ereport(ERROR,
			(errcode(ERRCODE_OE_TRANSITION),
			 errmsg("event \"%s\" is not allowed for after-sale " INT64_FORMAT " in status \"%s\": it is archived",
					event, id, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2)),
			 errdetail("order_ext.archive() moved it, with its order, to the history tables.")));
}

/*
 * fire_after_sale(id, event, expected_version, actor) -> order_ext.after_sales
 */
Datum
fire_after_sale(PG_FUNCTION_ARGS)
{
	AfterSaleState as;
	int64		id;
	char	   *event;
	char	   *actor;
	Datum		row;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be NULL",
						PG_ARGISNULL(0) ? "id" : PG_ARGISNULL(1) ? "event" : "actor")));
	id = PG_GETARG_INT64(0);
	event = NameTextArg(fcinfo, 1);
	actor = NameTextArg(fcinfo, 3);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (!AfterSaleLock(0, id, &as))
		AfterSaleNotLive(id, !PG_ARGISNULL(2), PG_ARGISNULL(2) ? 0 : PG_GETARG_INT32(2), event);
	RefuseInternalActor("after-sale", id, as.version, !PG_ARGISNULL(2),
						PG_ARGISNULL(2) ? 0 : PG_GETARG_INT32(2), event, actor);
	row = AfterSaleFire(&as, event, !PG_ARGISNULL(2), PG_ARGISNULL(2) ? 0 : PG_GETARG_INT32(2),
						actor);
	row = SPI_datumTransfer(row, false, -1);
	SPI_finish();
	PG_RETURN_DATUM(row);
}
