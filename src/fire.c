/*
 * fire.c
 *		The state machine engine: order_ext.fire() and OrderFire(), the one
 *		code path that moves an order from one status to the next.
 *
 * Owns: the order of checks (order exists: OE008; expected_version: OE002;
 * transition, guard and actor: OE001), the version bump, milestone stamps,
 * the event row, the effects and the timers of the new status.  Everything
 * runs in the caller's transaction, so an error leaves nothing behind.
 * Other modules (timers, payments, refunds) move orders only through here.
 *
 * Money rule: a transition that stamps paid_at (the machine's 'pay') needs
 * the order paid in full (paid_total - refunded_total >= payable_total),
 * counting a payment record_payment() hands in with the transition
 * (OrderState.paid_delta, added to paid_total by the same UPDATE).  So
 * fire(id, 'pay') without the money is OE001, whoever calls it.  Likewise
 * 'close' (OE_EVENT_CLOSE, what refund() fires) needs the order refunded in
 * full (OrderRefundedInFull), so no caller closes an order that keeps money.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "events.h"
#include "fire.h"
#include "machine.h"
#include "money.h"
#include "order_ext.h"
#include "stock.h"
#include "timers.h"

static SPIPlanPtr lock_plans[2] = {NULL, NULL};
static SPIPlanPtr update_plan = NULL;
static SPIPlanPtr facts_plan = NULL;
static SPIPlanPtr units_left_plan = NULL;

PG_FUNCTION_INFO_V1(fire);

static bool OrderLockIn(bool archived, int64 order_id, OrderState *st);
static bool UnitsCounted(OrderState *st, int32 upto, const char *status);
static bool OrderUnitsCounted(OrderState *st, int32 upto);

/*
 * OrderLock
 *		Lock the order row and read what fire() needs; false if no such order.
 */
bool
OrderLock(int64 order_id, OrderState *st)
{
	return OrderLockIn(false, order_id, st);
}

/*
 * ArchivedOrderLock
 *		The same for an order that archive() moved to the history tables
 *		(st->archived set).  Its status is terminal: only money that comes
 *		late (record_payment, refund by amount) and replays still reach it.
 */
bool
ArchivedOrderLock(int64 order_id, OrderState *st)
{
	return OrderLockIn(true, order_id, st);
}

