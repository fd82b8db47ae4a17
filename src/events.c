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
#include "utils/memutils.h"

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
					 "WITH " OE_EVENT_CTES("$1", "$2", "$3", "$4", "$5", "$6", "$7")
					 " SELECT 1",
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
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not append order event: %s", SPI_result_code_string(ret));
	OrderNotify(order_id);
}

/*
 * OrderNotify
 *		Queue NOTIFY order_ext, '<order_id>' (sent at commit), unless
 *		order_ext.notify is off.  Top-level functions call this, never
 *		triggers.
 */
void
OrderNotify(int64 order_id)
{
	char		buf[32];

	if (!oe_notify)
		return;
	snprintf(buf, sizeof(buf), INT64_FORMAT, order_id);
	Async_Notify("order_ext", buf);
}

/*
 * EmptyJsonb
 *		'{}'::jsonb, built once per backend.
 */
Datum
EmptyJsonb(void)
{
	static Jsonb *empty = NULL;

	if (empty == NULL)
	{
		Jsonb	   *j = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")));

		empty = MemoryContextAlloc(TopMemoryContext, VARSIZE(j));
		memcpy(empty, j, VARSIZE(j));
	}
	return JsonbPGetDatum(empty);
}
