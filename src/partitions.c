/*
 * partitions.c
 *		Monthly partitions of the order tables: create_partitions(), maintain(),
 *		and the check that an order id has a partition to go to.
 *
 * Owns: the list of per-order tables that are partitioned by order_id, the
 * partition naming (<table>_pYYYY_MM, months in UTC) and bounds
 * ([min_order_id(month start), min_order_id(next month start))).
 *
 * Partitions are made here and only here, never on the order-writing path
 * (CREATE TABLE ... PARTITION OF locks the parent).  DDL waits at most
 * order_ext.ddl_lock_timeout for its lock and retries a few times instead of
 * queueing behind live traffic.  Partitions are user data, not extension
 * members, so pg_dump keeps their rows.
 */
#include "postgres.h"

#include "access/table.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "partitioning/partbounds.h"
#include "partitioning/partdesc.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/partcache.h"
#include "utils/rel.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "order_ext.h"

/*
 * Every per-order table partitioned by order_id on the same monthly bounds
 * (orders first).  archive.c moves a month of all of them together, into
 * their history twins <table>_history.
 */
const char *const OrderTables[] = {
	"orders", "order_items", "order_payments", "order_discounts", "order_events",
};
const int	OrderTablesCount = lengthof(OrderTables);

#define DDL_ATTEMPTS 5

PG_FUNCTION_INFO_V1(create_partitions);
PG_FUNCTION_INFO_V1(maintain);

void
OrderPartitionsInit(void)
{
}

/*
 * MonthStart
 *		The first instant (UTC) of the month containing t, plus 'add' months.
 */
static TimestampTz
MonthStart(TimestampTz t, int add)
{
	struct pg_tm tm;
	fsec_t		fsec;
	TimestampTz result;
	int			months;

	if (timestamp2tm(t, NULL, &tm, &fsec, NULL, NULL) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	months = tm.tm_year * 12 + (tm.tm_mon - 1) + add;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = months / 12;
	tm.tm_mon = months % 12 + 1;
	tm.tm_mday = 1;
	if (tm2timestamp(&tm, 0, NULL, &result) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	return result;
}

/*
 * RunDDLWithRetry
 *		Execute one DDL statement in a subtransaction, retrying a few times if
 *		its lock is not available within lock_timeout (which the caller sets).
 */
void
RunDDLWithRetry(const char *sql)
{
	volatile int attempt;

	for (attempt = 1;; attempt++)
	{
		MemoryContext oldcontext = CurrentMemoryContext;
		ResourceOwner oldowner = CurrentResourceOwner;
		volatile bool ok = false;

		BeginInternalSubTransaction(NULL);
		MemoryContextSwitchTo(oldcontext);
		PG_TRY();
		{
			int			ret = SPI_execute(sql, false, 0);

			if (ret != SPI_OK_UTILITY)
				elog(ERROR, "partition DDL failed: %s", SPI_result_code_string(ret));
			ReleaseCurrentSubTransaction();
			MemoryContextSwitchTo(oldcontext);
			CurrentResourceOwner = oldowner;
			ok = true;
		}
		PG_CATCH();
		{
			ErrorData  *edata;

			MemoryContextSwitchTo(oldcontext);
			edata = CopyErrorData();
			FlushErrorState();
			RollbackAndReleaseCurrentSubTransaction();
			MemoryContextSwitchTo(oldcontext);
			CurrentResourceOwner = oldowner;
			if (edata->sqlerrcode != ERRCODE_LOCK_NOT_AVAILABLE || attempt >= DDL_ATTEMPTS)
				ReThrowError(edata);
			ereport(LOG,
					(errmsg("order_ext: lock not available for \"%s\", retrying (attempt %d of %d)",
							sql, attempt, DDL_ATTEMPTS)));
			FreeErrorData(edata);
		}
		PG_END_TRY();
		if (ok)
			return;
		CHECK_FOR_INTERRUPTS();
		pg_usleep(100000L * attempt);
	}
}

/*
 * CreateMonth
 *		Create the partitions of every order table for the month starting at
 *		'month'.  Returns true if the orders partition was new.
 */
static bool
CreateMonth(Oid nspid, TimestampTz month)
{
	struct pg_tm tm;
	fsec_t		fsec;
	int64		lo = OrderIdMinForTime(month);
	int64		hi = OrderIdMinForTime(MonthStart(month, 1));
	bool		created_orders = false;
	int			i;

	if (timestamp2tm(month, NULL, &tm, &fsec, NULL, NULL) != 0)
		elog(ERROR, "timestamp out of range");

	for (i = 0; i < (int) lengthof(OrderTables); i++)
	{
		char		name[NAMEDATALEN];
		StringInfoData sql;
		Oid			relid;

		snprintf(name, sizeof(name), "%s_p%04d_%02d", OrderTables[i], tm.tm_year, tm.tm_mon);
		if (OidIsValid(get_relname_relid(name, nspid)))
			continue;

		/*
		 * The CHECK constraint repeats the bounds: archive.c detaches a
		 * month and attaches it to the history tables, and ATTACH PARTITION
		 * skips scanning the rows when a valid constraint proves the bounds.
		 */
		initStringInfo(&sql);
		appendStringInfo(&sql,
						 "CREATE TABLE order_ext.%s PARTITION OF order_ext.%s"
						 " (CONSTRAINT %s CHECK (order_id >= " INT64_FORMAT " AND order_id < " INT64_FORMAT "))"
						 " FOR VALUES FROM (" INT64_FORMAT ") TO (" INT64_FORMAT ")",
						 quote_identifier(name), quote_identifier(OrderTables[i]),
						 quote_identifier(psprintf("%s_bounds", name)), lo, hi, lo, hi);
		RunDDLWithRetry(sql.data);
		pfree(sql.data);

		relid = get_relname_relid(name, nspid);
		if (creating_extension && OidIsValid(relid))
			deleteDependencyRecordsForSpecific(RelationRelationId, relid,
											   DEPENDENCY_EXTENSION,
											   ExtensionRelationId,
											   CurrentExtensionObject);
		if (i == 0)
			created_orders = true;
		ereport(DEBUG1, (errmsg("order_ext: created partition order_ext.%s", name)));
	}
	return created_orders;
}

/*
 * CreateMonths
 *		Create the months from the one containing 'from' to the one containing
 *		'to'; returns how many months were new.
 */
static int
CreateMonths(TimestampTz from, TimestampTz to)
{
	Oid			nspid = get_namespace_oid("order_ext", false);
	TimestampTz month;
	TimestampTz last;
	int			created = 0;
	int			save_nestlevel;
	char		timeout[32];

	if (TIMESTAMP_NOT_FINITE(from) || TIMESTAMP_NOT_FINITE(to))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("from_time and to_time must be finite")));
	if (from > to)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("from_time must not be later than to_time"),
				 errdetail("from_time is %s, to_time is %s.",
						   pstrdup(timestamptz_to_str(from)), pstrdup(timestamptz_to_str(to)))));
	month = MonthStart(from, 0);
	last = MonthStart(to, 0);
	/* validates both ends against the id range */
	(void) OrderIdMinForTime(month);
	(void) OrderIdMinForTime(MonthStart(last, 1));
	if (MonthStart(month, 240) <= last)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("create_partitions makes at most 240 months in one call")));

	/*
	 * One partition maker at a time (worker, pg_cron, manual): the second
	 * waits, then sees the first one's partitions and skips them.
	 */
	(void) DirectFunctionCall2(pg_advisory_xact_lock_int4,
							   Int32GetDatum(OE_ADVISORY_CLASS), Int32GetDatum(OE_LOCK_PARTITIONS));
	AcceptInvalidationMessages();

	save_nestlevel = NewGUCNestLevel();
	snprintf(timeout, sizeof(timeout), "%d", oe_ddl_lock_timeout_ms);
	(void) set_config_option("lock_timeout", timeout, PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	for (; month <= last; month = MonthStart(month, 1))
		if (CreateMonth(nspid, month))
			created++;
	SPI_finish();

	AtEOXact_GUC(true, save_nestlevel);
	if (created > 0)
		ereport(LOG,
				(errmsg("order_ext: created %d monthly partition set(s) between %s and %s",
						created, pstrdup(timestamptz_to_str(MonthStart(from, 0))),
						pstrdup(timestamptz_to_str(last)))));
	return created;
}

