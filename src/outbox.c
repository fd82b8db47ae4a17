/*
 * outbox.c
 *		Reading the outbox: order_ext.read_events(), ack_events(), the
 *		consumer registry, and prune_outbox().
 *
 * Owns: order_ext.consumers and order_ext.outbox_acks.  Each outbox row
 * carries txid, the id of the top-level transaction that wrote it.  A
 * consumer's horizon H means "every event of a transaction with id < H is
 * acknowledged"; events at or above H are acknowledged one by one
 * (outbox_acks).  read_events returns the consumer's unacknowledged events
 * at or above H in id order, so unacknowledged ones come back on the next
 * read.  ack_events records acks and then moves H up to the smaller of
 * (a) the xmin of the current snapshot, below which every transaction has
 * ended, and (b) the txid of the oldest visible event still unacknowledged;
 * acks below the new H are dropped.  A transaction that commits late has a
 * txid at or above every snapshot's xmin taken while it ran, so H never
 * passes it before its events were read and acknowledged: no event is
 * skipped, whatever order transactions commit in.  (Readers that remember
 * "the last id I saw" skip them; see LESSONS.md.)  prune_outbox deletes
 * the events below every registered consumer's horizon.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/tuplestore.h"

#include "money.h"
#include "order_ext.h"

static SPIPlanPtr horizon_plan = NULL;
static SPIPlanPtr register_plan = NULL;
static SPIPlanPtr read_plan = NULL;
static SPIPlanPtr ack_plan = NULL;
static SPIPlanPtr advance_plan = NULL;

PG_FUNCTION_INFO_V1(register_consumer);
PG_FUNCTION_INFO_V1(unregister_consumer);
PG_FUNCTION_INFO_V1(read_events);
PG_FUNCTION_INFO_V1(ack_events);
PG_FUNCTION_INFO_V1(prune_outbox);

/*
 * ConsumerRegister
 *		Register a consumer if new: from the oldest event kept, or from now
 *		(events of transactions that ended before).  True if it was new.
 */
static bool
ConsumerRegister(const char *consumer, bool from_now)
{
	Oid			argtypes[2] = {TEXTOID, BOOLOID};
	Datum		values[2];
	bool		isnull;

	values[0] = CStringGetTextDatum(consumer);
	values[1] = BoolGetDatum(from_now);
	/*
	 * Until this transaction ends, prune_outbox() keeps away: it reads the
	 * horizons of the consumers it can see, and this one it cannot see
	 * before the commit, while the events this one is to get are there.
	 */
	(void) DirectFunctionCall2(pg_advisory_xact_lock_shared_int4,
							   Int32GetDatum(OE_ADVISORY_CLASS), Int32GetDatum(OE_LOCK_CONSUMERS));
	/*
	 * From now: the horizon is the xmin of this snapshot, the oldest
	 * transaction still running anywhere in the cluster, so events that
	 * transactions which ended since wrote lie above it; they are
	 * acknowledged here, in the same snapshot (every event it sees above
	 * the horizon is of a transaction that ended before).  Those of
	 * transactions still running are not visible to it and come.
	 */
	if (SPI_execute_plan(OrderPlan(&register_plan,
								   "WITH c AS ("
								   "  INSERT INTO order_ext.consumers (consumer, horizon)"
								   "  VALUES ($1, CASE WHEN $2 THEN pg_snapshot_xmin(pg_current_snapshot())"
								   "               ELSE '0'::xid8 END)"
								   "  ON CONFLICT (consumer) DO NOTHING RETURNING consumer, horizon),"
								   " a AS ("
								   "  INSERT INTO order_ext.outbox_acks (consumer, order_id, id, txid)"
								   "  SELECT c.consumer, o.order_id, o.id, o.txid"
								   "  FROM c JOIN order_ext.outbox o ON $2 AND o.txid >= c.horizon)"
								   " SELECT count(*) FROM c",
								   2, argtypes),
						 values, NULL, false, 0) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not register consumer");
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) > 0;
}

/*
 * ConsumerHorizon
 *		The consumer's horizon, locked FOR UPDATE if 'lock' (ack_events).
 *		A new consumer is registered from the start by a read; an ack from
 *		a consumer never registered is refused: a misspelt name would
 *		otherwise register a consumer nobody reads for, which keeps every
 *		event from prune_outbox() for good.
 */
