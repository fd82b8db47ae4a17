/*
 * money.c
 *		Payments and refunds: order_ext.record_payment() and order_ext.refund(),
 *		and the exact per-unit refund arithmetic that after-sales share.
 *
 * Owns: the order_payments rows, orders.paid_total / refunded_total, the
 * lines' refunded_qty / refunded_amount, and 'refund_due' notices.
 *
 * Payments: one row per (order, gateway txn_id); the same txn_id again
 * returns the order and changes nothing (OE004 if amount or method differ).
 * The order row is locked first, so concurrent duplicate callbacks
 * serialise.  A payment that brings the order to its payable total fires
 * 'pay' in the same version (the payment rides on the transition).  When
 * the 'pay' transition has effects that may refuse it for stock (anything
 * beyond stamps and merge_attrs), it runs in a subtransaction, so that if
 * it cannot happen (OE003, OE005) the payment is still recorded and a
 * 'refund_due' notice goes to the outbox.  When a user machine's guard or
 * actors refuse it (OE001), the payment is recorded and the order keeps
 * the money for a 'pay' fired later, with no notice (the transition that
 * ends an unpaid order says refund_due).  A payment for an order in a
 * terminal status is recorded with refund_due too.
 *
 * Refunds: unit k (1-based, counted per line in the order units are
 * refunded) of a line with net = qty * unit_price - discount_alloc refunds
 * floor(k * net / qty) - floor((k - 1) * net / qty), so the units of a line
 * refunded in any grouping add up to its net exactly, and the line's
 * refunded_amount is always floor(refunded_qty * net / qty).  The shipping
 * fee goes with the refund that returns the last unit of the order, unless
 * the order has shipped.  Σ refunds > paid_total is OE006.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/int.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/json.h"
#include "utils/jsonb.h"

#include "events.h"
#include "fire.h"
#include "jsonin.h"
#include "machine.h"
#include "money.h"
#include "order_ext.h"
#include "aftersale.h"
#include "stock.h"

#define MAX_ID_LEN		200

/* effects that never refuse a transition for stock (see record_payment) */
#define PLAIN_EFFECTS	(OE_EFFECT_STAMP_PAID | OE_EFFECT_STAMP_SHIPPED | OE_EFFECT_STAMP_RECEIVED | \
						 OE_EFFECT_STAMP_COMPLETED | OE_EFFECT_STAMP_CLOSED | OE_EFFECT_MERGE_ATTRS)
#define MAX_UNIT_LINES	1000

static SPIPlanPtr order_row_plans[2] = {NULL, NULL};
static SPIPlanPtr payment_existing_plans[2] = {NULL, NULL};
static SPIPlanPtr payment_insert_plans[2] = {NULL, NULL};
static SPIPlanPtr money_update_plans[2] = {NULL, NULL};
static SPIPlanPtr refund_existing_plans[2] = {NULL, NULL};
static SPIPlanPtr refund_insert_plans[2] = {NULL, NULL};

static Datum OrderRow(const OrderState *st);
static SPIPlanPtr refund_lines_plan = NULL;
static SPIPlanPtr refund_lines_update_plan = NULL;

PG_FUNCTION_INFO_V1(record_payment);
PG_FUNCTION_INFO_V1(refund);

/*
 * JsonbFromString
 *		Parse JSON text built by this module.
 */
Jsonb *
JsonbFromString(const char *s)
{
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(s)));
}

/*
 * JsonAppendKeyString
 *		Append "key": "value" (escaped) to a JSON object being built.
 */
void
JsonAppendKeyString(StringInfo buf, const char *key, const char *value, bool first)
{
	if (!first)
		appendStringInfoString(buf, ", ");
	escape_json(buf, key);
	appendStringInfoString(buf, ": ");
	escape_json(buf, value);
}

/*
 * ArgIdText
 *		A non-NULL, non-empty text argument of at most MAX_ID_LEN bytes
 *		(txn_id, refund_id, method), or an error naming it.
 */
char *
ArgIdText(FunctionCallInfo fcinfo, int argno, const char *name)
{
	char	   *s;

	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be NULL", name)));
	s = text_to_cstring(PG_GETARG_TEXT_PP(argno));
	if (s[0] == '\0' || strlen(s) > MAX_ID_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a non-empty string of at most %d bytes", name, MAX_ID_LEN)));
	return s;
}

static int64
ArgInt64(FunctionCallInfo fcinfo, int argno, const char *name)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be NULL", name)));
	return PG_GETARG_INT64(argno);
}

/*
 * OrderRow
 *		The order's current row as an order_ext.orders datum (SPI context),
 *		live or archived.
 */