static bool
OrderLockIn(bool archived, int64 order_id, OrderState *st)
{
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1];
	SPIPlanPtr	plan;
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;

	plan = TwinPlan(lock_plans, archived,
					"SELECT machine, status, version, status_version, attrs,"
					" payable_total, paid_total, refunded_total"
					" FROM order_ext.orders{h} WHERE order_id = $1 FOR UPDATE",
					1, argtypes);
	values[0] = Int64GetDatum(order_id);
	if (SPI_execute_plan(plan, values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not lock order " INT64_FORMAT, order_id);
	if (SPI_processed == 0)
		return false;
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	st->order_id = order_id;
	strlcpy(st->machine, SPI_getvalue(tup, desc, 1), OE_NAME_LEN);
	strlcpy(st->status, SPI_getvalue(tup, desc, 2), OE_NAME_LEN);
	st->version = DatumGetInt32(SPI_getbinval(tup, desc, 3, &isnull));
	st->status_version = DatumGetInt32(SPI_getbinval(tup, desc, 4, &isnull));
	st->attrs = DatumGetJsonbPCopy(SPI_getbinval(tup, desc, 5, &isnull));
	st->payable_total = DatumGetInt64(SPI_getbinval(tup, desc, 6, &isnull));
	st->paid_total = DatumGetInt64(SPI_getbinval(tup, desc, 7, &isnull));
	st->refunded_total = DatumGetInt64(SPI_getbinval(tup, desc, 8, &isnull));
	st->paid_delta = 0;
	st->archived = archived;
	st->facts.valid = false;
	return true;
}

/*
 * OrderFactsOf
 *		The facts of a live order locked with OrderLock: its paid and
 *		shipped stamps, shipping fee, and the transition that entered its
 *		current status, with one query (the order row and that event) the
 *		first time they are asked for after the lock or a move.
 */
const OrderFacts *
OrderFactsOf(OrderState *st)
{
	Oid			argtypes[2] = {INT8OID, INT4OID};
	Datum		values[2];
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	char	   *s;
	OrderFacts *f = &st->facts;

	if (f->valid)
		return f;
	values[0] = Int64GetDatum(st->order_id);
	values[1] = Int32GetDatum(st->status_version);
	if (SPI_execute_plan(OrderPlan(&facts_plan,
								   "SELECT o.paid_at IS NOT NULL, o.shipped_at IS NOT NULL, o.shipping_fee,"
								   " e.from_status, e.event"
								   " FROM order_ext.orders o LEFT JOIN order_ext.order_events e"
								   " ON e.order_id = o.order_id AND e.version = $2"
								   " WHERE o.order_id = $1",
								   2, argtypes),
						 values, NULL, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not read order " INT64_FORMAT, st->order_id);
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	f->paid = DatumGetBool(SPI_getbinval(tup, desc, 1, &isnull));
	f->shipped = DatumGetBool(SPI_getbinval(tup, desc, 2, &isnull));
	f->shipping_fee = DatumGetInt64(SPI_getbinval(tup, desc, 3, &isnull));
	s = SPI_getvalue(tup, desc, 4);
	f->entered = (s != NULL);	/* NULL: created in its status */
	strlcpy(f->entered_from, s ? s : "", OE_NAME_LEN);
	s = SPI_getvalue(tup, desc, 5);
	strlcpy(f->entered_by, s ? s : "", OE_NAME_LEN);
	f->valid = true;
	return f;
}

void
OrderNotFound(int64 order_id)
{
	ereport(ERROR,
			(errcode(ERRCODE_OE_NOT_FOUND),
			 errmsg("order " INT64_FORMAT " does not exist", order_id)));
}

/*
 * OrderLockLive
 *		OrderLock for a call that changes a live order: an archived one is
 *		OE001 ("it is archived: <what>"), as fire() answers, and one that
 *		is nowhere OE008.
 */
void
OrderLockLive(int64 order_id, OrderState *st, const char *what)
{
	OrderState	hist;

	if (OrderLock(order_id, st))
		return;
	if (ArchivedOrderLock(order_id, &hist))
		ereport(ERROR,
				(errcode(ERRCODE_OE_TRANSITION),
				 errmsg("order " INT64_FORMAT " is archived: %s", order_id, what),
				 errdetail("order_ext.archive() moved it to the history tables; archived orders are finished.")));
	OrderNotFound(order_id);
}

/*
 * OrderRefundedInFull
 *		Whether an order locked with OrderLock may close: it holds none of
 *		the money it took, or every unit of its lines is refunded (a shipped
 *		order keeps its shipping fee).  An order that took nothing (payable
 *		0) holds nothing.
 */
static bool
OrderRefundedInFull(const OrderState *st)
{
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1];

	if (st->refunded_total >= st->paid_total)
		return true;
	values[0] = Int64GetDatum(st->order_id);
	if (SPI_execute_plan(OrderPlan(&units_left_plan,
								   "SELECT 1 FROM order_ext.order_items"
								   " WHERE order_id = $1 AND refunded_qty < qty LIMIT 1",
								   1, argtypes),
						 values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read the lines of order " INT64_FORMAT, st->order_id);
	return SPI_processed == 0;
}

/*
 * JsonbContains
 *		container @> contained, for the transition guard.
 */
static bool
JsonbContains(Jsonb *container, Jsonb *contained)
{
	return DatumGetBool(DirectFunctionCall2(jsonb_contains,
											JsonbPGetDatum(container),
											JsonbPGetDatum(contained)));
}

/*
 * TransitionCheck
 *		The transition for (machine, status, event) if actor may fire it on
 *		a subject with these attributes; OE001 naming the reason otherwise.
 */
const TransitionDef *
TransitionCheck(const char *what, int64 id, const char *machine, const char *status,
				const char *event, const char *actor, Jsonb *attrs)
{
	const TransitionDef *t = TransitionLookup(machine, status, event);

	if (t == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OE_TRANSITION),
				 errmsg("event \"%s\" is not allowed for %s " INT64_FORMAT " in status \"%s\"",
						event, what, id, status),
				 errdetail("Machine \"%s\" has no transition (%s, %s).", machine, status, event)));
	if (t->count > 1)
		ereport(ERROR,
				(errcode(ERRCODE_OE_TRANSITION),
				 errmsg("machine \"%s\" defines transition (%s, %s) %d times", machine, status,
						event, t->count),
				 errhint("Fix the machine; order_ext.validate_machine('%s') lists its problems.",
						 machine)));
	if (!TransitionAllowsActor(t, actor))
	{
		StringInfoData allowed;
		int			i;

		initStringInfo(&allowed);
		for (i = 0; i < t->nactors; i++)
			appendStringInfo(&allowed, "%s%s", i ? ", " : "", t->actors[i]);
		ereport(ERROR,
				(errcode(ERRCODE_OE_TRANSITION),
				 errmsg("actor \"%s\" may not fire \"%s\" for %s " INT64_FORMAT, actor, event,
						what, id),
				 errdetail("Transition (%s, %s) of machine \"%s\" is for: %s.", status, event,
						   machine, allowed.data)));
	}
	if (t->requires != NULL && !JsonbContains(attrs, t->requires))
		ereport(ERROR,
				(errcode(ERRCODE_OE_TRANSITION),
				 errmsg("event \"%s\" is not allowed for %s " INT64_FORMAT " in status \"%s\"",
						event, what, id, status),
				 errdetail("Transition (%s, %s) of machine \"%s\" requires %s.", status, event,
						   machine,
						   JsonbToCString(NULL, &t->requires->root, VARSIZE(t->requires)))));
	return t;
}

/*
 * RefuseInternalActor
 *		fire() and fire_after_sale() name their actor; OE_ACTOR_INTERNAL is
 *		for order_ext's own functions (split_order), so from SQL it is an
 *		actor not allowed: OE001, after the version check (OE002 first), as
 *		for any other actor.
 */
void
RefuseInternalActor(const char *what, int64 id, int32 version, bool has_expected,
					int32 expected, const char *event, const char *actor)
{
	if (strcmp(actor, OE_ACTOR_INTERNAL) != 0)
		return;
	CheckVersion(what, id, version, has_expected, expected);
	ereport(ERROR,
			(errcode(ERRCODE_OE_TRANSITION),
			 errmsg("actor \"%s\" may not fire \"%s\" for %s " INT64_FORMAT, actor, event, what, id),
			 errdetail("Actor %s is reserved for order_ext's own functions, such as order_ext.split_order().",
					   actor)));
}

/*
 * CheckVersion
 *		OE002 if the caller expected another version.
 */
void
CheckVersion(const char *what, int64 id, int32 current, bool has_expected, int32 expected)
{
	if (has_expected && expected != current)
		ereport(ERROR,
				(errcode(ERRCODE_OE_STALE_VERSION),
				 errmsg("%s " INT64_FORMAT " is at version %d, not %d", what, id, current, expected),
				 errdetail("Another change came first; read the %s again and retry if still wanted.",
						   what)));
}

/*
 * PayloadAttrs
 *		payload.attrs for the merge_attrs effect: a JSON object.
 */
static Jsonb *
PayloadAttrs(Jsonb *payload)
{
	JsonbValue	v;
	JsonbValue *found = NULL;

	if (JB_ROOT_IS_OBJECT(payload))
		found = getKeyJsonValueFromContainer(&payload->root, "attrs", 5, &v);
	if (found == NULL || v.type != jbvBinary || !JsonContainerIsObject(v.val.binary.data))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("payload.attrs must be a JSON object"),
				 errdetail("This transition merges payload.attrs into the order's attrs.")));
	return JsonbValueToJsonb(&v);
}

