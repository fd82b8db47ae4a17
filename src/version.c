/*
 * version.c
 *		The version rule, as a C trigger on order_ext.orders: every UPDATE,
 *		through any path, sets version = old version + 1 and updated_at; the
 *		identity of an order (order_id, machine, created_at) never changes;
 *		and status changes only together with the order_events row that
 *		order_ext.fire() writes for it, so a plain UPDATE cannot move an
 *		order around its state machine.
 *
 * Owns: the per-row guard.  It reads only its own order's rows (the event
 * row of the new version), so it works unchanged on a distributed shard.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/jsonb.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "order_ext.h"

PG_FUNCTION_INFO_V1(orders_guard);

static SPIPlanPtr event_plan = NULL;
static SPIPlanPtr update_event_plan = NULL;

/*
 * ColumnNumber
 *		Attribute number of a column of the trigger's relation.
 */
static int
ColumnNumber(TupleDesc desc, const char *name)
{
	int			attno = SPI_fnumber(desc, name);

	if (attno <= 0)
		elog(ERROR, "order_ext.orders has no column \"%s\"", name);
	return attno;
}

/*
 * ColumnChanged
 *		Whether a column differs between the old and the new row.
 */
static bool
ColumnChanged(TupleDesc desc, HeapTuple oldt, HeapTuple newt, int attno)
{
	Form_pg_attribute att = TupleDescAttr(desc, attno - 1);
	bool		oldnull;
	bool		newnull;
	Datum		o = heap_getattr(oldt, attno, desc, &oldnull);
	Datum		n = heap_getattr(newt, attno, desc, &newnull);

	if (oldnull || newnull)
		return oldnull != newnull;
	return !datumIsEqual(o, n, att->attbyval, att->attlen);
}

/*
 * AsOwner
 *		Switch to the table owner for the guard's own reads and writes;
 *		returns what to restore.  An error restores it by transaction abort.
 */
static void
AsOwner(Relation rel, Oid *save_userid, int *save_sec)
{
	GetUserIdAndSecContext(save_userid, save_sec);
	SetUserIdAndSecContext(rel->rd_rel->relowner,
						   *save_sec | SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
}

/*
 * EventRecorded
 *		Whether order_events holds the transition (old -> new status) as the
 *		order's event of version 'version'.
 */
static bool
EventRecorded(Relation rel, int64 order_id, int32 version, Datum from_status, Datum to_status)
{
	Oid			argtypes[4] = {INT8OID, INT4OID, TEXTOID, TEXTOID};
	Datum		values[4];
	SPIPlanPtr	plan;
	int			ret;
	bool		found;
	Oid			save_userid;
	int			save_sec;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	AsOwner(rel, &save_userid, &save_sec);
	plan = OrderPlan(&event_plan,
					 "SELECT 1 FROM order_ext.order_events"
					 " WHERE order_id = $1 AND version = $2"
					 " AND from_status = $3 AND to_status = $4",
					 4, argtypes);
	values[0] = Int64GetDatum(order_id);
	values[1] = Int32GetDatum(version);
	values[2] = from_status;
	values[3] = to_status;
	ret = SPI_execute_plan(plan, values, NULL, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read order_events: %s", SPI_result_code_string(ret));
	found = (SPI_processed > 0);
	SetUserIdAndSecContext(save_userid, save_sec);
	SPI_finish();
	return found;
}

/*
 * ChangedColumns
 *		{"columns": [...]}: the columns an UPDATE changed, for its event row.
 */
static Datum
ChangedColumns(TupleDesc desc, HeapTuple oldt, HeapTuple newt)
{
	StringInfoData buf;
	int			i;
	bool		first = true;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"columns\": [");
	for (i = 1; i <= desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i - 1);

		if (att->attisdropped || strcmp(NameStr(att->attname), "version") == 0 ||
			strcmp(NameStr(att->attname), "updated_at") == 0)
			continue;
		if (!ColumnChanged(desc, oldt, newt, i))
			continue;
		appendStringInfo(&buf, "%s\"%s\"", first ? "" : ", ", NameStr(att->attname));
		first = false;
	}
	appendStringInfoString(&buf, "]}");
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data));
}

/*
 * UpdateEventAppend
 *		The event row (and outbox row) of a plain UPDATE, unless fire()
 *		already wrote the event of this version.
 */
