/*
 * stock.c
 *		Stock that never oversells: reservations, the on_create and on_pay
 *		deduction policies, purchase limits, and hot mode for flash sales.
 *
 * Owns: order_ext.stock_skus, stock_buckets, reservations, purchase_limits
 * and buyer_holdings, and every write to them.
 *
 * A SKU's stock is one bucket row (normal mode) or several (hot mode).  An
 * order reserves a SKU's units from one bucket: normal mode updates bucket 0
 * with a guard (on_hand - reserved >= qty); hot mode takes the first bucket
 * with enough units that no other transaction has locked (FOR UPDATE SKIP
 * LOCKED, starting at a bucket picked by the backend), so concurrent orders
 * for one SKU lock different rows instead of queueing on one.  Only when no
 * unlocked bucket has enough does an order wait: it then locks every bucket
 * of the SKU in bucket order and takes units from several.  Buckets are
 * ordinary rows with CHECK (0 <= reserved <= on_hand), so aborts, crashes
 * and restarts need nothing special: a reservation is durable exactly when
 * the order that made it commits.
 *
 * Lock order, everywhere: stock rows by (sku COLLATE "C", bucket), then
 * purchase-limit holdings by sku.  Reservations are made at the end of
 * create_order, after the order rows are written, so a bucket's row lock is
 * held only for the rest of the transaction.
 *
 * Which SKUs are tracked or limited is cached per backend (a hash probe per
 * line, no SPI when nothing is tracked); writes to stock_skus and
 * purchase_limits send a relcache invalidation (trigger config_changed).
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "order_ext.h"
#include "stock.h"

#define SKU_KEY_LEN		208		/* SKUs are at most 200 bytes (table CHECKs) */
#define MAX_BUCKETS		1024

/* What the cache knows of a SKU. */
typedef struct StockSku
{
	char		sku[SKU_KEY_LEN];	/* hash key */
	bool		tracked;		/* has stock rows */
	bool		on_pay;			/* policy on_pay (else on_create) */
	int32		buckets;
	int32		limit;			/* per-buyer limit; 0: none */
} StockSku;

/* One reservation made (or to move): sku, bucket, units. */
typedef struct Taken
{
	const char *sku;
	int32		bucket;
	int64		qty;
} Taken;

typedef struct TakenList
{
	int			n;
	int			cap;
	Taken	   *items;
} TakenList;

static HTAB *sku_hash = NULL;
static MemoryContext stock_cxt = NULL;
static bool stock_valid = false;
static bool stock_callback = false;
static long ntracked = 0;
static long nlimited = 0;
static Oid	stock_relids[2];

static SPIPlanPtr reserve_plan = NULL;
static SPIPlanPtr reserve_hot_plan = NULL;
static SPIPlanPtr reserve_bucket_plan = NULL;
static SPIPlanPtr lock_sku_plan = NULL;
static SPIPlanPtr take_plan = NULL;
static SPIPlanPtr insert_res_plan = NULL;
/*
 * The most on_hand set_stock takes (10^15 units): restocks add units that
 * left the warehouse, so a SKU's on_hand, and the stock view's sums, stay
 * far from bigint's end.  (At bigint's end, one restock made the view fail
 * for every SKU.)
 */
#define OE_STOCK_MAX INT64CONST(1000000000000000)

static SPIPlanPtr holdings_add_plan = NULL;
static SPIPlanPtr holdings_get_plan = NULL;
static SPIPlanPtr holdings_sub_plan = NULL;
static SPIPlanPtr lock_order_plan = NULL;
static SPIPlanPtr drop_order_plan = NULL;
static SPIPlanPtr order_lines_plan = NULL;
static SPIPlanPtr lock_order_sku_plan = NULL;
static SPIPlanPtr lock_buckets_plan = NULL;
static SPIPlanPtr release_res_plan = NULL;
static SPIPlanPtr restock_plan = NULL;
static SPIPlanPtr move_res_plan = NULL;
static SPIPlanPtr lock_buckets_nowait_plan = NULL;
static SPIPlanPtr holdings_nowait_plan = NULL;
static SPIPlanPtr lock_sku_nowait_plan = NULL;
static SPIPlanPtr restock_nowait_plan = NULL;

/*
 * stock_nowait
 *		Set by StockNoWait while run_timers fires a timer after others of
 *		its call: the stock and holdings rows this module locks are then
 *		locked with NOWAIT (55P03 at once if another transaction holds one;
 *		timers.c puts the timer back).  The runner still holds the rows of
 *		the timers it fired before, taken in due order rather than in the
 *		SKU order buyers take them in: had it waited for a buyer's row while
 *		that buyer waited for one of them, however briefly, the buyer's
 *		deadlock check could find the cycle first and cancel the buyer.
 */
static bool stock_nowait = false;

static uint64 LockBuckets(Datum sku, Datum bks);

bool
StockNoWait(bool on)
{
	bool		was = stock_nowait;

	stock_nowait = on;
	return was;
}

PG_FUNCTION_INFO_V1(set_stock);
PG_FUNCTION_INFO_V1(stock_available);
PG_FUNCTION_INFO_V1(set_purchase_limit);
PG_FUNCTION_INFO_V1(check_stock);

/* ------------------------------------------------------------------------
 * The per-backend cache of tracked and limited SKUs
 * ------------------------------------------------------------------------
 */

static void
StockCacheReset(Datum arg, Oid relid)
{
	(void) arg;
	if (!OidIsValid(relid) || relid == stock_relids[0] || relid == stock_relids[1])
		stock_valid = false;
}

/*
 * StockCacheLoad
 *		Read stock_skus and purchase_limits (latest snapshot) into a fresh
 *		hash table.  Runs inside SPI.
 */