/*
 * OrderFire
 *		Fire event on an order locked with OrderLock; returns the new row as a
 *		composite datum (in the SPI context).
 */
Datum
OrderFire(OrderState *st, const char *event, bool has_expected, int32 expected,
		  const char *actor, Jsonb *payload)
{
	Oid			argtypes[11] = {INT8OID, TEXTOID, BOOLOID, JSONBOID, BOOLOID,
	BOOLOID, BOOLOID, BOOLOID, BOOLOID, INT4OID, INT8OID};
	Datum		values[11];
	char		nulls[11] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
	const TransitionDef *t;
	SPIPlanPtr	plan;
	bool		moved;
	bool		isnull;
	int32		new_version;
	Datum		row;

	CheckVersion("order", st->order_id, st->version, has_expected, expected);
	t = TransitionCheck("order", st->order_id, st->machine, st->status, event, actor, st->attrs);
	if (st->version == PG_INT32_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("version of order " INT64_FORMAT " is at its maximum", st->order_id)));
	if ((t->effects & OE_EFFECT_STAMP_PAID) &&
		(int128) st->paid_total + st->paid_delta - st->refunded_total < st->payable_total)
		ereport(ERROR,
				(errcode(ERRCODE_OE_TRANSITION),
				 errmsg("event \"%s\" is not allowed for order " INT64_FORMAT ": it is not paid in full",
						event, st->order_id),
				 errdetail("Paid " INT64_FORMAT ", refunded " INT64_FORMAT ", payable " INT64_FORMAT ".",
						   st->paid_total + st->paid_delta, st->refunded_total, st->payable_total),
				 errhint("Payments go through order_ext.record_payment(), which fires \"%s\" when the order is paid in full.",
						 event)));
	if (strcmp(event, OE_EVENT_CLOSE) == 0 && !OrderRefundedInFull(st))
		ereport(ERROR,
				(errcode(ERRCODE_OE_TRANSITION),
				 errmsg("event \"%s\" is not allowed for order " INT64_FORMAT ": it is not refunded in full",
						event, st->order_id),
				 errdetail("Paid " INT64_FORMAT ", refunded " INT64_FORMAT ", and units of its lines are not refunded.",
						   st->paid_total, st->refunded_total),
				 errhint("Refunds go through order_ext.refund(), which fires \"%s\" when the order is refunded in full.",
						 event)));
	new_version = st->version + 1;
	moved = strcmp(t->to_status, st->status) != 0;

	/* the event row first: the orders guard trigger checks it is there */
	OrderEventAppend(st->order_id, new_version, event, st->status, t->to_status, actor,
					 JsonbPGetDatum(payload));

	plan = OrderPlan(&update_plan,
					 "UPDATE order_ext.orders o SET"
					 " status = $2,"
					 " status_version = CASE WHEN $3 THEN $10 ELSE status_version END,"
					 " attrs = CASE WHEN $4 IS NULL THEN attrs ELSE attrs || $4 END,"
					 " paid_at = CASE WHEN $5 THEN now() ELSE paid_at END,"
					 " shipped_at = CASE WHEN $6 THEN now() ELSE shipped_at END,"
					 " received_at = CASE WHEN $7 THEN now() ELSE received_at END,"
					 " completed_at = CASE WHEN $8 THEN now() ELSE completed_at END,"
					 " closed_at = CASE WHEN $9 THEN now() ELSE closed_at END,"
					 " paid_total = paid_total + $11"
					 " WHERE order_id = $1 RETURNING o",
					 11, argtypes);
	values[0] = Int64GetDatum(st->order_id);
	values[1] = CStringGetTextDatum(t->to_status);
	values[2] = BoolGetDatum(moved);
	if (t->effects & OE_EFFECT_MERGE_ATTRS)
		values[3] = JsonbPGetDatum(PayloadAttrs(payload));
	else
	{
		values[3] = (Datum) 0;
		nulls[3] = 'n';
	}
	values[4] = BoolGetDatum((t->effects & OE_EFFECT_STAMP_PAID) != 0);
	values[5] = BoolGetDatum((t->effects & OE_EFFECT_STAMP_SHIPPED) != 0);
	values[6] = BoolGetDatum((t->effects & OE_EFFECT_STAMP_RECEIVED) != 0);
	values[7] = BoolGetDatum((t->effects & OE_EFFECT_STAMP_COMPLETED) != 0);
	values[8] = BoolGetDatum((t->effects & OE_EFFECT_STAMP_CLOSED) != 0);
	values[9] = Int32GetDatum(new_version);
	values[10] = Int64GetDatum(st->paid_delta);
	if (SPI_execute_plan(plan, values, nulls, false, 0) != SPI_OK_UPDATE_RETURNING ||
		SPI_processed != 1)
		elog(ERROR, "could not update order " INT64_FORMAT, st->order_id);
	row = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

	/* stock effects: after the order row, in the order lock's shadow */
	if (t->effects & (OE_EFFECT_STOCK_RESERVE | OE_EFFECT_STOCK_RELEASE))
	{
		/* whether its units count against purchase limits before this move */
		bool		counted = !StockLimited() || UnitsCounted(st, new_version - 1, st->status);

		/* (a transition with both: release wins, as OrderUnitsCounted reads it) */
		if (t->effects & OE_EFFECT_STOCK_RESERVE)
			StockReserveOrder(st->order_id, !counted && !(t->effects & OE_EFFECT_STOCK_RELEASE));
		if (t->effects & OE_EFFECT_STOCK_COMMIT)
			StockCommitOrder(st->order_id);
		if (t->effects & OE_EFFECT_STOCK_RELEASE)
			StockReleaseOrder(st->order_id, counted);
	}
	else if (t->effects & OE_EFFECT_STOCK_COMMIT)
		StockCommitOrder(st->order_id);

	/*
	 * An order that ends (closed_at) keeping money it took, other than by
	 * 'close' (refunded in full; a shipped order keeps its fee): a partial
	 * payment, then cancel or expire.  The money is to be refunded: say so,
	 * as record_payment() does for money that comes after the end.
	 */
	if ((t->effects & OE_EFFECT_STAMP_CLOSED) && strcmp(event, OE_EVENT_CLOSE) != 0 &&
		st->paid_total + st->paid_delta > st->refunded_total)
	{
		StringInfoData buf;

		initStringInfo(&buf);
		appendStringInfoChar(&buf, '{');
		JsonAppendKeyString(&buf, "event", event, true);
		JsonAppendKeyString(&buf, "status", t->to_status, false);
		JsonAppendKeyString(&buf, "reason", psprintf("order is %s with money paid", t->to_status), false);
		appendStringInfo(&buf, ", \"refundable\": " INT64_FORMAT "}",
						 st->paid_total + st->paid_delta - st->refunded_total);
		OutboxNotice(st->order_id, new_version, "refund_due", JsonbPGetDatum(JsonbFromString(buf.data)));
	}

	if (moved)
	{
		TimersLeave("order", st->order_id, st->order_id, st->machine, st->status);
		TimersSchedule("order", st->order_id, st->order_id, st->machine, t->to_status,
					   new_version);
	}

	strlcpy(st->status, t->to_status, OE_NAME_LEN);
	st->version = new_version;
	st->paid_total += st->paid_delta;
	st->paid_delta = 0;
	if (moved)
		st->status_version = new_version;
	st->facts.valid = false;	/* stamps, and the transition that entered the status */
	return row;
}

