/*
 * order_ext.c
 *		Module entry point: _PG_init defines the GUCs and calls each module's
 *		Init function; also the small helpers every module shares.
 *
 * Owns: the order_ext.* GUCs, the per-backend cache of prepared SPI plans,
 * and running a piece of work in a subtransaction.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/pg_class.h"
#include "commands/extension.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "catalog/namespace.h"
#include "utils/resowner.h"

#include "events.h"
#include "order_ext.h"
#include "worker.h"

PG_MODULE_MAGIC;

int			oe_node_id = 0;
bool		oe_notify = true;
int			oe_ddl_lock_timeout_ms = 1000;
int			oe_request_ttl_s = 86400;

void		_PG_init(void);

static ProcessUtility_hook_type prev_process_utility = NULL;

static void NoticeNotDumped(Node *stmt);

/*
 * OrderProcessUtility
 *		The one utility hook of the library: what must happen before some
 *		statements run.  Installed also without shared_preload_libraries
 *		(a restoring session loads the library with CREATE EXTENSION).
 */
static void
OrderProcessUtility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
					ProcessUtilityContext context, ParamListInfo params,
					QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *stmt = pstmt->utilityStmt;

	if (IsA(stmt, CopyStmt))
		OrderPartitionsBeforeCopy((CopyStmt *) stmt);	/* a restore's missing month */
	else if (IsA(stmt, ListenStmt))
		EventsBeforeListen((ListenStmt *) stmt);	/* the listener count */
	else if (IsA(stmt, DropdbStmt))
		WorkerBeforeDropdb((DropdbStmt *) stmt, context == PROCESS_UTILITY_TOPLEVEL);	/* our processes must not block it */
	else if (IsA(stmt, DropStmt))
		WorkerBeforeDropExtension((DropStmt *) stmt);	/* nor deadlock with DROP EXTENSION */
	else if (IsA(stmt, RenameStmt) || IsA(stmt, CreatedbStmt))
		WorkerBeforeDatabaseCopyOrRename(stmt, context == PROCESS_UTILITY_TOPLEVEL);	/* nor block a rename or a copy */
	if (prev_process_utility)
		prev_process_utility(pstmt, queryString, readOnlyTree, context, params, queryEnv,
							 dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params, queryEnv,
								dest, qc);
	if (IsA(stmt, CopyStmt))
		OrderIdsAfterCopy((CopyStmt *) stmt);	/* a restore's ids ahead of the clock */
	else if (context == PROCESS_UTILITY_TOPLEVEL && (IsA(stmt, AlterTableStmt) || IsA(stmt, IndexStmt)))
		NoticeNotDumped(stmt);
}

/*
 * NoticeNotDumped
 *		After ALTER TABLE ... ADD COLUMN or CREATE INDEX on one of
 *		order_ext's own tables (members of the extension): pg_dump writes
 *		their rows but not such changes, so a restore must make them again
 *		before the data comes (README "Dump and restore").  Said once, as a
 *		NOTICE, where it is done.
 */
static void
NoticeNotDumped(Node *stmt)
{
	RangeVar   *rv;
	Oid			relid;
	Oid			extoid;
	bool		adds_column = false;

	if (creating_extension)
		return;
	if (IsA(stmt, IndexStmt))
		rv = ((IndexStmt *) stmt)->relation;
	else
	{
		ListCell   *lc;

		rv = ((AlterTableStmt *) stmt)->relation;
		foreach(lc, ((AlterTableStmt *) stmt)->cmds)
			if (((AlterTableCmd *) lfirst(lc))->subtype == AT_AddColumn)
				adds_column = true;
		if (!adds_column)
			return;
	}
	if (rv == NULL || !IsTransactionState())
		return;
	extoid = get_extension_oid("order_ext", true);
	relid = RangeVarGetRelid(rv, NoLock, true);
	if (!OidIsValid(extoid) || !OidIsValid(relid) ||
		getExtensionOfObject(RelationRelationId, relid) != extoid)
		return;
	ereport(NOTICE,
			(errmsg("pg_dump does not write %s added to order_ext.%s",
					adds_column ? "columns" : "indexes", get_rel_name(relid)),
			 errdetail("The table is the extension's: a dump has its rows, and CREATE EXTENSION makes it as shipped."),
			 errhint("To restore such a dump, run pg_restore --section=pre-data, then this statement again"
					 " (a column also on the table's _history twin, where archive() adds it),"
					 " then pg_restore --section=data --section=post-data.")));
}