static void
StockCacheLoad(void)
{
	Oid			nsp = get_namespace_oid("order_ext", false);
	SPIPlanPtr	plan;
	HASHCTL		ctl;
	uint64		r;

	if (!stock_callback)
	{
		CacheRegisterRelcacheCallback(StockCacheReset, (Datum) 0);
		stock_callback = true;
	}
	if (stock_cxt == NULL)
		stock_cxt = AllocSetContextCreate(TopMemoryContext, "order_ext stock cache",
										  ALLOCSET_DEFAULT_SIZES);
	stock_relids[0] = get_relname_relid("stock_skus", nsp);
	stock_relids[1] = get_relname_relid("purchase_limits", nsp);
	stock_valid = true;			/* an invalidation during the read clears it again */

	MemoryContextReset(stock_cxt);
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = SKU_KEY_LEN;
	ctl.entrysize = sizeof(StockSku);
	ctl.hcxt = stock_cxt;
	sku_hash = hash_create("order_ext stock skus", 256, &ctl, HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	ntracked = nlimited = 0;

	/*
	 * A schema still at 0.1 (before ALTER EXTENSION UPDATE) has no stock:
	 * nothing to cache, and nothing kept either, since no invalidation of
	 * tables not yet made would ever reach this cache (a session open
	 * across the update went on with no stock for good).
	 */
	if (!OidIsValid(stock_relids[0]) || !OidIsValid(stock_relids[1]))
	{
		stock_valid = false;
		return;
	}

	plan = SPI_prepare("SELECT coalesce(s.sku, l.sku), s.sku IS NOT NULL, s.policy = 'on_pay',"
					   " coalesce(s.buckets, 1), coalesce(l.per_buyer, 0)"
					   " FROM order_ext.stock_skus s FULL JOIN order_ext.purchase_limits l ON l.sku = s.sku",
					   0, NULL);
	if (plan == NULL ||
		SPI_execute_snapshot(plan, NULL, NULL, GetLatestSnapshot(), InvalidSnapshot, true, false, 0)
		!= SPI_OK_SELECT)
		elog(ERROR, "could not read the stock settings");
	for (r = 0; r < SPI_processed; r++)
	{
		HeapTuple	tup = SPI_tuptable->vals[r];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		char	   *sku = SPI_getvalue(tup, desc, 1);
		bool		isnull;
		StockSku   *e;

		if (strlen(sku) >= SKU_KEY_LEN)
			continue;			/* cannot be: the tables CHECK the length */
		e = hash_search(sku_hash, sku, HASH_ENTER, NULL);
		e->tracked = DatumGetBool(SPI_getbinval(tup, desc, 2, &isnull));
		e->on_pay = e->tracked && DatumGetBool(SPI_getbinval(tup, desc, 3, &isnull));
		e->buckets = DatumGetInt32(SPI_getbinval(tup, desc, 4, &isnull));
		e->limit = DatumGetInt32(SPI_getbinval(tup, desc, 5, &isnull));
		ntracked += e->tracked;
		nlimited += (e->limit > 0);
	}
	SPI_freeplan(plan);
}

/*
 * StockCatalog
 *		Make sure the cache is current; false when no SKU is tracked or
 *		limited (then there is nothing to do).
 */
static bool
StockCatalog(void)
{
	AcceptInvalidationMessages();
	if (!stock_valid)
		StockCacheLoad();
	return ntracked > 0 || nlimited > 0;
}

static const StockSku *
StockLookup(const char *sku)
{
	if (sku_hash == NULL || strlen(sku) >= SKU_KEY_LEN)
		return NULL;
	return hash_search(sku_hash, sku, HASH_FIND, NULL);
}

/* ------------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------------
 */

static void
TakenAdd(TakenList *l, const char *sku, int32 bucket, int64 qty)
{
	if (l->n == l->cap)
	{
		l->cap = Max(8, l->cap * 2);
		l->items = l->items ? repalloc(l->items, l->cap * sizeof(Taken))
			: palloc(l->cap * sizeof(Taken));
	}
	l->items[l->n].sku = sku;
	l->items[l->n].bucket = bucket;
	l->items[l->n].qty = qty;
	l->n++;
}

static void
Exec(SPIPlanPtr plan, Datum *values, const char *nulls, int expect)
{
	int			rc = SPI_execute_plan(plan, values, nulls, false, 0);

	if (rc != expect)
		elog(ERROR, "stock statement failed: %s", SPI_result_code_string(rc));
}

static int
SkuCompare(const void *a, const void *b)
{
	return strcmp(((const StockLine *) a)->sku, ((const StockLine *) b)->sku);
}

/*
 * MergeLines
 *		The lines sorted by SKU (byte order, as COLLATE "C"), one per SKU,
 *		quantities added (overflow-checked).
 */
static StockLine *
MergeLines(int nlines, const StockLine *lines, int *nout)
{
	StockLine  *out = palloc(sizeof(StockLine) * Max(nlines, 1));
	int			i;
	int			n = 0;

	memcpy(out, lines, sizeof(StockLine) * nlines);
	qsort(out, nlines, sizeof(StockLine), SkuCompare);
	for (i = 0; i < nlines; i++)
	{
		if (n > 0 && strcmp(out[n - 1].sku, out[i].sku) == 0)
		{
			if (pg_add_s64_overflow(out[n - 1].qty, out[i].qty, &out[n - 1].qty))
				ereport(ERROR,
						(errcode(ERRCODE_OE_AMOUNT_INVALID),
						 errmsg("quantity of sku \"%s\" is out of range", out[i].sku)));
		}
		else
			out[n++] = out[i];
	}
	*nout = n;
	return out;
}

/*
 * BucketRows
 *		The (bucket int, units bigint) rows of the last SPI result as arrays.
 */
static int
BucketRows(int32 **bk, int64 **units)
{
	int			n = (int) SPI_processed;
	int			i;
	bool		isnull;

	*bk = palloc(sizeof(int32) * Max(n, 1));
	*units = palloc(sizeof(int64) * Max(n, 1));
	for (i = 0; i < n; i++)
	{
		(*bk)[i] = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		(*units)[i] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));
	}
	return n;
}

static Datum
TextArrayDatum(const char **strs, int n)
{
	Datum	   *d = palloc(sizeof(Datum) * Max(n, 1));
	int			i;

	for (i = 0; i < n; i++)
		d[i] = CStringGetTextDatum(strs[i]);
	return PointerGetDatum(construct_array(d, n, TEXTOID, -1, false, TYPALIGN_INT));
}

/* ------------------------------------------------------------------------
 * Reserving
 * ------------------------------------------------------------------------
 */

static void
OutOfStock(const char *sku, int64 available, int64 qty)
{
	ereport(ERROR,
			(errcode(ERRCODE_OE_OUT_OF_STOCK),
			 errmsg("not enough stock for sku \"%s\"", sku),
			 errdetail(INT64_FORMAT " requested, " INT64_FORMAT " available.", qty,
					   Max(available, 0))));
}

/* What TryHotBucket's subtransaction works on. */
typedef struct HotTry
{
	Datum	   *values;			/* sku, qty, start, buckets */
	int32		bucket;			/* out: the bucket reserved from */
} HotTry;

