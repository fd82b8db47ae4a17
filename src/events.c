/*
 * events.c
 *		The order timeline and the outbox: every change of an order appends
 *		one row to order_ext.order_events and one to order_ext.outbox in the
 *		caller's transaction, and queues a NOTIFY on channel order_ext.
 *
 * Owns: the one place where event and outbox rows are written.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/async.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "events.h"
#include "order_ext.h"

static SPIPlanPtr append_plan = NULL;

/*
 * OrderEventAppend
 *		Write the event (order_id, version) and its outbox row.  The caller
 *		is connected to SPI.  from_status may be NULL (creation).
 */
void
OrderEventAppend(int64 order_id, int32 version, const char *event,
				 const char *from_status, const char *to_status,
				 const char *actor, Datum payload)
{
	Oid			argtypes[7] = {INT8OID, INT4OID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, JSONBOID};
	Datum		values[7];
	char		nulls[7] = {' ', ' ', ' ', ' ', ' ', ' ', ' '};
	SPIPlanPtr	plan;
	int			ret;

	plan = OrderPlan(&append_plan,
					 "WITH e AS ("
					 " INSERT INTO order_ext.order_events"
					 "  (order_id, version, event, from_status, to_status, actor, payload, created_at)"
					 " VALUES ($1, $2, $3, $4, $5, $6, $7, now())"
					 " RETURNING order_id, version, event, payload, created_at)"
					 " INSERT INTO order_ext.outbox (order_id, version, event, payload, created_at)"
					 " SELECT order_id, version, event, payload, created_at FROM e",
					 7, argtypes);
	values[0] = Int64GetDatum(order_id);
	values[1] = Int32GetDatum(version);
	values[2] = CStringGetTextDatum(event);
	if (from_status)
		values[3] = CStringGetTextDatum(from_status);
	else
		nulls[3] = 'n';
	values[4] = CStringGetTextDatum(to_status);
	values[5] = CStringGetTextDatum(actor);
	values[6] = payload;

	ret = SPI_execute_plan(plan, values, nulls, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "could not append order event: %s", SPI_result_code_string(ret));

	if (oe_notify)
	{
		char		buf[32];

		snprintf(buf, sizeof(buf), INT64_FORMAT, order_id);
		Async_Notify("order_ext", buf);
	}
}