static Datum
OrderRow(const OrderState *st)
{
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1];
	bool		isnull;
	int64		order_id = st->order_id;

	values[0] = Int64GetDatum(order_id);
	if (SPI_execute_plan(TwinPlan(order_row_plans, st->archived,
								  "SELECT {row} FROM order_ext.orders{h} o WHERE o.order_id = $1",
								  1, argtypes),
						 values, NULL, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not read order " INT64_FORMAT, order_id);
	return SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
}

/*
 * MoneyEvent
 *		A money change that does not move the order: its event row (version
 *		+ 1, same status) and the UPDATE of paid_total / refunded_total (the
 *		guard trigger finds the event written).  The UPDATE bumps the version
 *		and sets updated_at itself, for an archived order, whose history row
 *		has no trigger; on a live one the guard sets both as it always does.
 */
static Datum
MoneyEvent(OrderState *st, const char *event, Jsonb *payload, int64 paid_add,
		   int64 refunded_add, const char *actor)
{
	Oid			argtypes[3] = {INT8OID, INT8OID, INT8OID};
	Datum		values[3];
	bool		isnull;

	OrderEventAppendIn(st->archived, st->order_id, st->version + 1, event, st->status,
					   st->status, actor, JsonbPGetDatum(payload));
	values[0] = Int64GetDatum(st->order_id);
	values[1] = Int64GetDatum(paid_add);
	values[2] = Int64GetDatum(refunded_add);
	if (SPI_execute_plan(TwinPlan(money_update_plans, st->archived,
								  "UPDATE order_ext.orders{h} o"
								  " SET paid_total = paid_total + $2, refunded_total = refunded_total + $3,"
								  " version = version + 1, updated_at = now()"
								  " WHERE order_id = $1 RETURNING {row}",
								  3, argtypes),
						 values, NULL, false, 0) != SPI_OK_UPDATE_RETURNING || SPI_processed != 1)
		elog(ERROR, "could not update order " INT64_FORMAT, st->order_id);
	st->version++;
	st->paid_total += paid_add;
	st->refunded_total += refunded_add;
	return SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
}

/*
 * LedgerRowMatches
 *		Run a query for a ledger row (order_payments) that selects whether
 *		it matches the request: -1 if there is no such row, else 0 or 1.
 */
static int
LedgerRowMatches(SPIPlanPtr plan, Datum *values)
{
	bool		isnull;
	bool		same;

	if (SPI_execute_plan(plan, values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read the order's payments and refunds");
	if (SPI_processed == 0)
		return -1;
	same = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	return (!isnull && same) ? 1 : 0;
}

/* What PayFire needs and gives back. */
typedef struct PayArgs
{
	OrderState *st;
	int64		amount;
	Jsonb	   *payload;
	Datum		row;
} PayArgs;

static void
PayFire(void *arg)
{
	PayArgs    *pa = arg;

	pa->st->paid_delta = pa->amount;
	pa->row = datumCopy(OrderFire(pa->st, "pay", false, 0, "system", pa->payload), false, -1);
}

/*
 * PayInSubtransaction
 *		Fire 'pay' with the payment riding on it, in a subtransaction.  True
 *		and *row set if it happened; false and *why set if stock stopped it
 *		(OE003, OE005), or the transition refused it (OE001: a user machine's
 *		guard or actors; *refused then): then nothing of it is left.  Other
 *		errors propagate.
 */
static bool
PayInSubtransaction(OrderState *st, int64 amount, Jsonb *payload, Datum *row, char **why,
					bool *refused)
{
	OrderState	saved = *st;
	PayArgs		pa = {st, amount, payload, (Datum) 0};
	ErrorData  *edata = OrderSubxact(PayFire, &pa);

	if (edata == NULL)
	{
		*row = pa.row;
		return true;
	}
	if (edata->sqlerrcode != ERRCODE_OE_OUT_OF_STOCK &&
		edata->sqlerrcode != ERRCODE_OE_PURCHASE_LIMIT &&
		edata->sqlerrcode != ERRCODE_OE_TRANSITION)
		ReThrowError(edata);
	*st = saved;
	*why = pstrdup(edata->message);
	*refused = edata->sqlerrcode == ERRCODE_OE_TRANSITION;
	FreeErrorData(edata);
	return false;
}

/*
 * record_payment(order_id, txn_id, amount, method) -> order_ext.orders
 */
Datum
record_payment(PG_FUNCTION_ARGS)
{
	int64		order_id = ArgInt64(fcinfo, 0, "order_id");
	char	   *txn_id = ArgIdText(fcinfo, 1, "txn_id");
	int64		amount = ArgInt64(fcinfo, 2, "amount");
	char	   *method = ArgIdText(fcinfo, 3, "method");
	Oid			argtypes[4] = {INT8OID, TEXTOID, INT8OID, TEXTOID};
	Datum		values[4];
	OrderState	st;
	const MachineDef *m;
	const TransitionDef *pay;
	StringInfoData buf;
	Jsonb	   *payload;
	Datum		row = (Datum) 0;
	char	   *why = NULL;
	bool		refused = false;
	int64		paid_after;

	if (amount <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_OE_AMOUNT_INVALID),
				 errmsg("amount must be positive"),
				 errdetail("Got " INT64_FORMAT ".", amount)));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (!OrderLock(order_id, &st) && !ArchivedOrderLock(order_id, &st))
		OrderNotFound(order_id);

	/*
	 * The payment row first: if its txn_id is there already, this is a
	 * repeated callback, which changes nothing (an error below undoes the
	 * insert).
	 */
	values[0] = Int64GetDatum(order_id);
	values[1] = CStringGetTextDatum(txn_id);
	values[2] = Int64GetDatum(amount);
	values[3] = CStringGetTextDatum(method);
	if (SPI_execute_plan(TwinPlan(payment_insert_plans, st.archived,
								  "INSERT INTO order_ext.order_payments{h}"
								  " (order_id, kind, txn_id, method, amount, created_at)"
								  " VALUES ($1, 'payment', $2, $4, $3, now())"
								  " ON CONFLICT (order_id, kind, txn_id) DO NOTHING",
								  4, argtypes),
						 values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not insert payment");
	if (SPI_processed == 0)
	{
		if (LedgerRowMatches(TwinPlan(payment_existing_plans, st.archived,
									  "SELECT amount = $3 AND method = $4 FROM order_ext.order_payments{h}"
									  " WHERE order_id = $1 AND kind = 'payment' AND txn_id = $2",
									  4, argtypes), values) != 1)
			ereport(ERROR,
					(errcode(ERRCODE_OE_REQUEST_MISMATCH),
					 errmsg("payment \"%s\" of order " INT64_FORMAT " was recorded with another amount or method",
							txn_id, order_id),
					 errdetail("A txn_id is one gateway payment; a repeated callback must repeat it exactly.")));
		row = SPI_datumTransfer(OrderRow(&st), false, -1);
		SPI_finish();
		PG_RETURN_DATUM(row);
	}

	if (pg_add_s64_overflow(st.paid_total, amount, &paid_after))
		ereport(ERROR,
				(errcode(ERRCODE_OE_AMOUNT_INVALID),
				 errmsg("paid_total of order " INT64_FORMAT " overflows", order_id)));

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	JsonAppendKeyString(&buf, "txn_id", txn_id, true);
	appendStringInfo(&buf, ", \"amount\": " INT64_FORMAT ", ", amount);
	JsonAppendKeyString(&buf, "method", method, true);
	appendStringInfoChar(&buf, '}');
	payload = JsonbFromString(buf.data);

	m = MachineLookup(st.machine);
	if (st.archived)
		why = psprintf("order is %s and archived", st.status);
	else if (m != NULL && MachineIsTerminal(m, st.status))
		why = psprintf("order is %s", st.status);
	else if ((int128) paid_after - st.refunded_total > st.payable_total)
		ereport(ERROR,
				(errcode(ERRCODE_OE_AMOUNT_INVALID),
				 errmsg("payment of " INT64_FORMAT " exceeds what order " INT64_FORMAT " still owes",
						amount, order_id),
				 errdetail("Payable " INT64_FORMAT ", paid " INT64_FORMAT ", refunded " INT64_FORMAT ".",
						   st.payable_total, st.paid_total, st.refunded_total)));

	if (why == NULL && paid_after - st.refunded_total == st.payable_total &&
		(pay = TransitionLookup(st.machine, st.status, "pay")) != NULL)
	{
		/*
		 * Only effects beyond stamps and attrs (stock), a guard, or actors
		 * without 'system' (a user machine's) can refuse 'pay' for reasons
		 * that must not cost the payment: only those need the
		 * subtransaction.
		 */
		if (((pay->effects & ~PLAIN_EFFECTS) == 0 && pay->requires == NULL &&
			 TransitionAllowsActor(pay, "system")) || pay->count > 1)
		{
			st.paid_delta = amount;
			row = OrderFire(&st, "pay", false, 0, "system", payload);
			row = SPI_datumTransfer(row, false, -1);
			SPI_finish();
			PG_RETURN_DATUM(row);
		}
		if (PayInSubtransaction(&st, amount, payload, &row, &why, &refused))
		{
			row = SPI_datumTransfer(row, false, -1);
			SPI_finish();
			PG_RETURN_DATUM(row);
		}
	}

	row = MoneyEvent(&st, "payment", payload, amount, 0, "system");
	/*
	 * A 'pay' the machine refused (its guard, or actors without 'system'):
	 * the order keeps the money, and the actor or guard may fire 'pay' on
	 * it later; if the order ends unpaid instead, the transition that ends
	 * it says refund_due.  Nothing is due back now.
	 */
	if (why != NULL && !refused)
	{
		/* the money was taken and the order will not have it: say so */
		resetStringInfo(&buf);
		appendStringInfoChar(&buf, '{');
		JsonAppendKeyString(&buf, "txn_id", txn_id, true);
		appendStringInfo(&buf, ", \"amount\": " INT64_FORMAT ", ", amount);
		JsonAppendKeyString(&buf, "method", method, true);
		JsonAppendKeyString(&buf, "status", st.status, false);
		JsonAppendKeyString(&buf, "reason", why, false);
		appendStringInfo(&buf, ", \"refundable\": " INT64_FORMAT "}",
						 st.paid_total - st.refunded_total);
		OutboxNotice(order_id, st.version, "refund_due", JsonbPGetDatum(JsonbFromString(buf.data)));
	}
	row = SPI_datumTransfer(row, false, -1);
	SPI_finish();
	PG_RETURN_DATUM(row);
}

static int
UnitLineCmp(const void *a, const void *b)
{
	const UnitLine *x = a;
	const UnitLine *y = b;

	return (x->line_no > y->line_no) - (x->line_no < y->line_no);
}

/*
 * ParseUnitLines
 *		[{"line_no": n, "qty": q}, ...]: at least one; entries for the same
 *		line add up.  Returns the count; *out sorted by line_no.
 */
int
ParseUnitLines(Jsonb *lines, const char *field, UnitLine **out)
{
	static const char *const keys[] = {"line_no", "qty"};
	JsonbContainer *arr = JsonArgArray(lines, field);
	int			n = JsonContainerSize(arr);
	UnitLine   *u;
	int			i;
	int			k = 0;

	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must contain at least one line", field)));
	if (n > MAX_UNIT_LINES)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s has %d entries; at most %d are allowed", field, n, MAX_UNIT_LINES)));
	u = palloc(sizeof(UnitLine) * n);
	for (i = 0; i < n; i++)
	{
		JsonbContainer *obj = JsonArrayObject(arr, i, field);
		JsonbValue	v;

		JsonCheckKeys(obj, keys, lengthof(keys), field, i);
		if (!JsonGet(obj, "line_no", &v))
			JsonMissing(field, i, "line_no");
		u[i].line_no = (int32) JsonFieldInt(&v, field, i, "line_no", 1, PG_INT32_MAX);
		if (!JsonGet(obj, "qty", &v))
			JsonMissing(field, i, "qty");
		u[i].qty = (int32) JsonFieldInt(&v, field, i, "qty", 1, PG_INT32_MAX);
	}
	qsort(u, n, sizeof(UnitLine), UnitLineCmp);
	for (i = 0; i < n; i++)
	{
		if (k > 0 && u[k - 1].line_no == u[i].line_no)
		{
			if (pg_add_s32_overflow(u[k - 1].qty, u[i].qty, &u[k - 1].qty))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("%s: the units of line %d add up to more than an int", field,
								u[i].line_no)));
		}
		else
			u[k++] = u[i];
	}
	*out = u;
	return k;
}

/*
 * UnitLinesObjects
 *		[{"line_no": n, "qty": q}, ...]: merged unit lines as requests spell them.
 */
Jsonb *
UnitLinesObjects(const UnitLine *lines, int nlines)
{
	StringInfoData buf;
	int			i;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '[');
	for (i = 0; i < nlines; i++)
		appendStringInfo(&buf, "%s{\"line_no\": %d, \"qty\": %d}", i ? ", " : "",
						 lines[i].line_no, lines[i].qty);
	appendStringInfoChar(&buf, ']');
	return JsonbFromString(buf.data);
}