/*
 * HotTryInSubxact
 *		The body of TryHotBucket; raises OE003 when no free bucket has enough
 *		units, so that the subtransaction is rolled back.
 */
static void
HotTryInSubxact(void *arg)
{
	HotTry	   *h = (HotTry *) arg;
	Oid			types[4] = {TEXTOID, INT8OID, INT4OID, INT4OID};
	Oid			utypes[3] = {TEXTOID, INT8OID, INT4OID};
	Datum		uv[3];
	bool		isnull;

	Exec(OrderPlan(&reserve_hot_plan,
				   "SELECT bucket FROM order_ext.stock_buckets"
				   " WHERE sku = $1 AND on_hand - reserved >= $2"
				   " ORDER BY (bucket + $3) % $4 LIMIT 1 FOR UPDATE SKIP LOCKED",
				   4, types),
		 h->values, NULL, SPI_OK_SELECT);
	if (SPI_processed != 1)
		ereport(ERROR, (errcode(ERRCODE_OE_OUT_OF_STOCK), errmsg("no free bucket has enough units")));
	h->bucket = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	uv[0] = h->values[0];
	uv[1] = h->values[1];
	uv[2] = Int32GetDatum(h->bucket);
	Exec(OrderPlan(&reserve_bucket_plan,
				   "UPDATE order_ext.stock_buckets SET reserved = reserved + $2"
				   " WHERE sku = $1 AND bucket = $3",
				   3, utypes),
		 uv, NULL, SPI_OK_UPDATE);
}

/*
 * TryHotBucket
 *		Hot mode: reserve from the first bucket, counting from start, that
 *		has enough units and that no other transaction has locked.  Inside a
 *		subtransaction, because FOR UPDATE SKIP LOCKED keeps the locks of rows
 *		it examined and then skipped (their newest version no longer had
 *		enough): on failure they are let go before the caller waits for all
 *		buckets in order, or two such waiters could deadlock.  values: sku,
 *		qty.
 */
static bool
TryHotBucket(Datum *values, int32 start, int32 nb, int32 *bucket)
{
	HotTry		h;
	ErrorData  *err;

	values[2] = Int32GetDatum(start);
	values[3] = Int32GetDatum(nb);
	h.values = values;
	h.bucket = -1;
	err = OrderSubxact(HotTryInSubxact, &h);
	if (err != NULL && err->sqlerrcode != ERRCODE_OE_OUT_OF_STOCK)
		ReThrowError(err);
	if (err != NULL)
		return false;
	*bucket = h.bucket;
	return true;
}

/*
 * ReserveSku
 *		Reserve qty units of a tracked SKU; what was taken goes to *taken.
 *		OE003 if the SKU does not have them.
 */