/*
 * _PG_init
 *		Define the GUCs, then let each module set itself up.
 */
void
_PG_init(void)
{
	DefineCustomIntVariable("order_ext.node_id",
							"Node id (0-1023) embedded in every order id this server issues.",
							"Give each server that issues order ids its own node id.",
							&oe_node_id,
							0, 0, OE_ID_MAX_NODE,
	/* PGC_POSTMASTER may only be defined while preloading; without
	 * preloading no id is issued here, so the node id is moot */
							process_shared_preload_libraries_in_progress ? PGC_POSTMASTER : PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("order_ext.notify",
							 "Send NOTIFY on channel order_ext when order events are written.",
							 "Turn off where NOTIFY cannot be used, e.g. in two-phase commit.",
							 &oe_notify,
							 true,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("order_ext.ddl_lock_timeout",
							"How long partition maintenance waits for a table lock before it retries later.",
							NULL,
							&oe_ddl_lock_timeout_ms,
							1000, 1, INT_MAX,
							PGC_USERSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("order_ext.request_ttl",
							"How long claim_request keys are kept before they expire and are pruned.",
							"A key claimed longer ago than this is free again.",
							&oe_request_ttl_s,
							86400, 1, INT_MAX,
							PGC_SUSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);
	/* defines the worker's GUCs: before the prefix is reserved */
	WorkerInit();

	MarkGUCPrefixReserved("order_ext");

	OrderIdsInit();
	EventsInit();
	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = OrderProcessUtility;
}

/*
 * OrderRefuseReplica
 *		Refuse session_replication_role = replica (a superuser's setting,
 *		and the apply worker's of logical replication, which runs none of
 *		order_ext's functions): the order tables' triggers do not fire then,
 *		so versions would not move, events would not be written and status
 *		changes would go unchecked.  Every statement order_ext runs on its
 *		tables is planned by OrderPlan, TwinPlan or the insert plans of a
 *		month (orders.c), which all call this, also when the plan is cached.
 */
void
OrderRefuseReplica(void)
{
	if (unlikely(SessionReplicationRole == SESSION_REPLICATION_ROLE_REPLICA))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("order_ext cannot run with session_replication_role = replica"),
				 errdetail("Its triggers do not fire then: versions would not move and events would not be recorded."),
				 errhint("SET session_replication_role = origin.")));
}

/*
 * OrderPlan
 *		Return the plan cached in *cache, preparing and keeping it on first use.
 *		The plan cache revalidates kept plans when the tables change.
 */
SPIPlanPtr
OrderPlan(SPIPlanPtr *cache, const char *sql, int nargs, Oid *argtypes)
{
	SPIPlanPtr	plan;

	OrderRefuseReplica();
	if (*cache != NULL)
		return *cache;
	plan = SPI_prepare(sql, nargs, argtypes);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed for \"%s\": %s",
			 sql, SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "SPI_keepplan failed");
	*cache = plan;
	return plan;
}

/*
 * TwinPlan
 *		OrderPlan for a statement on a live order (archived false) or on one
 *		in the history tables (archived true), cached in cache[archived].  In
 *		sql, {h} stands for the tables' suffix ("" or "_history") and {row}
 *		for the order row of alias o as an order_ext.orders value (o itself,
 *		or o converted from order_ext.orders_history's row type).
 */