/*
 * fire(order_id, event, expected_version, actor, payload) -> order_ext.orders
 */
Datum
fire(PG_FUNCTION_ARGS)
{
	OrderState	st;
	int64		order_id;
	char	   *event;
	char	   *actor;
	Jsonb	   *payload;
	Datum		row;

	if (PG_ARGISNULL(0))
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("order_id must not be NULL")));
	if (PG_ARGISNULL(1))
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("event must not be NULL")));
	if (PG_ARGISNULL(3))
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("actor must not be NULL")));
	order_id = PG_GETARG_INT64(0);
	event = NameTextArg(fcinfo, 1);
	actor = NameTextArg(fcinfo, 3);
	if (PG_ARGISNULL(4))
		payload = DatumGetJsonbP(EmptyJsonb());
	else
		payload = PG_GETARG_JSONB_P(4);
	if (!JB_ROOT_IS_OBJECT(payload))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("payload must be a JSON object")));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (!OrderLock(order_id, &st) && !ArchivedOrderLock(order_id, &st))
		OrderNotFound(order_id);
	RefuseInternalActor("order", order_id, st.version, !PG_ARGISNULL(2),
						PG_ARGISNULL(2) ? 0 : PG_GETARG_INT32(2), event, actor);
	if (st.archived)
	{
		CheckVersion("order", order_id, st.version, !PG_ARGISNULL(2),
					 PG_ARGISNULL(2) ? 0 : PG_GETARG_INT32(2));
		ereport(ERROR,
				(errcode(ERRCODE_OE_TRANSITION),
				 errmsg("event \"%s\" is not allowed for order " INT64_FORMAT " in status \"%s\": it is archived",
						event, order_id, st.status),
				 errdetail("order_ext.archive() moved it to the history tables; archived orders are finished.")));
	}
	row = OrderFire(&st, event, !PG_ARGISNULL(2), PG_ARGISNULL(2) ? 0 : PG_GETARG_INT32(2),
					actor, payload);
	row = SPI_datumTransfer(row, false, -1);
	SPI_finish();
	PG_RETURN_DATUM(row);
}