static Datum
ConsumerHorizon(const char *consumer, bool lock)
{
	static SPIPlanPtr horizon_lock_plan = NULL;
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	bool		isnull;
	int			attempt;

	values[0] = CStringGetTextDatum(consumer);
	for (attempt = 0; attempt < 2; attempt++)
	{
		SPIPlanPtr	plan = lock
			? OrderPlan(&horizon_lock_plan,
						"SELECT horizon FROM order_ext.consumers WHERE consumer = $1 FOR UPDATE",
						1, argtypes)
			: OrderPlan(&horizon_plan,
						"SELECT horizon FROM order_ext.consumers WHERE consumer = $1",
						1, argtypes);

		if (SPI_execute_plan(plan, values, NULL, false, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not read consumer");
		if (SPI_processed > 0)
			return SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		if (lock)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("consumer \"%s\" is not registered", consumer),
					 errdetail("It has read no events: read_events() registers a consumer, and so does"
							   " register_consumer()."),
					 errhint("Check the consumer name.")));
		(void) ConsumerRegister(consumer, false);
	}
	elog(ERROR, "consumer \"%s\" vanished while registering", consumer);
	return (Datum) 0;			/* keep compilers quiet */
}

/*
 * register_consumer(consumer, from_now) -> boolean
 */
Datum
register_consumer(PG_FUNCTION_ARGS)
{
	char	   *consumer = ArgIdText(fcinfo, 0, "consumer");
	bool		from_now = PG_ARGISNULL(1) ? false : PG_GETARG_BOOL(1);
	bool		created;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	created = ConsumerRegister(consumer, from_now);
	SPI_finish();
	PG_RETURN_BOOL(created);
}

/*
 * unregister_consumer(consumer) -> boolean
 */