SPIPlanPtr
TwinPlan(SPIPlanPtr cache[2], bool archived, const char *sql, int nargs, Oid *argtypes)
{
	StringInfoData buf;
	const char *p;

	OrderRefuseReplica();		/* as OrderPlan, also for a cached plan */
	if (cache[archived] != NULL)
		return cache[archived];
	initStringInfo(&buf);
	for (p = sql; *p; p++)
	{
		if (strncmp(p, "{h}", 3) == 0)
		{
			appendStringInfoString(&buf, archived ? "_history" : "");
			p += 2;
		}
		else if (strncmp(p, "{row}", 5) == 0)
		{
			appendStringInfoString(&buf, archived ?
								   "jsonb_populate_record(NULL::order_ext.orders, to_jsonb(o))" : "o");
			p += 4;
		}
		else
			appendStringInfoChar(&buf, *p);
	}
	OrderPlan(&cache[archived], buf.data, nargs, argtypes);
	pfree(buf.data);
	return cache[archived];
}

/*
 * IntervalCmpMonths
 *		An interval against 'months' months (0: against zero), as
 *		interval_cmp compares them (a month as 30 days): <0, 0 or >0.
 */
int
IntervalCmpMonths(const Interval *iv, int32 months)
{
	Interval	other = {0, 0, months};	/* time, day, month */

	return DatumGetInt32(DirectFunctionCall2(interval_cmp, IntervalPGetDatum(iv),
											 IntervalPGetDatum(&other)));
}

/*
 * NameTextArg
 *		A name argument (event, actor, machine, kind, policy...) as a C
 *		string; one longer than any name can be (63 bytes) is cut to 60
 *		bytes followed by "...", which matches no name (names are
 *		[a-z0-9_]), so that a megabyte of text is refused with the error
 *		any unknown name gets, without a megabyte in the message and the
 *		log.
 */
char *
NameTextArg(FunctionCallInfo fcinfo, int argno)
{
	char	   *s = text_to_cstring(PG_GETARG_TEXT_PP(argno));
	int			len = strlen(s);

	if (len <= NAMEDATALEN - 1)
		return s;
	s[pg_mbcliplen(s, len, 60)] = '\0';
	return psprintf("%s...", s);
}

/*
 * OrderSubxact
 *		Run fn(arg) in a subtransaction.  NULL if it succeeded; otherwise
 *		the subtransaction is rolled back and its error returned (copied
 *		into the caller's memory context) for the caller to judge.  Query
 *		cancel and shutdown are rethrown: they must still stop us.
 */
ErrorData *
OrderSubxact(OrderSubxactFn fn, void *arg)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	ErrorData  *volatile result = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcontext);
	PG_TRY();
	{
		fn(arg);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
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
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED ||
			edata->sqlerrcode == ERRCODE_ADMIN_SHUTDOWN)
			ReThrowError(edata);
		result = edata;
	}
	PG_END_TRY();
	return result;
}

/*
 * Cached oids of order_ext's tables: one relcache callback forgets every
 * cached oid whose table is invalidated (or all, on a full reset).
 */
#define MAX_RELID_CACHES 16
static Oid *relid_caches[MAX_RELID_CACHES];
static int	nrelid_caches = 0;

static void
RelidCachesReset(Datum arg, Oid relid)
{
	int			i;

	(void) arg;
	for (i = 0; i < nrelid_caches; i++)
		if (!OidIsValid(relid) || *relid_caches[i] == relid)
			*relid_caches[i] = InvalidOid;
}

/*
 * OrderRelid
 *		The oid of table order_ext.<name>, kept in *cache (a static of the
 *		caller) until the table's relcache entry is invalidated, so a hot
 *		path looks it up in the catalog once.  InvalidOid if it does not
 *		exist.
 */
Oid
OrderRelid(Oid *cache, const char *name)
{
	int			i;

	for (i = 0; i < nrelid_caches && relid_caches[i] != cache; i++)
		;
	if (i == nrelid_caches)
	{
		if (nrelid_caches == 0)
			CacheRegisterRelcacheCallback(RelidCachesReset, (Datum) 0);
		if (nrelid_caches == MAX_RELID_CACHES)
			elog(ERROR, "too many cached order_ext relation oids");
		relid_caches[nrelid_caches++] = cache;
		*cache = InvalidOid;
	}
	if (!OidIsValid(*cache))
	{
		Oid			nsp = get_namespace_oid("order_ext", true);

		*cache = OidIsValid(nsp) ? get_relname_relid(name, nsp) : InvalidOid;
	}
	return *cache;
}