static void
ReserveSku(const StockSku *s, int64 qty, TakenList *taken)
{
	Oid			types[4] = {TEXTOID, INT8OID, INT4OID, INT4OID};
	Datum		values[4];
	int			nb = Max(s->buckets, 1);
	int			r;
	int64		total = 0;
	int64		want = qty;
	int32	   *bk;
	int64	   *avail;
	int			nbk;

	values[0] = CStringGetTextDatum(s->sku);
	values[1] = Int64GetDatum(qty);

	/* the fast path: normal mode waits for its one bucket; hot mode waits for none */
	if (nb == 1)
	{
		SPIPlanPtr	plan;

		if (stock_nowait)
		{
			Datum		zero = Int32GetDatum(0);

			(void) LockBuckets(values[0], PointerGetDatum(construct_array(&zero, 1, INT4OID, sizeof(int32),
																		  true, TYPALIGN_INT)));
		}
		plan = OrderPlan(&reserve_plan,
									 "UPDATE order_ext.stock_buckets SET reserved = reserved + $2"
									 " WHERE sku = $1 AND bucket = 0 AND on_hand - reserved >= $2"
									 " RETURNING bucket",
									 2, types);

		Exec(plan, values, NULL, SPI_OK_UPDATE_RETURNING);
		if (SPI_processed == 1)
		{
			TakenAdd(taken, s->sku, 0, qty);
			return;
		}
	}
	else
	{
		int32		b;

		if (TryHotBucket(values, MyProcPid % nb, nb, &b))
		{
			TakenAdd(taken, s->sku, b, qty);
			return;
		}
	}

	/* no bucket has enough, or all that do are locked: lock them all, in order */
#define LOCK_SKU "SELECT bucket, on_hand - reserved FROM order_ext.stock_buckets" \
	" WHERE sku = $1 ORDER BY bucket FOR UPDATE"
	if (stock_nowait)
		Exec(OrderPlan(&lock_sku_nowait_plan, LOCK_SKU " NOWAIT", 1, types), values, NULL, SPI_OK_SELECT);
	else
		Exec(OrderPlan(&lock_sku_plan, LOCK_SKU, 1, types), values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		return;					/* its stock rows went away meanwhile: not tracked now */
	nbk = BucketRows(&bk, &avail);
	for (r = 0; r < nbk; r++)
		total += avail[r];
	if (total < qty)
		OutOfStock(s->sku, total, qty);

	/* take from as few buckets as the order they come in allows */
	{
		Datum	   *bd = palloc(sizeof(Datum) * nbk);
		Datum	   *qd = palloc(sizeof(Datum) * nbk);
		int			k = 0;
		int			i;
		Oid			ttypes[3] = {TEXTOID, INT4ARRAYOID, INT8ARRAYOID};
		Datum		tv[3];

		for (i = 0; i < nbk && want > 0; i++)
		{
			int64		q = Min(avail[i], want);

			if (q <= 0)
				continue;
			bd[k] = Int32GetDatum(bk[i]);
			qd[k] = Int64GetDatum(q);
			TakenAdd(taken, s->sku, bk[i], q);
			want -= q;
			k++;
		}
		tv[0] = values[0];
		tv[1] = PointerGetDatum(construct_array(bd, k, INT4OID, 4, true, TYPALIGN_INT));
		tv[2] = PointerGetDatum(construct_array(qd, k, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		Exec(OrderPlan(&take_plan,
					   "UPDATE order_ext.stock_buckets b SET reserved = b.reserved + t.q"
					   " FROM unnest($2::int[], $3::bigint[]) t(bucket, q)"
					   " WHERE b.sku = $1 AND b.bucket = t.bucket",
					   3, ttypes),
			 tv, NULL, SPI_OK_UPDATE);
	}
}

/*
 * InsertReservations
 *		The reservation rows of what was taken.
 */
static void
InsertReservations(int64 order_id, const TakenList *taken)
{
	Oid			types[4] = {INT8OID, TEXTARRAYOID, INT4ARRAYOID, INT8ARRAYOID};
	Datum		values[4];
	const char **skus;
	Datum	   *bd;
	Datum	   *qd;
	int			i;

	if (taken->n == 0)
		return;
	skus = palloc(sizeof(char *) * taken->n);
	bd = palloc(sizeof(Datum) * taken->n);
	qd = palloc(sizeof(Datum) * taken->n);
	for (i = 0; i < taken->n; i++)
	{
		skus[i] = taken->items[i].sku;
		bd[i] = Int32GetDatum(taken->items[i].bucket);
		qd[i] = Int64GetDatum(taken->items[i].qty);
	}
	values[0] = Int64GetDatum(order_id);
	values[1] = TextArrayDatum(skus, taken->n);
	values[2] = PointerGetDatum(construct_array(bd, taken->n, INT4OID, 4, true, TYPALIGN_INT));
	values[3] = PointerGetDatum(construct_array(qd, taken->n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	Exec(OrderPlan(&insert_res_plan,
				   "INSERT INTO order_ext.reservations (order_id, sku, bucket, qty)"
				   " SELECT $1, s, b, q FROM unnest($2::text[], $3::int[], $4::bigint[]) t(s, b, q)"
				   " ON CONFLICT (order_id, sku, bucket) DO UPDATE"
				   " SET qty = order_ext.reservations.qty + excluded.qty",
				   4, types),
		 values, NULL, SPI_OK_INSERT);
}

/*
 * HoldingsNoWait
 *		With stock_nowait, lock a buyer's holdings row of a SKU without
 *		waiting (values: buyer_id, sku) before the statement that writes it.
 */
static void
HoldingsNoWait(Datum *values)
{
	Oid			types[2] = {INT8OID, TEXTOID};

	if (stock_nowait)
		Exec(OrderPlan(&holdings_nowait_plan,
					   "SELECT 1 FROM order_ext.buyer_holdings WHERE buyer_id = $1 AND sku = $2"
					   " FOR UPDATE NOWAIT",
					   2, types),
			 values, NULL, SPI_OK_SELECT);
}

/*
 * HoldingsAdd
 *		Count qty more units of a limited SKU against a buyer; OE005 past
 *		the limit.  The holdings row lock serialises the buyer's orders.
 */
static void
HoldingsAdd(int64 buyer_id, const StockSku *s, int64 qty)
{
	Oid			types[4] = {INT8OID, TEXTOID, INT8OID, INT4OID};
	Datum		values[4];
	bool		isnull;
	int64		held = 0;

	values[0] = Int64GetDatum(buyer_id);
	values[1] = CStringGetTextDatum(s->sku);
	values[2] = Int64GetDatum(qty);
	values[3] = Int32GetDatum(s->limit);
	HoldingsNoWait(values);
	if (qty <= s->limit)
	{
		Exec(OrderPlan(&holdings_add_plan,
					   "INSERT INTO order_ext.buyer_holdings AS h (buyer_id, sku, qty) VALUES ($1, $2, $3)"
					   " ON CONFLICT (buyer_id, sku) DO UPDATE SET qty = h.qty + excluded.qty"
					   " WHERE h.qty + excluded.qty <= $4 RETURNING qty",
					   4, types),
			 values, NULL, SPI_OK_INSERT_RETURNING);
		if (SPI_processed == 1)
			return;
	}
	/* refused: what the buyer holds, for the message (also when this order alone is too much) */
	Exec(OrderPlan(&holdings_get_plan,
				   "SELECT qty FROM order_ext.buyer_holdings WHERE buyer_id = $1 AND sku = $2",
				   2, types),
		 values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 1)
		held = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	ereport(ERROR,
			(errcode(ERRCODE_OE_PURCHASE_LIMIT),
			 errmsg("purchase limit of sku \"%s\" exceeded", s->sku),
			 errdetail("Buyer " INT64_FORMAT " may hold at most %d units and holds " INT64_FORMAT
					   "; this order asks for " INT64_FORMAT ".", buyer_id, s->limit, held, qty)));
}

/*
 * OrderBuyer
 *		The buyer of a live order (the caller holds its lock); -1 if the
 *		order is not live and missing_ok (an archived order's units no
 *		longer count against its buyer).
 */
static int64
OrderBuyer(int64 order_id, bool missing_ok)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[1] = {INT8OID};
	Datum		values[1];
	bool		isnull;

	values[0] = Int64GetDatum(order_id);
	Exec(OrderPlan(&plan, "SELECT buyer_id FROM order_ext.orders WHERE order_id = $1", 1, types),
		 values, NULL, SPI_OK_SELECT);
	if (SPI_processed != 1 && missing_ok)
		return -1;
	if (SPI_processed != 1)
		elog(ERROR, "order " INT64_FORMAT " not found", order_id);
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

static void
HoldingsSub(int64 buyer_id, const char *sku, int64 qty)
{
	Oid			types[3] = {INT8OID, TEXTOID, INT8OID};
	Datum		values[3];

	values[0] = Int64GetDatum(buyer_id);
	values[1] = CStringGetTextDatum(sku);
	values[2] = Int64GetDatum(qty);
	HoldingsNoWait(values);
	Exec(OrderPlan(&holdings_sub_plan,
				   "UPDATE order_ext.buyer_holdings SET qty = greatest(qty - $3, 0)"
				   " WHERE buyer_id = $1 AND sku = $2",
				   3, types),
		 values, NULL, SPI_OK_UPDATE);
}

/*
 * HoldingsLines
 *		The purchase-limited lines of an order count against its buyer again
 *		(add; OE005 past a limit) or no longer.  The buyer is read once, and
 *		first (holdings and orders are distributed on other keys); an order
 *		no longer live (archived) counts against nobody, so taking off its
 *		units does nothing.
 */
static void
HoldingsLines(int64 order_id, int n, const StockLine *lines, bool add)
{
	int64		buyer = -2;		/* not read yet */
	int			i;

	for (i = 0; i < n; i++)
	{
		const StockSku *s = StockLookup(lines[i].sku);

		if (s == NULL || s->limit <= 0 || lines[i].qty <= 0)
			continue;
		if (buyer == -2)
			buyer = OrderBuyer(order_id, !add);
		if (buyer < 0)
			return;
		if (add)
			HoldingsAdd(buyer, s, lines[i].qty);
		else
			HoldingsSub(buyer, lines[i].sku, lines[i].qty);
	}
}

/*
 * ReserveLines
 *		Reserve the tracked SKUs among merged lines (all of them, or only
 *		the on_create ones) and insert the reservation rows.
 */
static void
ReserveLines(int64 order_id, int n, const StockLine *merged, bool only_on_create)
{
	TakenList	taken = {0, 0, NULL};
	int			i;

	for (i = 0; i < n; i++)
	{
		const StockSku *s = StockLookup(merged[i].sku);

		if (s == NULL || !s->tracked || (only_on_create && s->on_pay))
			continue;
		ReserveSku(s, merged[i].qty, &taken);
	}
	InsertReservations(order_id, &taken);
}

void
StockOnCreate(int64 order_id, int64 buyer_id, int nlines, const StockLine *lines)
{
	StockLine  *merged;
	int			n;
	int			i;

	if (!StockCatalog())
		return;
	merged = MergeLines(nlines, lines, &n);
	ReserveLines(order_id, n, merged, true);
	if (nlimited > 0)
		for (i = 0; i < n; i++)
		{
			const StockSku *s = StockLookup(merged[i].sku);

			if (s != NULL && s->limit > 0)
				HoldingsAdd(buyer_id, s, merged[i].qty);
		}
}

/*
 * OrderLines
 *		An order's units still held (qty - refunded_qty) per SKU, sorted by
 *		SKU; optionally only SKUs it holds no reservation for.
 */
static StockLine *
OrderLines(int64 order_id, bool unreserved_only, int *n)
{
	Oid			types[2] = {INT8OID, BOOLOID};
	Datum		values[2];
	StockLine  *out;
	uint64		r;
	bool		isnull;

	values[0] = Int64GetDatum(order_id);
	values[1] = BoolGetDatum(unreserved_only);
	Exec(OrderPlan(&order_lines_plan,
				   "SELECT i.sku COLLATE \"C\" AS sku, sum(i.qty - i.refunded_qty)::bigint"
				   " FROM order_ext.order_items i WHERE i.order_id = $1"
				   " AND NOT ($2 AND EXISTS (SELECT 1 FROM order_ext.reservations r"
				   "                         WHERE r.order_id = $1 AND r.sku = i.sku COLLATE \"C\"))"
				   " GROUP BY 1 HAVING sum(i.qty - i.refunded_qty) > 0 ORDER BY 1",
				   2, types),
		 values, NULL, SPI_OK_SELECT);
	out = palloc(sizeof(StockLine) * Max(SPI_processed, 1));
	for (r = 0; r < SPI_processed; r++)
	{
		out[r].sku = SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1);
		out[r].qty = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 2, &isnull));
	}
	*n = (int) SPI_processed;
	return out;
}

/*
 * StockLimited
 *		Whether any SKU has a purchase limit, so that holdings are kept.
 */
bool
StockLimited(void)
{
	return StockCatalog() && nlimited > 0;
}

/*
 * StockReserveOrder
 *		Effect stock:reserve (pay): reserve every tracked SKU of the order
 *		that holds no reservation yet (on_pay SKUs, and SKUs tracked since).
 *		With count_again (a user machine's resume after a stock:release:
 *		fire.c, UnitsCounted), its units count against purchase limits
 *		again, and may be refused (OE005).
 */
void
StockReserveOrder(int64 order_id, bool count_again)
{
	StockLine  *lines;
	int			n;

	if (!StockCatalog())
		return;
	if (ntracked > 0)
	{
		lines = OrderLines(order_id, true, &n);
		ReserveLines(order_id, n, lines, false);
	}
	if (!count_again || nlimited == 0)
		return;
	lines = OrderLines(order_id, false, &n);
	HoldingsLines(order_id, n, lines, true);
}

/*
 * DropReservations
 *		Remove all reservations of an order, committing them (on_hand falls
 *		too) or releasing them.
 */
static void
DropReservations(int64 order_id, bool commit)
{
	Oid			types[2] = {INT8OID, BOOLOID};
	Datum		values[2];

	values[0] = Int64GetDatum(order_id);
	values[1] = BoolGetDatum(commit);
	if (StockLockOrder(order_id) == 0)
		return;
	Exec(OrderPlan(&drop_order_plan,
				   "WITH r AS (DELETE FROM order_ext.reservations WHERE order_id = $1"
				   "           RETURNING sku, bucket, qty)"
				   " UPDATE order_ext.stock_buckets b"
				   " SET on_hand = b.on_hand - CASE WHEN $2 THEN r.qty ELSE 0 END,"
				   "     reserved = b.reserved - r.qty"
				   " FROM r WHERE b.sku = r.sku AND b.bucket = r.bucket",
				   2, types),
		 values, NULL, SPI_OK_UPDATE);
}

/*
 * StockCommitOrder
 *		Effect stock:commit (ship): the reserved units leave the warehouse.
 */
void
StockCommitOrder(int64 order_id)
{
	if (!StockCatalog() || ntracked == 0)
		return;
	DropReservations(order_id, true);
}

/*
 * StockReleaseOrder
 *		Effect stock:release (cancel, expire, close): reservations go back
 *		and the order's units stop counting against purchase limits, if they
 *		counted (an earlier stock:release of a user machine took them off
 *		already: fire.c, UnitsCounted).
 */
void
StockReleaseOrder(int64 order_id, bool counted)
{
	if (!StockCatalog())
		return;
	if (ntracked > 0)
		DropReservations(order_id, false);
	if (nlimited > 0 && counted)
	{
		int			n;
		StockLine  *lines = OrderLines(order_id, false, &n);

		HoldingsLines(order_id, n, lines, false);
	}
}

/*
 * LockBuckets
 *		Lock buckets of one SKU (bks: an int[] in bucket order), in that
 *		order; returns how many rows it locked.  By SKU alone: stock rows
 *		and reservations are distributed on different keys (API.md, Citus:
 *		stock by sku, order rows by order_id), so a FOR UPDATE over a join
 *		of the two could not run on one shard.
 */
static uint64
LockBuckets(Datum sku, Datum bks)
{
	Oid			types[2] = {TEXTOID, INT4ARRAYOID};
	Datum		values[2];

#define LOCK_BUCKETS "SELECT 1 FROM order_ext.stock_buckets WHERE sku = $1 AND bucket = ANY ($2)" \
	" ORDER BY bucket FOR UPDATE"

	values[0] = sku;
	values[1] = bks;
	if (stock_nowait)
		Exec(OrderPlan(&lock_buckets_nowait_plan, LOCK_BUCKETS " NOWAIT", 2, types),
			 values, NULL, SPI_OK_SELECT);
	else
		Exec(OrderPlan(&lock_buckets_plan, LOCK_BUCKETS, 2, types), values, NULL, SPI_OK_SELECT);
	return SPI_processed;
}

/*
 * LockOrderSku
 *		Lock the buckets an order holds reservations of one SKU in, in
 *		order; returns how many reservations (bucket, qty) it holds there.
 *		The caller holds the order's row, so its reservations stay as read.
 */
static int
LockOrderSku(int64 order_id, const char *sku, int32 **bk, int64 **held)
{
	Oid			types[2] = {INT8OID, TEXTOID};
	Datum		values[2];
	Datum	   *d;
	int			n;
	int			i;

	values[0] = Int64GetDatum(order_id);
	values[1] = CStringGetTextDatum(sku);
	Exec(OrderPlan(&lock_order_sku_plan,
				   "SELECT bucket, qty FROM order_ext.reservations"
				   " WHERE order_id = $1 AND sku = $2 ORDER BY bucket",
				   2, types),
		 values, NULL, SPI_OK_SELECT);
	n = BucketRows(bk, held);
	if (n == 0)
		return 0;
	d = palloc(sizeof(Datum) * n);
	for (i = 0; i < n; i++)
		d[i] = Int32GetDatum((*bk)[i]);
	(void) LockBuckets(values[1],
					   PointerGetDatum(construct_array(d, n, INT4OID, sizeof(int32), true,
													   TYPALIGN_INT)));
	return n;
}

/*
 * TakeReserved
 *		Take qty units of sku out of an order's reservations, bucket by
 *		bucket (their rows locked in order): to order to_order_id's
 *		reservations (split_order), or, with to_order_id 0, back to the
 *		buckets' available units.  Returns the units it found no
 *		reservation for.
 */
#define SHRINK_RESERVATION \
	"WITH d AS (DELETE FROM order_ext.reservations" \
	"           WHERE order_id = $1 AND sku = $2 AND bucket = $3 AND qty = $4)," \
	" u AS (UPDATE order_ext.reservations SET qty = qty - $4" \
	"       WHERE order_id = $1 AND sku = $2 AND bucket = $3 AND qty > $4)"

static int64
TakeReserved(int64 order_id, const char *sku, int64 qty, int64 to_order_id)
{
	int			n;
	int			i;
	int32	   *bk;
	int64	   *held;
	int64		left = qty;
	Oid			types[5] = {INT8OID, TEXTOID, INT4OID, INT8OID, INT8OID};
	Datum		values[5];

	n = LockOrderSku(order_id, sku, &bk, &held);
	values[0] = Int64GetDatum(order_id);
	values[1] = CStringGetTextDatum(sku);
	values[4] = Int64GetDatum(to_order_id);
	for (i = 0; i < n && left > 0; i++)
	{
		int64		q = Min(held[i], left);

		values[2] = Int32GetDatum(bk[i]);
		values[3] = Int64GetDatum(q);
		if (to_order_id == 0)
			Exec(OrderPlan(&release_res_plan,
						   SHRINK_RESERVATION
						   " UPDATE order_ext.stock_buckets SET reserved = reserved - $4"
						   " WHERE sku = $2 AND bucket = $3",
						   4, types),
				 values, NULL, SPI_OK_UPDATE);
		else
			Exec(OrderPlan(&move_res_plan,
						   SHRINK_RESERVATION
						   " INSERT INTO order_ext.reservations AS r (order_id, sku, bucket, qty)"
						   " VALUES ($5, $2, $3, $4) ON CONFLICT (order_id, sku, bucket)"
						   " DO UPDATE SET qty = r.qty + excluded.qty",
						   5, types),
				 values, NULL, SPI_OK_INSERT);
		left -= q;
	}
	return left;
}

/*
 * ReturnBuckets
 *		The stock half of units of one SKU going back: release them from the
 *		order's reservation while it holds one, restock the rest (restock).
 */
static void
ReturnBuckets(int64 order_id, const char *sku, int64 qty, bool restock)
{
	int64		left = TakeReserved(order_id, sku, qty, 0);

	if (left > 0 && restock)
	{
		Oid			rtypes[2] = {TEXTOID, INT8OID};
		Datum		rv[2];

		rv[0] = CStringGetTextDatum(sku);
		rv[1] = Int64GetDatum(left);
		if (stock_nowait)
			Exec(OrderPlan(&restock_nowait_plan,
						   "SELECT 1 FROM order_ext.stock_buckets WHERE sku = $1 AND bucket ="
						   " (SELECT min(bucket) FROM order_ext.stock_buckets WHERE sku = $1)"
						   " FOR UPDATE NOWAIT",
						   1, rtypes),
				 rv, NULL, SPI_OK_SELECT);
		Exec(OrderPlan(&restock_plan,
					   "UPDATE order_ext.stock_buckets SET on_hand = on_hand + $2"
					   " WHERE sku = $1 AND bucket = (SELECT min(bucket) FROM order_ext.stock_buckets"
					   "                              WHERE sku = $1)",
					   2, rtypes),
			 rv, NULL, SPI_OK_UPDATE);
	}
}

void
StockReturnLines(int64 order_id, int nlines, const StockLine *lines, bool buckets, bool restock,
				 bool holdings)
{
	StockLine  *merged;
	int			n;
	int			i;

	if (nlines <= 0 || !StockCatalog())
		return;
	/* by SKU, stock rows before holdings, as create_order, ship and cancel lock them */
	merged = MergeLines(nlines, lines, &n);
	for (i = 0; i < n && buckets; i++)
	{
		const StockSku *s = StockLookup(merged[i].sku);

		if (s != NULL && s->tracked && merged[i].qty > 0)
			ReturnBuckets(order_id, merged[i].sku, merged[i].qty, restock);
	}
	if (holdings)
		HoldingsLines(order_id, n, merged, false);
}

/*
 * StockLockOrder
 *		Lock the stock rows an order holds reservations in, in the order
 *		everyone locks them (SKU, then bucket), and say how many: ship and
 *		cancel before they drop the reservations, split_order before it
 *		moves them child by child, in no such order.  The order's
 *		reservations are read first (the caller holds the order's row), then
 *		each SKU's buckets are locked by SKU (LockBuckets).
 */
uint64
StockLockOrder(int64 order_id)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1];
	SPITupleTable *tt;
	uint64		n;
	uint64		i;
	uint64		locked = 0;

	if (!StockCatalog() || ntracked == 0)
		return 0;
	values[0] = Int64GetDatum(order_id);
	Exec(OrderPlan(&lock_order_plan,
				   "SELECT sku, array_agg(bucket ORDER BY bucket) FROM order_ext.reservations"
				   " WHERE order_id = $1 GROUP BY sku ORDER BY sku",
				   1, types),
		 values, NULL, SPI_OK_SELECT);
	tt = SPI_tuptable;
	n = SPI_processed;
	for (i = 0; i < n; i++)
	{
		bool		isnull;
		Datum		sku = SPI_getbinval(tt->vals[i], tt->tupdesc, 1, &isnull);
		Datum		bks = SPI_getbinval(tt->vals[i], tt->tupdesc, 2, &isnull);

		locked += LockBuckets(sku, bks);
	}
	return locked;
}