/*
 * UnitsRefundAmount
 *		What units from+1 .. to of a line (net over qty units) refund:
 *		floor(to * net / qty) - floor(from * net / qty).
 */
int64
UnitsRefundAmount(int64 net, int32 qty, int32 from, int32 to)
{
	Assert(net >= 0 && qty > 0 && 0 <= from && from <= to && to <= qty);
	return (int64) ((int128) net * to / qty - (int128) net * from / qty);
}

/* One line of the order, as a refund sees it. */
typedef struct RefundLineState
{
	int32		line_no;
	char	   *sku;
	int32		qty;
	int64		net;
	int32		refunded_qty;
	int32		units;			/* refunded now */
	int64		amount;			/* refunded now */
} RefundLineState;

/* What refunding some units would return now. */
typedef struct RefundQuote
{
	RefundLineState *ls;		/* every line of the order */
	int			nls;
	int64		total;			/* lines + shipping */
	int64		shipping;
	bool		all_units;		/* no unit of the order is left after this */
} RefundQuote;

/*
 * ReadLines
 *		All lines of the order (ordered by line_no).
 */
static RefundLineState *
ReadLines(int64 order_id, int *nlines)
{
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1];
	RefundLineState *ls;
	uint64		r;

	values[0] = Int64GetDatum(order_id);
	if (SPI_execute_plan(OrderPlan(&refund_lines_plan,
								   "SELECT line_no, sku, qty, qty::numeric * unit_price - discount_alloc,"
								   " refunded_qty FROM order_ext.order_items WHERE order_id = $1"
								   " ORDER BY line_no",
								   1, argtypes),
						 values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read order lines");
	ls = palloc0(sizeof(RefundLineState) * Max(SPI_processed, 1));
	for (r = 0; r < SPI_processed; r++)
	{
		HeapTuple	tup = SPI_tuptable->vals[r];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;

		ls[r].line_no = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
		ls[r].sku = SPI_getvalue(tup, desc, 2);
		ls[r].qty = DatumGetInt32(SPI_getbinval(tup, desc, 3, &isnull));
		/* the line total fits: create_order checked it */
		ls[r].net = DatumGetInt64(DirectFunctionCall1(numeric_int8,
													  SPI_getbinval(tup, desc, 4, &isnull)));
		ls[r].refunded_qty = DatumGetInt32(SPI_getbinval(tup, desc, 5, &isnull));
	}
	*nlines = (int) SPI_processed;
	return ls;
}

/*
 * RefundExisting
 *		If refund_id was used on this order: true when with the same request
 *		(then nothing is to be done), OE004 when with another.
 */
static bool
RefundExisting(const OrderState *st, const char *refund_id, Jsonb *request)
{
	Oid			argtypes[3] = {INT8OID, TEXTOID, JSONBOID};
	Datum		values[3];
	int			match;
	int64		order_id = st->order_id;

	values[0] = Int64GetDatum(order_id);
	values[1] = CStringGetTextDatum(refund_id);
	values[2] = JsonbPGetDatum(request);
	match = LedgerRowMatches(TwinPlan(refund_existing_plans, st->archived,
									  "SELECT detail->'request' = $3 FROM order_ext.order_payments{h}"
									  " WHERE order_id = $1 AND kind = 'refund' AND txn_id = $2",
									  3, argtypes), values);
	if (match == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OE_REQUEST_MISMATCH),
				 errmsg("refund \"%s\" of order " INT64_FORMAT " was made with another request",
						refund_id, order_id),
				 errdetail("The same refund_id was sent with other lines, amount or restock."),
				 errhint("Use a new refund_id for a new refund.")));
	return match == 1;
}