/*
 * create_partitions(from_time, to_time) -> int
 *		Make the monthly partitions of every order table for the months from
 *		from_time's to to_time's (inclusive); returns the number of new months.
 */
Datum
create_partitions(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be NULL", PG_ARGISNULL(0) ? "from_time" : "to_time")));
	PG_RETURN_INT32(CreateMonths(PG_GETARG_TIMESTAMPTZ(0), PG_GETARG_TIMESTAMPTZ(1)));
}

/*
 * maintain() -> int
 *		Keep the current month and the next three premade (by today's date,
 *		not by the partitions that happen to exist).
 */
Datum
maintain(PG_FUNCTION_ARGS)
{
	TimestampTz now = GetCurrentTimestamp();

	PG_RETURN_INT32(CreateMonths(now, MonthStart(now, 3)));
}

/*
 * OrderPartitionCheck
 *		Raise a clear error if no partition of 'rel' takes order_id.  Uses
 *		the relcache's partition descriptor, so it costs a binary search.
 */
void
OrderPartitionCheck(Relation rel, int64 order_id)
{
	PartitionKey key = RelationGetPartitionKey(rel);
	PartitionDesc pd = RelationGetPartitionDesc(rel, true);
	PartitionBoundInfo bi = pd->boundinfo;
	int			part_index = -1;

	if (bi != NULL && key != NULL)
	{
		Datum		value = Int64GetDatum(order_id);
		bool		equal = false;
		int			offset;

		offset = partition_range_datum_bsearch(key->partsupfunc, key->partcollation,
											   bi, 1, &value, &equal);
		part_index = bi->indexes[offset + 1];
	}
	if (part_index < 0)
	{
		TimestampTz t = OrderIdTime(order_id);

		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("no partition of order_ext.orders for order_id " INT64_FORMAT, order_id),
				 errdetail("The id encodes the time %s; partitions exist only for the months that were created.",
						   timestamptz_to_str(t)),
				 errhint("Create that month first: SELECT order_ext.create_partitions('%s', '%s');",
						 pstrdup(timestamptz_to_str(t)), pstrdup(timestamptz_to_str(t)))));
	}
}