void
StockTransfer(int64 from_order_id, int64 to_order_id, const char *sku, int64 qty)
{
	const StockSku *s;

	if (qty <= 0 || !StockCatalog() || (s = StockLookup(sku)) == NULL || !s->tracked)
		return;
	(void) TakeReserved(from_order_id, sku, qty, to_order_id);
}

/* ------------------------------------------------------------------------
 * SQL functions
 * ------------------------------------------------------------------------
 */

static char *
SkuArg(FunctionCallInfo fcinfo, int argno)
{
	char	   *sku;

	if (PG_ARGISNULL(argno))
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("sku must not be NULL")));
	sku = text_to_cstring(PG_GETARG_TEXT_PP(argno));
	if (sku[0] == '\0' || strlen(sku) > 200)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("sku must be 1 to 200 bytes long")));
	return sku;
}

/*
 * set_stock(sku, on_hand, policy, hot, buckets) -> order_ext.stock
 */
Datum
set_stock(PG_FUNCTION_ARGS)
{
	char	   *sku = SkuArg(fcinfo, 0);
	int64		on_hand;
	char	   *policy;
	bool		hot;
	int32		nb;
	int32		keep;
	Oid			types[5] = {TEXTOID, TEXTOID, INT4OID, TIMESTAMPTZOID, INT8OID};
	Datum		values[5];
	int64		reserved = 0;
	int64		avail;
	int32	   *bk;
	int64	   *res;
	int			n;
	int			i;
	bool		isnull;
	Datum		row;
	Datum	   *bd;
	Datum	   *od;
	int			k = 0;

	if (PG_ARGISNULL(1))
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("on_hand must not be NULL")));
	on_hand = PG_GETARG_INT64(1);
	if (on_hand < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("on_hand must not be negative")));
	/* room for restocks after it, and for the sums over buckets and SKUs */
	if (on_hand > OE_STOCK_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("on_hand must be at most " INT64_FORMAT, (int64) OE_STOCK_MAX),
				 errdetail("Got " INT64_FORMAT ".", on_hand)));
	for (i = 2; i <= 4; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s must not be NULL", i == 2 ? "policy" : i == 3 ? "hot" : "buckets"),
					 errhint("Leave it out for its default.")));
	policy = NameTextArg(fcinfo, 2);
	if (strcmp(policy, "on_create") != 0 && strcmp(policy, "on_pay") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("policy must be 'on_create' or 'on_pay', not \"%s\"", policy)));
	hot = PG_GETARG_BOOL(3);
	nb = PG_GETARG_INT32(4);
	if (hot && (nb < 2 || nb > MAX_BUCKETS))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("buckets must be between 2 and %d in hot mode", MAX_BUCKETS)));
	if (!hot)
		nb = 1;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	/* the settings row: its lock serialises set_stock calls for the SKU */
	values[0] = CStringGetTextDatum(sku);
	values[1] = CStringGetTextDatum(policy);
	values[2] = Int32GetDatum(nb);
	values[3] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	if (SPI_execute_with_args("INSERT INTO order_ext.stock_skus AS s (sku, policy, buckets, updated_at)"
							  " VALUES ($1, $2, $3, $4) ON CONFLICT (sku) DO UPDATE"
							  " SET policy = excluded.policy, buckets = excluded.buckets,"
							  "     updated_at = excluded.updated_at"
							  " WHERE (s.policy, s.buckets) IS DISTINCT FROM (excluded.policy, excluded.buckets)",
							  4, types, values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not write the stock settings");
	if (SPI_execute_with_args("SELECT 1 FROM order_ext.stock_skus WHERE sku = $1 FOR UPDATE",
							  1, types, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not lock the stock settings");

	/* every bucket, in order, then the new layout */
	if (SPI_execute_with_args("SELECT bucket, reserved FROM order_ext.stock_buckets"
							  " WHERE sku = $1 ORDER BY bucket FOR UPDATE",
							  1, types, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not lock the stock rows");
	n = (int) SPI_processed;
	bk = palloc(sizeof(int32) * Max(n, 1));
	res = palloc(sizeof(int64) * Max(n, 1));
	for (i = 0; i < n; i++)
	{
		bk[i] = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		res[i] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));
		reserved += res[i];
	}
	if (on_hand < reserved)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("on_hand of sku \"%s\" must be at least the " INT64_FORMAT " units orders have reserved",
						sku, reserved)));

	/*
	 * Buckets 0..nb-1 share the available units evenly on top of what they
	 * have reserved; a bucket beyond them keeps its reservations (on_hand =
	 * reserved) until they are shipped or released, or goes if it has none.
	 */
	avail = on_hand - reserved;
	keep = nb;
	for (i = 0; i < n; i++)
		keep = Max(keep, bk[i] + 1);
	bd = palloc(sizeof(Datum) * keep);
	od = palloc(sizeof(Datum) * keep);
	for (i = 0; i < keep; i++)
	{
		int64		r = 0;
		int			j;
		bool		exists = false;
		int64		share = 0;

		for (j = 0; j < n; j++)
			if (bk[j] == i)
			{
				r = res[j];
				exists = true;
			}
		if (i < nb)
			share = avail / nb + (i < avail % nb ? 1 : 0);
		else if (!exists || r == 0)
			continue;
		bd[k] = Int32GetDatum(i);
		od[k] = Int64GetDatum(r + share);
		k++;
	}
	{
		Oid			btypes[3] = {TEXTOID, INT4ARRAYOID, INT8ARRAYOID};
		Datum		bv[3];

		bv[0] = values[0];
		bv[1] = PointerGetDatum(construct_array(bd, k, INT4OID, 4, true, TYPALIGN_INT));
		bv[2] = PointerGetDatum(construct_array(od, k, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		if (SPI_execute_with_args("DELETE FROM order_ext.stock_buckets WHERE sku = $1 AND bucket <> ALL ($2)",
								  2, btypes, bv, NULL, false, 0) != SPI_OK_DELETE ||
			SPI_execute_with_args("INSERT INTO order_ext.stock_buckets AS b (sku, bucket, on_hand, reserved)"
								  " SELECT $1, t.bucket, t.on_hand, 0 FROM unnest($2::int[], $3::bigint[]) t(bucket, on_hand)"
								  " ON CONFLICT (sku, bucket) DO UPDATE SET on_hand = excluded.on_hand",
								  3, btypes, bv, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not write the stock rows");
	}

	if (SPI_execute_with_args("SELECT s FROM order_ext.stock s WHERE sku = $1",
							  1, types, values, NULL, false, 0) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not read the stock of sku \"%s\"", sku);
	row = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	row = SPI_datumTransfer(row, false, -1);
	SPI_finish();
	PG_RETURN_DATUM(row);
}

/*
 * available(sku) -> bigint
 */
Datum
stock_available(PG_FUNCTION_ARGS)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	bool		isnull = true;
	Datum		d = (Datum) 0;

	values[0] = PG_GETARG_DATUM(0);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT sum(on_hand - reserved)::bigint FROM order_ext.stock_buckets WHERE sku = $1",
							  1, types, values, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the stock");
	if (SPI_processed == 1)
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	SPI_finish();
	if (isnull)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(d);
}

/*
 * set_purchase_limit(sku, per_buyer)
 *		Setting a limit (re)counts what every buyer holds of the SKU now,
 *		in live and archived orders.
 */
Datum
set_purchase_limit(PG_FUNCTION_ARGS)
{
	char	   *sku = SkuArg(fcinfo, 0);
	Oid			types[2] = {TEXTOID, INT4OID};
	Datum		values[2];
	char		nulls[2] = {' ', ' '};

	if (!PG_ARGISNULL(1) && PG_GETARG_INT32(1) <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("per_buyer must be positive (NULL removes the limit)")));
	values[0] = CStringGetTextDatum(sku);
	values[1] = PG_ARGISNULL(1) ? (Datum) 0 : PG_GETARG_DATUM(1);
	nulls[1] = PG_ARGISNULL(1) ? 'n' : ' ';
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("DELETE FROM order_ext.buyer_holdings WHERE sku = $1",
							  1, types, values, nulls, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not clear the holdings");
	if (PG_ARGISNULL(1))
	{
		if (SPI_execute_with_args("DELETE FROM order_ext.purchase_limits WHERE sku = $1",
								  1, types, values, nulls, false, 0) != SPI_OK_DELETE)
			elog(ERROR, "could not remove the purchase limit");
	}
	else if (SPI_execute_with_args("INSERT INTO order_ext.purchase_limits AS l (sku, per_buyer) VALUES ($1, $2)"
								   " ON CONFLICT (sku) DO UPDATE SET per_buyer = excluded.per_buyer"
								   " WHERE l.per_buyer <> excluded.per_buyer",
								   2, types, values, nulls, false, 0) != SPI_OK_INSERT ||
			 SPI_execute_with_args("INSERT INTO order_ext.buyer_holdings (buyer_id, sku, qty)"
								   " WITH i AS ("
								   "   SELECT order_id, qty, refunded_qty FROM order_ext.order_items WHERE sku = $1"
								   "   UNION ALL"
								   "   SELECT order_id, qty, refunded_qty FROM order_ext.order_items_history WHERE sku = $1),"
								   /* as at run time (fire.c, UnitsCounted): the last stock
									* effect of each order's timeline, if any, is not stock:release */
								   " last AS ("
								   "   SELECT DISTINCT ON (e.order_id) e.order_id, 'stock:release' = ANY (t.effects) AS released"
								   "   FROM (SELECT order_id, version, from_status, event FROM order_ext.order_events"
								   "         WHERE order_id IN (SELECT order_id FROM i)"
								   "         UNION ALL"
								   "         SELECT order_id, version, from_status, event FROM order_ext.order_events_history"
								   "         WHERE order_id IN (SELECT order_id FROM i)) e"
								   "   JOIN order_ext.all_orders o ON o.order_id = e.order_id"
								   "   JOIN order_ext.transitions t"
								   "     ON t.machine = o.machine AND t.from_status = e.from_status AND t.event = e.event"
								   "   WHERE t.effects && ARRAY['stock:release', 'stock:reserve']"
								   "   ORDER BY e.order_id, e.version DESC)"
								   " SELECT o.buyer_id, $1, sum(i.qty - i.refunded_qty)"
								   " FROM i JOIN order_ext.all_orders o ON o.order_id = i.order_id"
								   " LEFT JOIN last l ON l.order_id = i.order_id"
								   " WHERE o.status <> 'split' AND NOT coalesce(l.released, false)"
								   " GROUP BY o.buyer_id HAVING sum(i.qty - i.refunded_qty) > 0",
								   1, types, values, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not set the purchase limit");
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * check_stock() -> (sku, reserved, held)
 */
Datum
check_stock(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	uint64		r;

	InitMaterializedSRF(fcinfo, 0);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute("SELECT coalesce(b.sku, r.sku)::text, coalesce(b.reserved, 0)::bigint, coalesce(r.held, 0)::bigint"
					" FROM (SELECT sku, sum(reserved) AS reserved FROM order_ext.stock_buckets GROUP BY sku) b"
					" FULL JOIN (SELECT sku, sum(qty) AS held FROM order_ext.reservations GROUP BY sku) r"
					" ON r.sku = b.sku"
					" WHERE coalesce(b.reserved, 0) <> coalesce(r.held, 0) ORDER BY 1",
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not check the stock");
	for (r = 0; r < SPI_processed; r++)
	{
		Datum		values[3];
		bool		nulls[3];
		int			c;

		for (c = 0; c < 3; c++)
			values[c] = SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, c + 1, &nulls[c]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	SPI_finish();
	return (Datum) 0;
}