/*
 * ClaimsCovered
 *		OE006 unless, after this operation, the order keeps enough units and
 *		money for what the after-sales requests under way (other than
 *		except_id) will refund: no line's units asked for now, with those the
 *		requests hold, more than it has left, and enough money.  The operation refunds this_total now, with the units of now
 *		(a refund by lines; none: nnow 0), and claims the units of claim (a
 *		request opened or appealed; none: nclaim 0).  A request's refund is
 *		priced when it happens, so a line's claimed units count at the most
 *		they can cost.  Units are priced in the order they are refunded, and
 *		each request refunds its units of a line in one block, which costs at
 *		most ceil(c * net / qty) (as the line's last c units do), whatever
 *		is refunded between the blocks; and all blocks together cost no more
 *		than what is left of the line.  So a line counts the lesser of the
 *		two, with the shipping fee on top when the order has not shipped and
 *		the requests hold every unit it has left (the fee goes with the last
 *		unit).  Without this, money given
 *		back some other way could leave an approved request nothing to
 *		refund: it could neither refund nor end, and its order would never
 *		be archived.  The caller holds the order's lock (OrderLock).
 */
void
ClaimsCovered(OrderState *st, const UnitLine *now, int nnow, const UnitLine *claim, int nclaim,
			  int64 this_total, int64 except_id, const char *what)
{
	UnitLine   *held;
	int			nheld = AfterSaleClaimedUnits(st->order_id, except_id, &held);
	RefundLineState *ls;
	int			nls;
	int64		worst = 0;
	int64		worst_held = 0; /* of the requests under way only */
	int64		units_left = 0;
	int64		units_claimed = 0;
	int64		units_held = 0;
	char	   *detail;
	int64		left_money = st->paid_total - st->refunded_total;
	int			i;
	int			h = 0;
	int			n = 0;
	int			c = 0;

	if (nheld == 0 && nclaim == 0)
		return;					/* nothing claimed */
	ls = ReadLines(st->order_id, &nls);
	for (i = 0; i < nls; i++)
	{
		int32		left = ls[i].qty - ls[i].refunded_qty;
		int32		asked = 0;
		int32		held_units = 0;
		int32		claimed = 0;
		int64		blocks = 0;
		int64		blocks_held;
		int			h0;

		while (n < nnow && now[n].line_no < ls[i].line_no)
			n++;
		if (n < nnow && now[n].line_no == ls[i].line_no)
			asked = now[n].qty;
		while (c < nclaim && claim[c].line_no < ls[i].line_no)
			c++;
		if (c < nclaim && claim[c].line_no == ls[i].line_no)
			asked += claim[c].qty;
		while (h < nheld && held[h].line_no < ls[i].line_no)
			h++;
		for (h0 = h; h0 < nheld && held[h0].line_no == ls[i].line_no; h0++)
			held_units += held[h0].qty;

		/*
		 * The units first: two requests must not both be approved for one
		 * unit, nor a refund by lines give back units a request is about to
		 * (its return would restock them twice).
		 */
		if (asked > 0 && (int64) asked + held_units > left)
			ereport(ERROR,
					(errcode(ERRCODE_OE_REFUND_EXCEEDS),
					 errmsg("line %d of order " INT64_FORMAT " has no units left for %s",
							ls[i].line_no, st->order_id, what),
					 errdetail("%d units are left to refund; requests under way hold %d of them.",
							   left, held_units)));
		if (n < nnow && now[n].line_no == ls[i].line_no)
			left -= now[n].qty;
		left = Max(left, 0);
		/* each request refunds its units of the line in one block */
		for (; h < nheld && held[h].line_no == ls[i].line_no; h++)
		{
			claimed += held[h].qty;
			blocks += UnitsRefundAmount(ls[i].net, ls[i].qty, ls[i].qty - Min(held[h].qty, ls[i].qty),
										ls[i].qty);
		}
		held_units = Min(claimed, left);	/* of what is left, as claimed below */
		blocks_held = blocks;
		if (c < nclaim && claim[c].line_no == ls[i].line_no)
		{
			claimed += claim[c].qty;
			blocks += UnitsRefundAmount(ls[i].net, ls[i].qty, ls[i].qty - Min(claim[c].qty, ls[i].qty),
										ls[i].qty);
		}
		claimed = Min(claimed, left);	/* checked above */
		/* and all of them no more than what the line has left */
		if (claimed > 0)
			worst += Min(blocks, UnitsRefundAmount(ls[i].net, ls[i].qty, ls[i].qty - left, ls[i].qty));
		if (held_units > 0)
			worst_held += Min(blocks_held, UnitsRefundAmount(ls[i].net, ls[i].qty, ls[i].qty - left, ls[i].qty));
		units_left += left;
		units_claimed += claimed;
		units_held += held_units;
	}
	if (units_claimed > 0 && units_claimed == units_left && !OrderFactsOf(st)->shipped)
		worst += OrderFactsOf(st)->shipping_fee;
	if (units_held > 0 && units_held == units_left && !OrderFactsOf(st)->shipped)
		worst_held += OrderFactsOf(st)->shipping_fee;
	if ((int128) this_total + worst <= left_money)
		return;
	if (nclaim == 0)
		detail = psprintf("It has " INT64_FORMAT " left to refund; after-sales requests under way may refund up to "
						  INT64_FORMAT " of it, and this needs " INT64_FORMAT ".", left_money, worst, this_total);
	else if (worst_held == 0)	/* a request opened or appealed, alone */
		detail = psprintf("It has " INT64_FORMAT " left to refund; this request may refund up to " INT64_FORMAT ".",
						  left_money, worst);
	else						/* ... on top of the others */
		detail = psprintf("It has " INT64_FORMAT " left to refund; after-sales requests under way may refund up to "
						  INT64_FORMAT " of it, and with this request up to " INT64_FORMAT ".",
						  left_money, worst_held, worst);
	ereport(ERROR,
			(errcode(ERRCODE_OE_REFUND_EXCEEDS),
			 errmsg("order " INT64_FORMAT " has not enough left to refund for %s", st->order_id, what),
			 errdetail("%s", detail),
			 worst_held > 0 ? errhint("Refund, reject or close those requests first.") : 0));
}