/*
 * OrderUnitsCounted
 *		Whether a locked order's units count against purchase limits, as of
 *		its version upto: creation counts them, a transition with the
 *		stock:release effect (cancel, expire, close; a user machine's hold)
 *		takes them off, one with stock:reserve (a user machine's resume)
 *		counts them again.  So the newest event of its timeline whose
 *		transition has either effect says (release first, if both).  Read
 *		only where some SKU has a limit (StockLimited).  The caller is
 *		connected to SPI.
 */
static bool
OrderUnitsCounted(OrderState *st, int32 upto)
{
	static SPIPlanPtr plans[2] = {NULL, NULL};
	Oid			types[2] = {INT8OID, INT4OID};
	Datum		values[2];
	uint64		r;

	values[0] = Int64GetDatum(st->order_id);
	values[1] = Int32GetDatum(upto);
	if (SPI_execute_plan(TwinPlan(plans, st->archived,
								  "SELECT from_status, event FROM order_ext.order_events{h}"
								  " WHERE order_id = $1 AND version <= $2 ORDER BY version DESC",
								  2, types),
						 values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the timeline of order " INT64_FORMAT, st->order_id);
	for (r = 0; r < SPI_processed; r++)
	{
		char	   *from = SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1);
		char	   *event = SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 2);
		const TransitionDef *t = from != NULL ? TransitionLookup(st->machine, from, event) : NULL;

		if (t != NULL && (t->effects & OE_EFFECT_STOCK_RELEASE))
			return false;
		if (t != NULL && (t->effects & OE_EFFECT_STOCK_RESERVE))
			return true;
	}
	return true;				/* counted since its creation */
}