static void
UpdateEventAppend(Relation rel, int64 order_id, int32 version, Datum status, Datum payload)
{
	Oid			argtypes[5] = {INT8OID, INT4OID, TEXTOID, TEXTOID, JSONBOID};
	Datum		values[5];
	SPIPlanPtr	plan;
	int			ret;
	Oid			save_userid;
	int			save_sec;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	values[3] = CStringGetTextDatum(GetUserNameFromId(GetUserId(), false));
	AsOwner(rel, &save_userid, &save_sec);
	plan = OrderPlan(&update_event_plan,
					 "WITH e AS ("
					 " INSERT INTO order_ext.order_events"
					 "  (order_id, version, event, from_status, to_status, actor, payload, created_at)"
					 " VALUES ($1, $2, 'update', $3, $3, $4, $5, now())"
					 " ON CONFLICT (order_id, version) DO NOTHING"
					 " RETURNING order_id, version, event, payload, created_at)"
					 " INSERT INTO order_ext.outbox (order_id, version, event, payload, created_at)"
					 " SELECT order_id, version, event, payload, created_at FROM e",
					 5, argtypes);
	values[0] = Int64GetDatum(order_id);
	values[1] = Int32GetDatum(version);
	values[2] = status;
	values[4] = payload;
	ret = SPI_execute_plan(plan, values, NULL, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "could not append order event: %s", SPI_result_code_string(ret));
	SetUserIdAndSecContext(save_userid, save_sec);
	SPI_finish();
	/*
	 * No NOTIFY: API.md keeps NOTIFY out of triggers (on Citus a trigger
	 * runs on the shard's node, with none of the caller's session
	 * settings); the outbox row is read on the consumer's next poll.
	 */
}

/*
 * orders_guard
 *		BEFORE UPDATE FOR EACH ROW trigger on order_ext.orders.
 */
Datum
orders_guard(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	HeapTuple	oldt;
	HeapTuple	newt;
	int			att_id;
	int			att_version;
	int			att_status;
	int			att_updated;
	int			cols[2];
	Datum		values[2];
	bool		nulls[2] = {false, false};
	bool		isnull;
	int64		order_id;
	int32		version;
	static const char *const fixed[] = {"order_id", "machine", "created_at", "buyer_id"};
	int			i;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_BEFORE(td->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(td->tg_event) ||
		!TRIGGER_FIRED_BY_UPDATE(td->tg_event))
		elog(ERROR, "orders_guard must be a BEFORE UPDATE FOR EACH ROW trigger");

	desc = RelationGetDescr(td->tg_relation);
	oldt = td->tg_trigtuple;
	newt = td->tg_newtuple;
	att_id = ColumnNumber(desc, "order_id");
	att_version = ColumnNumber(desc, "version");
	att_status = ColumnNumber(desc, "status");
	att_updated = ColumnNumber(desc, "updated_at");

	order_id = DatumGetInt64(heap_getattr(oldt, att_id, desc, &isnull));
	version = DatumGetInt32(heap_getattr(oldt, att_version, desc, &isnull));

	for (i = 0; i < (int) lengthof(fixed); i++)
		if (ColumnChanged(desc, oldt, newt, ColumnNumber(desc, fixed[i])))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s of order " INT64_FORMAT " cannot change", fixed[i], order_id)));

	if (version == PG_INT32_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("version of order " INT64_FORMAT " is at its maximum", order_id)));

	if (ColumnChanged(desc, oldt, newt, att_status))
	{
		Datum		from = heap_getattr(oldt, att_status, desc, &isnull);
		Datum		to = heap_getattr(newt, att_status, desc, &isnull);

		if (isnull || !EventRecorded(td->tg_relation, order_id, version + 1, from, to))
			ereport(ERROR,
					(errcode(ERRCODE_OE_TRANSITION),
					 errmsg("status of order " INT64_FORMAT " cannot be changed by UPDATE", order_id),
					 errdetail("Status changes run the transition's effects and are recorded in the order's timeline."),
					 errhint("Use order_ext.fire(order_id, event) to move an order through its state machine.")));
	}
	else
	{
		/* fire() wrote this version's event already; a plain UPDATE did not */
		Datum		status = heap_getattr(oldt, att_status, desc, &isnull);

		UpdateEventAppend(td->tg_relation, order_id, version + 1, status,
						  ChangedColumns(desc, oldt, newt));
	}

	cols[0] = att_version;
	values[0] = Int32GetDatum(version + 1);
	cols[1] = att_updated;
	values[1] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	newt = heap_modify_tuple_by_cols(newt, desc, 2, cols, values, nulls);
	return PointerGetDatum(newt);
}
