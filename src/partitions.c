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
 * queueing behind live traffic.
 *
 * Dump and restore: a partition is an extension member registered with
 * pg_extension_config_dump, so pg_dump writes its rows (COPY) but not its
 * DDL.  (Dumped as ordinary tables, partitions do not restore: CREATE
 * EXTENSION in the new database has made the parents, their indexes and
 * the coming months already, so the dumped CREATE TABLE, ADD CONSTRAINT
 * and CREATE INDEX of each partition collide.)  The new database's CREATE
 * EXTENSION makes the current months again; any other month is made just
 * before its rows arrive, by a ProcessUtility hook that sees the dump's
 * COPY order_ext.<table>_pYYYY_MM FROM stdin for a table that does not
 * exist.  A partition that leaves the set (archiving) is released from the
 * extension first with OrderPartitionRelease().
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
#include "nodes/parsenodes.h"
#include "partitioning/partbounds.h"
#include "partitioning/partdesc.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/partcache.h"
#include "utils/rel.h"
#include "utils/resowner.h"
#include "utils/syscache.h"
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

static int	CreateMonths(TimestampTz from, TimestampTz to, const char *suffix);

/*
 * RelOwner
 *		The owner of a relation.
 */
static Oid
RelOwner(Oid relid)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Oid			owner;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	return owner;
}

/*
 * OrderPartitionAdopt
 *		Make a new partition a member of the extension and register it with
 *		pg_extension_config_dump, so that pg_dump keeps its rows (see the
 *		file header).  Inside our own CREATE EXTENSION the membership is
 *		recorded by CREATE TABLE; otherwise it is recorded here, and
 *		pg_extension_config_dump, which runs only inside CREATE EXTENSION,
 *		is called as if it were.
 */
void
OrderPartitionAdopt(Oid relid)
{
	Oid			extoid = get_extension_oid("order_ext", false);
	bool		save_creating = creating_extension;
	Oid			save_ext = CurrentExtensionObject;

	if (!(creating_extension && CurrentExtensionObject == extoid))
	{
		ObjectAddress rel;
		ObjectAddress ext;

		/* made while another extension's script runs: not that one's */
		if (creating_extension)
			deleteDependencyRecordsForSpecific(RelationRelationId, relid, DEPENDENCY_EXTENSION,
											   ExtensionRelationId, CurrentExtensionObject);
		ObjectAddressSet(rel, RelationRelationId, relid);
		ObjectAddressSet(ext, ExtensionRelationId, extoid);
		recordDependencyOn(&rel, &ext, DEPENDENCY_EXTENSION);
		CommandCounterIncrement();
	}
	PG_TRY();
	{
		creating_extension = true;
		CurrentExtensionObject = extoid;
		(void) DirectFunctionCall2(pg_extension_config_dump, ObjectIdGetDatum(relid),
								   CStringGetTextDatum(""));
	}
	PG_FINALLY();
	{
		creating_extension = save_creating;
		CurrentExtensionObject = save_ext;
	}
	PG_END_TRY();
}

/*
 * OrderPartitionRelease
 *		Release a partition from the extension (membership and its
 *		pg_extension_config_dump registration): call it before detaching a
 *		partition for good or dropping it.  The caller is connected to SPI.
 */
void
OrderPartitionRelease(Oid relid)
{
	char	   *sql = psprintf("ALTER EXTENSION order_ext DROP TABLE %s",
							   quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
														  get_rel_name(relid)));

	if (SPI_execute(sql, false, 0) != SPI_OK_UTILITY)
		elog(ERROR, "could not release partition %u from extension order_ext", relid);
	pfree(sql);
}

/*
 * OrderPartitionsBeforeCopy
 *		Before COPY order_ext.<table>_pYYYY_MM FROM ... (a restore) into a
 *		partition that does not exist, make that month's partitions, as the
 *		owner of the order tables.  Anything else is left to COPY.  Called
 *		by the utility hook (order_ext.c), which is installed also without
 *		shared_preload_libraries: the restoring session loads the library
 *		with CREATE EXTENSION.
 */
void
OrderPartitionsBeforeCopy(CopyStmt *stmt)
{
	RangeVar   *rv = stmt->relation;
	Oid			nspid;
	Oid			parent = InvalidOid;
	Oid			owner;
	Oid			save_userid;
	int			save_sec;
	int			i;
	int			year = 0;
	int			month = 0;
	char		tail;
	struct pg_tm tm;
	TimestampTz start;
	const char *suffix = "";

	if (!stmt->is_from || rv == NULL || rv->schemaname == NULL ||
		strcmp(rv->schemaname, "order_ext") != 0 || !IsTransactionState())
		return;
	nspid = get_namespace_oid("order_ext", true);
	if (!OidIsValid(nspid) || OidIsValid(get_relname_relid(rv->relname, nspid)) ||
		!OidIsValid(get_extension_oid("order_ext", true)))
		return;
	/* <table>_pYYYY_MM or <table>_history_pYYYY_MM (an archived month) */
	for (i = 0; i < (int) lengthof(OrderTables) && !OidIsValid(parent); i++)
	{
		const char *const suffixes[] = {"", "_history"};
		int			k;

		for (k = 0; k < (int) lengthof(suffixes) && !OidIsValid(parent); k++)
		{
			char		name[NAMEDATALEN];
			size_t		len;

			snprintf(name, sizeof(name), "%s%s", OrderTables[i], suffixes[k]);
			len = strlen(name);
			if (strncmp(rv->relname, name, len) == 0 &&
				strlen(rv->relname) == len + 9 &&
				sscanf(rv->relname + len, "_p%4d_%2d%c", &year, &month, &tail) == 2)
			{
				parent = get_relname_relid(name, nspid);
				suffix = suffixes[k];
			}
		}
	}
	if (!OidIsValid(parent) || year < 2020 || year > 2089 || month < 1 || month > 12)
		return;
	owner = RelOwner(parent);
	if (!has_privs_of_role(GetUserId(), owner))
		return;

	memset(&tm, 0, sizeof(tm));
	tm.tm_year = year;
	tm.tm_mon = month;
	tm.tm_mday = 1;
	if (tm2timestamp(&tm, 0, NULL, &start) != 0)
		return;
	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(owner, save_sec | SECURITY_LOCAL_USERID_CHANGE);
	(void) CreateMonths(start, start, suffix);
	SetUserIdAndSecContext(save_userid, save_sec);
	ereport(NOTICE,
			(errmsg("order_ext: created the partitions of %04d-%02d for the rows of %s",
					year, month, rv->relname)));
}