/*
 * UnitsCounted
 *		OrderUnitsCounted, without reading the timeline where the machine
 *		says (the default machines): when every stock:release of it ends
 *		orders, and nothing leaves a terminal status, an order in a status
 *		that is not terminal never had its units released, and one in a
 *		terminal status had them released only if the transition that
 *		entered it has stock:release.  status is the order's status as of
 *		upto.
 */
static bool
UnitsCounted(OrderState *st, int32 upto, const char *status)
{
	const MachineDef *m = MachineLookup(st->machine);

	if (m != NULL && !m->stock_reopens)
	{
		const OrderFacts *f;
		const TransitionDef *t;

		if (!MachineIsTerminal(m, status))
			return true;
		f = OrderFactsOf(st);
		t = f->entered ? TransitionLookup(st->machine, f->entered_from, f->entered_by) : NULL;
		return t == NULL || (t->effects & OE_EFFECT_STOCK_RELEASE) == 0;
	}
	return OrderUnitsCounted(st, upto);
}

/*
 * OrderReturnUnits
 *		Units of a locked order's lines go back (a refund by lines, an
 *		after-sale return): StockReturnLines, told what the order's stock
 *		went through.  restock puts back only units that left the warehouse
 *		(the order shipped; before that they are reserved, released now, or
 *		were released by a cancel or close).  And units of an order whose
 *		units no longer count against purchase limits (OrderUnitsCounted:
 *		a cancel, expire, close or hold took them off) do not leave the
 *		buyer's holdings again.  The caller is connected to SPI.
 */
void
OrderReturnUnits(OrderState *st, int nlines, const StockLine *lines, bool buckets,
				 bool restock, bool holdings)
{
	const OrderFacts *f;

	if (nlines == 0)
		return;					/* a refund by amount: no units */
	f = OrderFactsOf(st);
	StockReturnLines(st->order_id, nlines, lines, buckets, restock && f->shipped,
					 holdings && StockLimited() && UnitsCounted(st, st->version, st->status));
}
