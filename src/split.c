/*
 * split.c
 *		Splitting an order by merchant or warehouse: order_ext.split_order().
 *
 * Owns: making the child orders.  Each group of lines (same merchant_id,
 * or warehouse_id; NULL is a group of its own) becomes a child with its own
 * id from new_order_id(), parent_id set, the parent's machine, status,
 * milestones and attrs, version 1 and a 'create' event naming the parent.
 * Money moves exactly: lines keep their discount_alloc; the shipping fee is
 * spread over the children in proportion to their net item totals and the
 * paid total in proportion to their payable totals (largest remainder, ties
 * to the earlier child); the parent's discount rows and payment rows are cut
 * into pieces that add up, per row and per child, to the parent's amounts.
 * So Σ children = parent for item_total, discount_total, shipping_fee,
 * payable_total and paid_total, to the minor unit.  The parent moves to
 * 'split' (actor internal) with the children and the money moved in the
 * event's payload, and its paid_total drops to 0: the money is the
 * children's now, so it cannot be refunded twice.  The parent keeps its
 * rows (a repeated payment callback still finds its txn_id there; a new
 * payment to it is a late payment, refund_due).
 * Children inherit the parent's pending timers (same due time) and its
 * stock holdings (StockTransfer).  An order with refunds, or with an
 * after-sale not finished, is not split.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/tuplestore.h"

#include "aftersale.h"
#include "events.h"
#include "fire.h"
#include "machine.h"
#include "money.h"
#include "order_ext.h"
#include "stock.h"

static SPIPlanPtr units_refunded_plan = NULL;

/* One line of the parent. */
typedef struct SplitLine
{
	int32		line_no;
	char	   *sku;
	int32		qty;
	int64		total;			/* qty * unit_price */
	int64		discount_alloc;
	int64		line_discounts; /* of which line-level discounts */
	bool		key_null;
	int64		key;			/* merchant_id or warehouse_id */
	int			child;			/* index of its child */
	int32		child_line_no;
} SplitLine;

/* One child. */
typedef struct SplitChild
{
	int64		order_id;
	bool		key_null;
	int64		key;
	int			nlines;
	int64		item_total;
	int64		discount_total;
	int64		order_level;	/* of which order-level discounts */
	int64		shipping_fee;
	int64		payable_total;
	int64		paid_total;
} SplitChild;

/* A row of the parent to cut into pieces (discount or payment). */
typedef struct SplitRow
{
	int64		amount;
	int32		line_no;		/* discounts: 0 for order-level */
	Datum		a;				/* kind / txn_id */
	Datum		b;				/* code / method */
	bool		b_null;
	Datum		c;				/* -, created_at */
} SplitRow;

PG_FUNCTION_INFO_V1(split_order);

/*
 * Allocate
 *		Split total over n parts in proportion to weights (equal parts if all
 *		weights are 0): floor shares, then one unit each to the largest
 *		remainders (ties: the lower index).  Σ out = total exactly.
 */
static void
Allocate(int64 total, const int64 *weights, int n, int64 *out)
{
	int128		w = 0;
	int128	   *rem = palloc(sizeof(int128) * n);
	int64		left = total;
	int			i;

	for (i = 0; i < n; i++)
		w += weights[i];
	for (i = 0; i < n; i++)
	{
		int128		num = (int128) total * (w > 0 ? weights[i] : 1);
		int128		den = w > 0 ? w : n;

		out[i] = (int64) (num / den);
		rem[i] = num % den;
		left -= out[i];
	}
	while (left > 0)
	{
		int			best = -1;

		for (i = 0; i < n; i++)
			if (rem[i] > 0 && (best < 0 || rem[i] > rem[best]))
				best = i;
		if (best < 0)
			elog(ERROR, "split: allocation left " INT64_FORMAT " over", left);
		out[best]++;
		rem[best] = 0;
		left--;
	}
	pfree(rem);
}

/*
 * Fill
 *		Cut rows (amounts summing to S) into pieces for parts that need
 *		need[0..n) (summing to S): walking both in order, each piece is as
 *		large as both the rest of its row and the rest of its part allow.
 *		Calls emit(part, row, amount) for each piece.
 */