Datum
unregister_consumer(PG_FUNCTION_ARGS)
{
	char	   *consumer = ArgIdText(fcinfo, 0, "consumer");
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	bool		found;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	values[0] = CStringGetTextDatum(consumer);
	if (SPI_execute_with_args("DELETE FROM order_ext.consumers WHERE consumer = $1",
							  1, argtypes, values, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not unregister consumer");
	found = SPI_processed > 0;
	if (SPI_execute_with_args("DELETE FROM order_ext.outbox_acks WHERE consumer = $1",
							  1, argtypes, values, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not unregister consumer");
	SPI_finish();
	PG_RETURN_BOOL(found);
}

/*
 * read_events(consumer, max) -> SETOF order_ext.outbox
 *		The consumer's oldest unacknowledged events, at most max, id order.
 */
Datum
read_events(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *consumer = ArgIdText(fcinfo, 0, "consumer");
	int32		max = PG_ARGISNULL(1) ? 100 : PG_GETARG_INT32(1);
	Oid			argtypes[3] = {TEXTOID, XID8OID, INT4OID};
	Datum		values[3];
	uint64		i;

	if (max <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max must be positive")));
	InitMaterializedSRF(fcinfo, 0);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	values[0] = CStringGetTextDatum(consumer);
	values[1] = ConsumerHorizon(consumer, false);
	values[2] = Int32GetDatum(max);
	if (SPI_execute_plan(OrderPlan(&read_plan,
								   "SELECT o.* FROM order_ext.outbox o"
								   " WHERE o.txid >= $2"
								   " AND NOT EXISTS (SELECT 1 FROM order_ext.outbox_acks a"
								   "  WHERE a.consumer = $1 AND a.order_id = o.order_id AND a.id = o.id)"
								   " ORDER BY o.id LIMIT $3",
								   3, argtypes),
						 values, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the outbox");
	for (i = 0; i < SPI_processed; i++)
		tuplestore_puttuple(rsinfo->setResult, SPI_tuptable->vals[i]);
	SPI_finish();
	return (Datum) 0;
}

/*
 * ack_events(consumer, ids) -> integer
 *		Acknowledge events; returns how many were newly acknowledged.
 */
Datum
ack_events(PG_FUNCTION_ARGS)
{
	char	   *consumer = ArgIdText(fcinfo, 0, "consumer");
	Oid			argtypes[3] = {TEXTOID, XID8OID, INT8ARRAYOID};
	Datum		values[3];
	bool		isnull;
	int			acked;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("ids must not be NULL")));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	values[0] = CStringGetTextDatum(consumer);
	/* one ack at a time per consumer: the horizon only moves forward */
	values[1] = ConsumerHorizon(consumer, true);
	values[2] = PG_GETARG_DATUM(1);
	if (SPI_execute_plan(OrderPlan(&ack_plan,
								   "INSERT INTO order_ext.outbox_acks (consumer, order_id, id, txid)"
								   " SELECT $1, o.order_id, o.id, o.txid FROM order_ext.outbox o"
								   " WHERE o.id = ANY ($3) AND o.txid >= $2"
								   " ON CONFLICT DO NOTHING",
								   3, argtypes),
						 values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not record acks");
	acked = (int) SPI_processed;

	/*
	 * Move the horizon up to the oldest event still unacknowledged: walked
	 * up from the horizon in txid order (outbox_txid_idx) to the first one,
	 * not min() over every event above it, which read the whole backlog
	 * on every ack (a consumer catching up took time quadratic in it).
	 */
	if (SPI_execute_plan(OrderPlan(&advance_plan,
								   "WITH s AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS x),"
								   " h AS (SELECT greatest($2, least(s.x,"
								   "   (SELECT o.txid FROM order_ext.outbox o"
								   "     WHERE o.txid >= $2 AND o.txid < s.x"
								   "     AND NOT EXISTS (SELECT 1 FROM order_ext.outbox_acks a"
								   "      WHERE a.consumer = $1 AND a.order_id = o.order_id AND a.id = o.id)"
								   "     ORDER BY o.txid LIMIT 1))) AS h"
								   "  FROM s),"
								   " u AS (UPDATE order_ext.consumers c SET horizon = h.h, last_ack_at = now()"
								   "  FROM h WHERE c.consumer = $1 RETURNING c.horizon),"
								   " d AS (DELETE FROM order_ext.outbox_acks a USING h"
								   "  WHERE a.consumer = $1 AND a.txid < h.h)"
								   " SELECT horizon FROM u",
								   3, argtypes),
						 values, NULL, false, 0) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not move the horizon of consumer \"%s\"", consumer);
	(void) SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	SPI_finish();
	PG_RETURN_INT32(acked);
}

/*
 * prune_outbox(max) -> bigint
 *		Delete up to max events every registered consumer has acknowledged
 *		(below every horizon).  With no consumer registered, nothing.
 */
Datum
prune_outbox(PG_FUNCTION_ARGS)
{
	int64		max = PG_ARGISNULL(0) ? 100000 : PG_GETARG_INT64(0);
	Oid			argtypes[2] = {INT8OID, XID8OID};
	Datum		values[2];
	Datum		horizon;
	bool		isnull;
	int64		deleted;

	if (max <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max must be positive")));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	values[0] = Int64GetDatum(max);
	/*
	 * Not while a consumer is being registered (ConsumerRegister): its
	 * horizon is not visible until it commits, and the events below the
	 * others' horizons may be its own to read.  Skip this time rather
	 * than wait: the next call prunes them.
	 */
	if (!DatumGetBool(DirectFunctionCall2(pg_try_advisory_xact_lock_int4,
										  Int32GetDatum(OE_ADVISORY_CLASS),
										  Int32GetDatum(OE_LOCK_CONSUMERS))))
	{
		SPI_finish();
		ereport(DEBUG1,
				(errmsg("order_ext: prune_outbox skipped: a consumer is being registered")));
		PG_RETURN_INT64(0);
	}

	/*
	 * The lowest horizon first, as a value, so that the planner sees how
	 * few events lie below it (a lagging consumer) and walks the txid
	 * index up to it; then the keys, then the rows by primary key (a join
	 * of the keys back to the outbox read all of it, whatever max was).
	 * The horizons are read in a snapshot taken now, after the lock, so
	 * registrations committed meanwhile are seen.
	 */
	if (SPI_execute("SELECT min(horizon) FROM order_ext.consumers", false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read the consumers' horizons");
	horizon = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull)
	{
		SPI_finish();
		PG_RETURN_INT64(0);		/* no consumer: everything is kept */
	}
	values[1] = horizon;
	if (SPI_execute_with_args("WITH v AS (SELECT x.order_id, x.id FROM order_ext.outbox x"
							  "  WHERE x.txid < $2 LIMIT $1),"
							  " k AS (SELECT array_agg(order_id) AS o, array_agg(id) AS i FROM v)"
							  " DELETE FROM order_ext.outbox o USING k, unnest(k.o, k.i) AS u(order_id, id)"
							  " WHERE o.order_id = u.order_id AND o.id = u.id",
							  2, argtypes, values, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not prune the outbox");
	deleted = (int64) SPI_processed;
	SPI_finish();
	PG_RETURN_INT64(deleted);
}