/*
 * QuoteUnits
 *		Check units of a paid order's lines and price them: each unit at its
 *		net price (see the file header), the shipping fee with the last unit
 *		of the order unless it has shipped.
 */
static void
QuoteUnits(OrderState *st, const UnitLine *lines, int nlines, RefundQuote *q)
{
	const OrderFacts *f = OrderFactsOf(st);
	int64		units_left = 0;
	int			i;
	int			j;

	if (!f->paid)
		ereport(ERROR,
				(errcode(ERRCODE_OE_REFUND_EXCEEDS),
				 errmsg("order " INT64_FORMAT " was never paid: its units cannot be refunded",
						st->order_id),
				 errhint("Refund what it received by amount.")));
	/* split_order moved them: the children hold its units (and their stock) */
	if (strcmp(f->entered_by, OE_EVENT_SPLIT) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OE_REFUND_EXCEEDS),
				 errmsg("order " INT64_FORMAT " was split: its units are its children's",
						st->order_id),
				 errhint("Refund the units from the child orders (parent_id " INT64_FORMAT ").",
						 st->order_id)));

	q->ls = ReadLines(st->order_id, &q->nls);
	q->total = 0;
	for (i = 0, j = 0; i < nlines; i++)
	{
		RefundLineState *l;

		while (j < q->nls && q->ls[j].line_no < lines[i].line_no)
			j++;
		if (j >= q->nls || q->ls[j].line_no != lines[i].line_no)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("lines: order " INT64_FORMAT " has no line_no %d", st->order_id,
							lines[i].line_no)));
		l = &q->ls[j];
		if (lines[i].qty > l->qty - l->refunded_qty)
			ereport(ERROR,
					(errcode(ERRCODE_OE_REFUND_EXCEEDS),
					 errmsg("line %d of order " INT64_FORMAT " has %d units left to refund, not %d",
							l->line_no, st->order_id, l->qty - l->refunded_qty, lines[i].qty)));
		l->units = lines[i].qty;
		l->amount = UnitsRefundAmount(l->net, l->qty, l->refunded_qty, l->refunded_qty + l->units);
		q->total += l->amount;	/* Σ nets <= item_total: no overflow */
	}
	for (j = 0; j < q->nls; j++)
		units_left += q->ls[j].qty - q->ls[j].refunded_qty - q->ls[j].units;
	q->all_units = (units_left == 0);
	q->shipping = (q->all_units && !f->shipped) ? f->shipping_fee : 0;
	q->total += q->shipping;
}