static void
Fill(const int64 *need, int n, SplitRow *rows, int nrows,
	 void (*emit) (int part, SplitRow *row, int64 amount, void *arg), void *arg)
{
	int			p = 0;
	int			r = 0;
	int64		part_left = n > 0 ? need[0] : 0;
	int64		row_left = nrows > 0 ? rows[0].amount : 0;

	while (p < n && r < nrows)
	{
		int64		piece = Min(part_left, row_left);

		if (piece > 0)
			emit(p, &rows[r], piece, arg);
		part_left -= piece;
		row_left -= piece;
		if (part_left == 0 && ++p < n)
			part_left = need[p];
		if (row_left == 0 && ++r < nrows)
			row_left = rows[r].amount;
	}
}

/* Pieces of rows per child, collected as arrays for the inserts. */
typedef struct Pieces
{
	int			nchildren;
	int		   *n;				/* per child */
	Datum	  **a;
	Datum	  **b;
	bool	  **b_null;
	Datum	  **c;
	Datum	  **amount;
	Datum	  **line_no;
	bool	  **line_null;
} Pieces;

static void
PiecesInit(Pieces *pc, int nchildren, int maxper)
{
	int			i;

	pc->nchildren = nchildren;
	pc->n = palloc0(sizeof(int) * nchildren);
	pc->a = palloc(sizeof(Datum *) * nchildren);
	pc->b = palloc(sizeof(Datum *) * nchildren);
	pc->b_null = palloc(sizeof(bool *) * nchildren);
	pc->c = palloc(sizeof(Datum *) * nchildren);
	pc->amount = palloc(sizeof(Datum *) * nchildren);
	pc->line_no = palloc(sizeof(Datum *) * nchildren);
	pc->line_null = palloc(sizeof(bool *) * nchildren);
	for (i = 0; i < nchildren; i++)
	{
		pc->a[i] = palloc(sizeof(Datum) * Max(maxper, 1));
		pc->b[i] = palloc(sizeof(Datum) * Max(maxper, 1));
		pc->b_null[i] = palloc(sizeof(bool) * Max(maxper, 1));
		pc->c[i] = palloc(sizeof(Datum) * Max(maxper, 1));
		pc->amount[i] = palloc(sizeof(Datum) * Max(maxper, 1));
		pc->line_no[i] = palloc(sizeof(Datum) * Max(maxper, 1));
		pc->line_null[i] = palloc(sizeof(bool) * Max(maxper, 1));
	}
}

static void
PieceAdd(Pieces *pc, int child, SplitRow *row, int64 amount, int32 line_no)
{
	int			k = pc->n[child]++;

	pc->a[child][k] = row->a;
	pc->b[child][k] = row->b;
	pc->b_null[child][k] = row->b_null;
	pc->c[child][k] = row->c;
	pc->amount[child][k] = Int64GetDatum(amount);
	pc->line_no[child][k] = Int32GetDatum(line_no);
	pc->line_null[child][k] = (line_no == 0);
}

static void
EmitPiece(int part, SplitRow *row, int64 amount, void *arg)
{
	PieceAdd((Pieces *) arg, part, row, amount, 0);
}

static Datum
ArrayOf(Datum *d, bool *nulls, int n, Oid type)
{
	int			dims[1] = {n};
	int			lbs[1] = {1};
	int16		typlen;
	bool		typbyval;
	char		typalign;

	get_typlenbyvalalign(type, &typlen, &typbyval, &typalign);
	return PointerGetDatum(construct_md_array(d, nulls, 1, dims, lbs, type, typlen, typbyval,
											  typalign));
}

/*
 * ReadSplitLines
 *		The parent's lines with their group key.
 */