/*
 * OrderIdsAfterCopy
 *		After COPY order_ext.orders... FROM (a restore, into the parent or a
 *		month of live or history orders): move the id generator past this
 *		node's ids among the rows (OrderIdSeen), so that a database restored
 *		moments after its dump never gets an id issued again that was taken
 *		just ahead of the clock there.  Read as the tables' owner (COPY FROM
 *		needs no SELECT right), so nothing in it may come from the caller's
 *		search_path: pg_catalog.max.
 */
void
OrderIdsAfterCopy(CopyStmt *stmt)
{
	RangeVar   *rv = stmt->relation;
	Oid			nspid;
	Oid			relid;
	Oid			save_userid;
	int			save_sec;
	bool		isnull;
	Datum		max;

	if (!stmt->is_from || rv == NULL || rv->schemaname == NULL ||
		strcmp(rv->schemaname, "order_ext") != 0 || !IsTransactionState() ||
		(strcmp(rv->relname, "orders") != 0 && strncmp(rv->relname, "orders_p", 8) != 0 &&
		 strncmp(rv->relname, "orders_history", 14) != 0))
		return;
	nspid = get_namespace_oid("order_ext", true);
	relid = OidIsValid(nspid) ? get_relname_relid(rv->relname, nspid) : InvalidOid;
	if (!OidIsValid(relid) || !OidIsValid(get_extension_oid("order_ext", true)))
		return;
	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(RelOwner(relid), save_sec | SECURITY_LOCAL_USERID_CHANGE);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	/* not read-only: the rows COPY wrote become visible to it */
	if (SPI_execute(psprintf("SELECT pg_catalog.max(order_id) FROM order_ext.%s", quote_identifier(rv->relname)),
					false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read the order ids of order_ext.%s", rv->relname);
	max = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (!isnull)
		OrderIdSeen(DatumGetInt64(max));
	SPI_finish();
	SetUserIdAndSecContext(save_userid, save_sec);
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
CreateMonth(Oid nspid, TimestampTz month, const char *suffix)
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

		char		parent[NAMEDATALEN];

		snprintf(parent, sizeof(parent), "%s%s", OrderTables[i], suffix);
		snprintf(name, sizeof(name), "%s_p%04d_%02d", parent, tm.tm_year, tm.tm_mon);
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
						 quote_identifier(name), quote_identifier(parent),
						 quote_identifier(psprintf("%s_bounds", name)), lo, hi, lo, hi);
		RunDDLWithRetry(sql.data);
		pfree(sql.data);

		relid = get_relname_relid(name, nspid);
		if (!OidIsValid(relid))
			elog(ERROR, "partition order_ext.%s was not created", name);
		OrderPartitionAdopt(relid);
		if (i == 0)
			created_orders = true;
		ereport(DEBUG1, (errmsg("order_ext: created partition order_ext.%s", name)));
	}
	return created_orders;
}

/*
 * IdRangeArg
 *		22023 naming the argument if time t is outside the times order ids
 *		encode (before month arithmetic, which past timestamptz's end fails
 *		with a message that names nothing).
 */
static void
IdRangeArg(const char *name, TimestampTz t)
{
	if (t < OE_ID_EPOCH || t > OE_ID_EPOCH + OE_ID_MAX_MS * 1000)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s %s is outside the id range", name, pstrdup(timestamptz_to_str(t))),
				 errdetail("Order ids encode times from 2020-01-01 00:00:00 UTC to 2089-09-06 UTC.")));
}

/*
 * CreateMonths
 *		Create the months from the one containing 'from' to the one containing
 *		'to'; returns how many months were new.
 */
static int
CreateMonths(TimestampTz from, TimestampTz to, const char *suffix)
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
	IdRangeArg("from_time", from);
	IdRangeArg("to_time", to);
	month = MonthStart(from, 0);
	last = MonthStart(to, 0);
	if (MonthStart(last, 1) > OE_ID_EPOCH + OE_ID_MAX_MS * 1000)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("to_time %s is in a month that ends past the id range",
						pstrdup(timestamptz_to_str(to))),
				 errdetail("Order ids encode times to 2089-09-06 UTC, and a partition covers a whole month.")));
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
		if (CreateMonth(nspid, month, suffix))
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
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be NULL", PG_ARGISNULL(0) ? "from_time" : "to_time")));
	PG_RETURN_INT32(CreateMonths(PG_GETARG_TIMESTAMPTZ(0), PG_GETARG_TIMESTAMPTZ(1), ""));
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

	PG_RETURN_INT32(CreateMonths(now, MonthStart(now, 3), ""));
}

/*
 * OrderPartitionCheck
 *		Raise a clear error if no partition of 'rel' takes order_id, else
 *		return that partition.  Uses the relcache's partition descriptor,
 *		so it costs a binary search.
 */
Oid
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
	return pd->oids[part_index];
}