/*
 * RefundQuoteUnits
 *		What refunding these units of an order locked with OrderLock would
 *		return now (errors as refund() would raise them).
 */
int64
RefundQuoteUnits(OrderState *st, const UnitLine *lines, int nlines)
{
	RefundQuote q;

	QuoteUnits(st, lines, nlines, &q);
	return q.total;
}

/*
 * RefundApply
 *		Refund lines (units at their net price; the shipping fee with the
 *		last unit unless shipped) or an amount, on an order locked with
 *		OrderLock; idempotent on refund_id.  Units that after-sales under
 *		way claim are not refunded by lines, except by the request that
 *		claims them (after_sale_id; 0 for refund()).  A full refund fires
 *		'close' where the machine has it.  Returns the order row (SPI
 *		context).
 */
Datum
RefundApply(OrderState *st, const char *refund_id, const UnitLine *lines, int nlines,
			bool has_amount, int64 amount, bool restock, RefundStock stock, int64 after_sale_id,
			const char *actor)
{
	Oid			argtypes[6] = {INT8OID, TEXTOID, INT8OID, JSONBOID, INT4ARRAYOID, INT4ARRAYOID};
	Datum		values[6];
	StringInfoData req;
	StringInfoData detail;
	Jsonb	   *request;
	RefundQuote q = {NULL, 0, 0, 0, false};
	RefundLineState *ls;
	int			nls;
	int64		total;
	int64		shipping;
	int64		refundable;
	Datum		row;
	int			i;
	int			j;

	/* the request, canonical, for idempotency */
	initStringInfo(&req);
	appendStringInfoString(&req, "{\"lines\": ");
	if (lines != NULL)
	{
		Jsonb	   *lj = UnitLinesObjects(lines, nlines);

		appendStringInfoString(&req, JsonbToCString(NULL, &lj->root, VARSIZE(lj)));
	}
	else
		appendStringInfoString(&req, "null");
	if (has_amount)
		appendStringInfo(&req, ", \"amount\": " INT64_FORMAT, amount);
	else
		appendStringInfoString(&req, ", \"amount\": null");
	appendStringInfo(&req, ", \"restock\": %s}", restock ? "true" : "false");
	request = JsonbFromString(req.data);
	if (RefundExisting(st, refund_id, request))
		return OrderRow(st);

	if (lines != NULL && st->archived)
		ereport(ERROR,
				(errcode(ERRCODE_OE_REFUND_EXCEEDS),
				 errmsg("order " INT64_FORMAT " is archived: its units cannot be refunded", st->order_id),
				 errdetail("order_ext.archive() moved it to the history tables."),
				 errhint("Refund what it has left to refund by amount.")));
	if (lines != NULL)
		QuoteUnits(st, lines, nlines, &q);
	else
	{
		if (amount <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_OE_AMOUNT_INVALID),
					 errmsg("amount must be positive"),
					 errdetail("Got " INT64_FORMAT ".", amount)));
		q.total = amount;
	}
	total = q.total;
	shipping = q.shipping;
	ls = q.ls;
	nls = q.nls;

	refundable = st->paid_total - st->refunded_total;
	if (total > refundable)
		ereport(ERROR,
				(errcode(ERRCODE_OE_REFUND_EXCEEDS),
				 errmsg("refund of " INT64_FORMAT " exceeds what order " INT64_FORMAT " has left to refund",
						total, st->order_id),
				 errdetail("Paid " INT64_FORMAT ", refunded " INT64_FORMAT " before: at most " INT64_FORMAT " more.",
						   st->paid_total, st->refunded_total, refundable)));
	if (!st->archived)
		ClaimsCovered(st, lines, nlines, NULL, 0, total, after_sale_id,
					  after_sale_id ? "this after-sale's refund" : "this refund");

	/* what this refund did, line by line: for the ledger and the event */
	initStringInfo(&detail);
	appendStringInfoString(&detail, "\"lines\": [");
	for (j = 0, i = 0; j < nls; j++)
		if (ls[j].units > 0)
			appendStringInfo(&detail, "%s{\"line_no\": %d, \"qty\": %d, \"amount\": " INT64_FORMAT "}",
							 i++ ? ", " : "", ls[j].line_no, ls[j].units, ls[j].amount);
	appendStringInfo(&detail, "], \"shipping\": " INT64_FORMAT, shipping);

	/* the ledger row */
	{
		StringInfoData d;

		initStringInfo(&d);
		appendStringInfo(&d, "{\"request\": %s, %s}", req.data, detail.data);
		values[0] = Int64GetDatum(st->order_id);
		values[1] = CStringGetTextDatum(refund_id);
		values[2] = Int64GetDatum(total);
		values[3] = JsonbPGetDatum(JsonbFromString(d.data));
		if (SPI_execute_plan(TwinPlan(refund_insert_plans, st->archived,
									  "INSERT INTO order_ext.order_payments{h}"
									  " (order_id, kind, txn_id, method, amount, detail, created_at)"
									  " VALUES ($1, 'refund', $2, 'refund', $3, $4, now())",
									  4, argtypes),
							 values, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not insert refund");
	}

	/* the lines */
	if (lines != NULL)
	{
		Datum	   *ln = palloc(sizeof(Datum) * nlines);
		Datum	   *qt = palloc(sizeof(Datum) * nlines);
		Datum	   *am = palloc(sizeof(Datum) * nlines);
		Oid			largtypes[4] = {INT8OID, INT4ARRAYOID, INT4ARRAYOID, INT8ARRAYOID};
		Datum		lvalues[4];
		int			k = 0;

		for (j = 0; j < nls; j++)
			if (ls[j].units > 0)
			{
				ln[k] = Int32GetDatum(ls[j].line_no);
				qt[k] = Int32GetDatum(ls[j].units);
				am[k] = Int64GetDatum(ls[j].amount);
				k++;
			}
		lvalues[0] = Int64GetDatum(st->order_id);
		lvalues[1] = PointerGetDatum(construct_array(ln, k, INT4OID, 4, true, TYPALIGN_INT));
		lvalues[2] = PointerGetDatum(construct_array(qt, k, INT4OID, 4, true, TYPALIGN_INT));
		lvalues[3] = PointerGetDatum(construct_array(am, k, INT8OID, 8, FLOAT8PASSBYVAL,
													 TYPALIGN_DOUBLE));
		if (SPI_execute_plan(OrderPlan(&refund_lines_update_plan,
									   "UPDATE order_ext.order_items i"
									   " SET refunded_qty = i.refunded_qty + u.q,"
									   "     refunded_amount = i.refunded_amount + u.a"
									   " FROM unnest($2, $3, $4) AS u(l, q, a)"
									   " WHERE i.order_id = $1 AND i.line_no = u.l",
									   4, largtypes),
							 lvalues, NULL, false, 0) != SPI_OK_UPDATE || SPI_processed != (uint64) k)
			elog(ERROR, "could not update the refunded lines of order " INT64_FORMAT, st->order_id);
	}

	/* the event and the order's refunded_total */
	{
		StringInfoData p;

		initStringInfo(&p);
		appendStringInfoChar(&p, '{');
		JsonAppendKeyString(&p, "refund_id", refund_id, true);
		appendStringInfo(&p, ", \"amount\": " INT64_FORMAT ", %s, \"restock\": %s}",
						 total, detail.data, restock ? "true" : "false");
		row = MoneyEvent(st, "refund", JsonbFromString(p.data), 0, total, actor);
	}

	/* the units go back (a return's went to stock already: only the holdings) */
	if (lines != NULL)
	{
		StockLine  *back = palloc(sizeof(StockLine) * Max(nls, 1));
		int			k = 0;

		for (j = 0; j < nls; j++)
			if (ls[j].units > 0)
			{
				back[k].sku = ls[j].sku;
				back[k++].qty = ls[j].units;
			}
		OrderReturnUnits(st, k, back, stock == REFUND_RETURN_UNITS, restock, true);
	}

	/* fully refunded: close, where the machine closes from this status */
	if (!st->archived &&
		(q.all_units || (st->paid_total > 0 && st->refunded_total == st->paid_total)) &&
		TransitionLookup(st->machine, st->status, OE_EVENT_CLOSE) != NULL)
	{
		StringInfoData p;

		initStringInfo(&p);
		appendStringInfoChar(&p, '{');
		JsonAppendKeyString(&p, "refund_id", refund_id, true);
		appendStringInfoChar(&p, '}');
		row = OrderFire(st, OE_EVENT_CLOSE, false, 0, "system", JsonbFromString(p.data));
	}
	return row;
}

/*
 * refund(order_id, refund_id, lines, amount, restock) -> order_ext.orders
 */
Datum
refund(PG_FUNCTION_ARGS)
{
	int64		order_id = ArgInt64(fcinfo, 0, "order_id");
	char	   *refund_id = ArgIdText(fcinfo, 1, "refund_id");
	UnitLine   *lines = NULL;
	int			nlines = 0;
	bool		has_amount = !PG_ARGISNULL(3);
	int64		amount = has_amount ? PG_GETARG_INT64(3) : 0;
	bool		restock;
	OrderState	st;
	Datum		row;

	if (PG_ARGISNULL(4))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("restock must not be NULL")));
	restock = PG_GETARG_BOOL(4);
	if (strncmp(refund_id, AFTER_SALE_REFUND_PREFIX, strlen(AFTER_SALE_REFUND_PREFIX)) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("refund_id \"%s\" is reserved", refund_id),
				 errdetail("Refund ids beginning with \"" AFTER_SALE_REFUND_PREFIX "\" are those of after-sales"
						   " requests' refunds (fire_after_sale's refund)."),
				 errhint("Use a refund id of the payment gateway's, or of your own.")));
	if (PG_ARGISNULL(2) == !has_amount)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("give either lines or amount"),
				 errdetail("lines refunds units at their net price; amount refunds a sum.")));
	if (!PG_ARGISNULL(2))
		nlines = ParseUnitLines(PG_GETARG_JSONB_P(2), "lines", &lines);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (!OrderLock(order_id, &st) && !ArchivedOrderLock(order_id, &st))
		OrderNotFound(order_id);
	row = RefundApply(&st, refund_id, lines, nlines, has_amount, amount, restock,
					  REFUND_RETURN_UNITS, 0, "system");
	row = SPI_datumTransfer(row, false, -1);
	SPI_finish();
	PG_RETURN_DATUM(row);
}

/*
 * NewOrderId
 *		order_ext.new_order_id() from C (children of a split, after-sales).
 */
int64
NewOrderId(void)
{
	return DatumGetInt64(DirectFunctionCall1(new_order_id, (Datum) 0));
}