static SplitLine *
ReadSplitLines(int64 order_id, bool by_warehouse, int *n)
{
	Oid			argtypes[2] = {INT8OID, BOOLOID};
	Datum		values[2];
	SplitLine  *ls;
	uint64		r;

	values[0] = Int64GetDatum(order_id);
	values[1] = BoolGetDatum(by_warehouse);
	if (SPI_execute_with_args("SELECT i.line_no, i.sku, i.qty, i.qty * i.unit_price, i.discount_alloc,"
							  " CASE WHEN $2 THEN i.warehouse_id ELSE i.merchant_id END,"
							  " coalesce((SELECT sum(d.amount) FROM order_ext.order_discounts d"
							  "   WHERE d.order_id = i.order_id AND d.line_no = i.line_no), 0)::bigint"
							  " FROM order_ext.order_items i WHERE i.order_id = $1 ORDER BY i.line_no",
							  2, argtypes, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read order lines");
	ls = palloc0(sizeof(SplitLine) * Max(SPI_processed, 1));
	for (r = 0; r < SPI_processed; r++)
	{
		HeapTuple	tup = SPI_tuptable->vals[r];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;

		ls[r].line_no = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
		ls[r].sku = SPI_getvalue(tup, desc, 2);
		ls[r].qty = DatumGetInt32(SPI_getbinval(tup, desc, 3, &isnull));
		ls[r].total = DatumGetInt64(SPI_getbinval(tup, desc, 4, &isnull));
		ls[r].discount_alloc = DatumGetInt64(SPI_getbinval(tup, desc, 5, &isnull));
		ls[r].key = DatumGetInt64(SPI_getbinval(tup, desc, 6, &ls[r].key_null));
		ls[r].line_discounts = DatumGetInt64(SPI_getbinval(tup, desc, 7, &isnull));
	}
	*n = (int) SPI_processed;
	return ls;
}

/*
 * ReadSplitRows
 *		The parent's discount rows (payments false) or payment rows.
 */
static SplitRow *
ReadSplitRows(int64 order_id, bool payments, int *n)
{
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1];
	SplitRow   *rows;
	uint64		r;

	values[0] = Int64GetDatum(order_id);
	if (SPI_execute_with_args(payments
							  ? "SELECT amount, 0, txn_id, method, created_at FROM order_ext.order_payments"
							  " WHERE order_id = $1 AND kind = 'payment' ORDER BY created_at, txn_id"
							  : "SELECT amount, coalesce(line_no, 0), kind, code, NULL::timestamptz"
							  " FROM order_ext.order_discounts WHERE order_id = $1 ORDER BY seq",
							  1, argtypes, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the order's rows");
	rows = palloc0(sizeof(SplitRow) * Max(SPI_processed, 1));
	for (r = 0; r < SPI_processed; r++)
	{
		HeapTuple	tup = SPI_tuptable->vals[r];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;

		rows[r].amount = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		rows[r].line_no = DatumGetInt32(SPI_getbinval(tup, desc, 2, &isnull));
		rows[r].a = datumCopy(SPI_getbinval(tup, desc, 3, &isnull), false, -1);
		rows[r].b = SPI_getbinval(tup, desc, 4, &rows[r].b_null);
		if (!rows[r].b_null)
			rows[r].b = datumCopy(rows[r].b, false, -1);
		rows[r].c = SPI_getbinval(tup, desc, 5, &isnull);
	}
	*n = (int) SPI_processed;
	return rows;
}

/*
 * InsertChild
 *		Write one child: the order row (copied from the parent with the
 *		child's money), its lines, discounts, payments, 'create' event and
 *		the parent's pending timers.
 */
static void
InsertChild(OrderState *parent, SplitChild *c, SplitLine *ls, int nls, int ci,
			Pieces *disc, Pieces *pay, const char *by)
{
	Oid			argtypes[16] = {INT8OID, INT8OID, INT8OID, INT8OID, INT8OID, INT8OID, INT8OID,
		INT4ARRAYOID, TEXTARRAYOID, TEXTARRAYOID, INT8ARRAYOID, INT4ARRAYOID,
	TEXTARRAYOID, TEXTARRAYOID, INT8ARRAYOID, TIMESTAMPTZARRAYOID};
	Datum		values[16];
	Datum	   *lnos = palloc(sizeof(Datum) * nls);
	StringInfoData payload;
	int			k = 0;
	int			i;

	initStringInfo(&payload);
	appendStringInfo(&payload, "{\"split_from\": " INT64_FORMAT ", ", parent->order_id);
	JsonAppendKeyString(&payload, "by", by, true);
	appendStringInfoString(&payload, ", \"lines\": {");
	for (i = 0; i < nls; i++)
		if (ls[i].child == ci)
		{
			appendStringInfo(&payload, "%s\"%d\": %d", k ? ", " : "", ls[i].child_line_no,
							 ls[i].line_no);
			lnos[k++] = Int32GetDatum(ls[i].line_no);
		}
	appendStringInfoString(&payload, "}}");

	values[0] = Int64GetDatum(c->order_id);
	values[1] = Int64GetDatum(parent->order_id);
	values[2] = Int64GetDatum(c->item_total);
	values[3] = Int64GetDatum(c->discount_total);
	values[4] = Int64GetDatum(c->shipping_fee);
	values[5] = Int64GetDatum(c->payable_total);
	values[6] = Int64GetDatum(c->paid_total);
	values[7] = ArrayOf(lnos, NULL, k, INT4OID);
	values[8] = ArrayOf(disc->a[ci], NULL, disc->n[ci], TEXTOID);
	values[9] = ArrayOf(disc->b[ci], disc->b_null[ci], disc->n[ci], TEXTOID);
	values[10] = ArrayOf(disc->amount[ci], NULL, disc->n[ci], INT8OID);
	values[11] = ArrayOf(disc->line_no[ci], disc->line_null[ci], disc->n[ci], INT4OID);
	values[12] = ArrayOf(pay->a[ci], NULL, pay->n[ci], TEXTOID);
	values[13] = ArrayOf(pay->b[ci], NULL, pay->n[ci], TEXTOID);
	values[14] = ArrayOf(pay->amount[ci], NULL, pay->n[ci], INT8OID);
	values[15] = ArrayOf(pay->c[ci], NULL, pay->n[ci], TIMESTAMPTZOID);

	if (SPI_execute_with_args(
							  "WITH o AS ("
							  " INSERT INTO order_ext.orders"
							  " (order_id, parent_id, machine, status, version, status_version, buyer_id,"
							  "  currency, item_total, discount_total, shipping_fee, payable_total,"
							  "  paid_total, refunded_total, attrs, created_at, updated_at, paid_at,"
							  "  shipped_at, received_at, completed_at, closed_at)"
							  " SELECT $1, p.order_id, p.machine, p.status, 1, 1, p.buyer_id, p.currency,"
							  "  $3, $4, $5, $6, $7, 0, p.attrs, now(), now(), p.paid_at, p.shipped_at,"
							  "  p.received_at, p.completed_at, p.closed_at"
							  " FROM order_ext.orders p WHERE p.order_id = $2 RETURNING order_id),"
							  " i AS (INSERT INTO order_ext.order_items"
							  " (order_id, line_no, sku, qty, unit_price, discount_alloc, merchant_id,"
							  "  warehouse_id)"
							  " SELECT $1, u.n, i.sku, i.qty, i.unit_price, i.discount_alloc, i.merchant_id,"
							  "  i.warehouse_id"
							  " FROM unnest($8) WITH ORDINALITY AS u(l, n)"
							  " JOIN order_ext.order_items i ON i.order_id = $2 AND i.line_no = u.l),"
							  " d AS (INSERT INTO order_ext.order_discounts"
							  " (order_id, seq, kind, code, amount, line_no)"
							  " SELECT $1, u.n, u.k, u.c, u.a, u.l"
							  " FROM unnest($9, $10, $11, $12) WITH ORDINALITY AS u(k, c, a, l, n)),"
							  " y AS (INSERT INTO order_ext.order_payments"
							  " (order_id, kind, txn_id, method, amount, created_at)"
							  " SELECT $1, 'payment', u.t, u.m, u.a, u.c"
							  " FROM unnest($13, $14, $15, $16) AS u(t, m, a, c))"
							  " SELECT 1 FROM o",
							  16, argtypes, values, NULL, false, 0) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "could not insert child order " INT64_FORMAT, c->order_id);

	OrderEventAppend(c->order_id, 1, "create", NULL, parent->status, "system",
					 JsonbPGetDatum(JsonbFromString(payload.data)));

	/* the parent's pending timers carry on, with the same due time */
	{
		Oid			targtypes[4] = {INT8OID, INT8OID, TEXTOID, INT4OID};
		Datum		tvalues[4];

		tvalues[0] = Int64GetDatum(c->order_id);
		tvalues[1] = Int64GetDatum(parent->order_id);
		tvalues[2] = CStringGetTextDatum(parent->status);
		tvalues[3] = Int32GetDatum(parent->status_version);
		if (SPI_execute_with_args("INSERT INTO order_ext.timers"
								  " (order_id, subject, subject_id, status, version, event, due_at)"
								  " SELECT $1, 'order', $1, t.status, 1, t.event, t.due_at"
								  " FROM order_ext.timers t"
								  " WHERE t.order_id = $2 AND t.subject = 'order' AND t.subject_id = $2"
								  " AND t.status = $3 AND t.version = $4",
								  4, targtypes, tvalues, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not copy timers to child order " INT64_FORMAT, c->order_id);
	}

	for (i = 0; i < nls; i++)
		if (ls[i].child == ci)
			StockTransfer(parent->order_id, c->order_id, ls[i].sku, ls[i].qty);
}

/*
 * UnitsRefunded
 *		Whether any unit of the order was refunded: free units (net price 0)
 *		are refunded with amount 0, which refunded_total does not show.
 */
static bool
UnitsRefunded(int64 order_id)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1];

	values[0] = Int64GetDatum(order_id);
	if (SPI_execute_plan(OrderPlan(&units_refunded_plan,
								   "SELECT 1 FROM order_ext.order_items WHERE order_id = $1 AND refunded_qty > 0"
								   " LIMIT 1",
								   1, types),
						 values, NULL, false, 1) != SPI_OK_SELECT)	/* a snapshot taken after the lock */
		elog(ERROR, "could not read the lines of order " INT64_FORMAT, order_id);
	return SPI_processed > 0;
}

/*
 * split_order(order_id, by) -> SETOF bigint
 */
Datum
split_order(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int64		order_id;
	char	   *by;
	bool		by_warehouse;
	OrderState	st;
	SplitLine  *ls;
	int			nls;
	SplitChild *cs;
	int			ncs = 0;
	SplitRow   *drows;
	int			nd;
	SplitRow   *prows;
	int			np;
	int64	   *w;
	int64	   *share;
	int64		shipping_fee;
	Pieces		disc;
	Pieces		pay;
	StringInfoData payload;
	int			i;
	int			j;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be NULL", PG_ARGISNULL(0) ? "order_id" : "by")));
	order_id = PG_GETARG_INT64(0);
	by = NameTextArg(fcinfo, 1);
	if (strcmp(by, "merchant") != 0 && strcmp(by, "warehouse") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("by must be merchant or warehouse"),
				 errdetail("Got \"%s\".", by)));
	by_warehouse = (by[0] == 'w');
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	OrderLockLive(order_id, &st, "it cannot be split");
	(void) TransitionCheck("order", order_id, st.machine, st.status, OE_EVENT_SPLIT, OE_ACTOR_INTERNAL,
						   st.attrs);
	if (st.refunded_total > 0 || UnitsRefunded(order_id))
		ereport(ERROR,
				(errcode(ERRCODE_OE_TRANSITION),
				 errmsg("order " INT64_FORMAT " has refunds and cannot be split", order_id)));
	/* its units would go back to the parent, whose reservations the children hold */
	if (AfterSaleUnderWay(order_id))
		ereport(ERROR,
				(errcode(ERRCODE_OE_TRANSITION),
				 errmsg("order " INT64_FORMAT " has an after-sale under way and cannot be split", order_id),
				 errhint("Split it once its after-sales are finished: refunded, or rejected and closed"
						 " (in the default machine a rejected request can still be appealed).")));

	/* the groups, in the order of their first line */
	ls = ReadSplitLines(order_id, by_warehouse, &nls);
	cs = palloc0(sizeof(SplitChild) * Max(nls, 1));
	for (i = 0; i < nls; i++)
	{
		for (j = 0; j < ncs; j++)
			if (cs[j].key_null == ls[i].key_null && (ls[i].key_null || cs[j].key == ls[i].key))
				break;
		if (j == ncs)
		{
			cs[ncs].key_null = ls[i].key_null;
			cs[ncs].key = ls[i].key;
			ncs++;
		}
		ls[i].child = j;
		ls[i].child_line_no = ++cs[j].nlines;
		cs[j].item_total += ls[i].total;
		cs[j].discount_total += ls[i].discount_alloc;
		cs[j].order_level += ls[i].discount_alloc - ls[i].line_discounts;
	}
	if (ncs < 2)
	{
		/* one group: nothing to split */
		SPI_finish();
		return (Datum) 0;
	}

	/* shipping by net item totals, payments by payable totals */
	{
		Oid			argtypes[1] = {INT8OID};
		Datum		values[1];
		bool		isnull;

		values[0] = Int64GetDatum(order_id);
		if (SPI_execute_with_args("SELECT shipping_fee FROM order_ext.orders WHERE order_id = $1",
								  1, argtypes, values, NULL, false, 1) != SPI_OK_SELECT ||
			SPI_processed != 1)
			elog(ERROR, "could not read order " INT64_FORMAT, order_id);
		shipping_fee = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
												   SPI_tuptable->tupdesc, 1, &isnull));
	}
	w = palloc(sizeof(int64) * ncs);
	share = palloc(sizeof(int64) * ncs);
	for (j = 0; j < ncs; j++)
		w[j] = cs[j].item_total - cs[j].discount_total;
	Allocate(shipping_fee, w, ncs, share);
	for (j = 0; j < ncs; j++)
	{
		cs[j].shipping_fee = share[j];
		cs[j].payable_total = w[j] + share[j];
		w[j] = cs[j].payable_total;
	}
	Allocate(st.paid_total, w, ncs, share);
	for (j = 0; j < ncs; j++)
		cs[j].paid_total = share[j];

	/* discount rows: line-level to their line's child, order-level cut */
	drows = ReadSplitRows(order_id, false, &nd);
	PiecesInit(&disc, ncs, nd + ncs);
	{
		SplitRow   *order_level = palloc(sizeof(SplitRow) * Max(nd, 1));
		int			nol = 0;

		for (i = 0; i < nd; i++)
		{
			if (drows[i].line_no == 0)
			{
				order_level[nol++] = drows[i];
				continue;
			}
			for (j = 0; j < nls && ls[j].line_no != drows[i].line_no; j++)
				;
			if (j == nls)
				elog(ERROR, "discount for unknown line %d", drows[i].line_no);
			PieceAdd(&disc, ls[j].child, &drows[i], drows[i].amount, ls[j].child_line_no);
		}
		for (j = 0; j < ncs; j++)
			w[j] = cs[j].order_level;
		Fill(w, ncs, order_level, nol, EmitPiece, &disc);
	}

	/* payment rows, cut to each child's paid total */
	prows = ReadSplitRows(order_id, true, &np);
	PiecesInit(&pay, ncs, np + ncs);
	for (j = 0; j < ncs; j++)
		w[j] = cs[j].paid_total;
	Fill(w, ncs, prows, np, EmitPiece, &pay);

	/* the stock rows the children's reservations move in, in the common order */
	(void) StockLockOrder(order_id);
	initStringInfo(&payload);
	appendStringInfoString(&payload, "{\"children\": [");
	for (j = 0; j < ncs; j++)
	{
		Datum		v;
		bool		isnull = false;

		cs[j].order_id = NewOrderId();
		InsertChild(&st, &cs[j], ls, nls, j, &disc, &pay, by);
		appendStringInfo(&payload, "%s" INT64_FORMAT, j ? ", " : "", cs[j].order_id);
		v = Int64GetDatum(cs[j].order_id);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &v, &isnull);
	}
	appendStringInfoString(&payload, "], ");
	JsonAppendKeyString(&payload, "by", by, true);
	appendStringInfo(&payload, ", \"paid_moved\": " INT64_FORMAT "}", st.paid_total);
	/* the money went to the children: the parent holds none (no refund twice) */
	st.paid_delta = -st.paid_total;
	(void) OrderFire(&st, OE_EVENT_SPLIT, false, 0, OE_ACTOR_INTERNAL, JsonbFromString(payload.data));
	SPI_finish();
	return (Datum) 0;
}
