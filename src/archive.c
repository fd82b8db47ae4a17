/*
 * archive.c
 *		Archiving history orders: order_ext.archive() moves terminal orders
 *		older than a cutoff, with all their rows, from the order tables to
 *		their history twins (<table>_history, partitioned the same way).
 *
 * Owns: which orders are archivable (terminal, and no after-sale of theirs
 * still open: see ARCHIVABLE), the two ways they move, and running archive()
 * in a background process of its own.
 *
 * Two paths, month by month (a month is the partitions of every order table
 * on the same bounds, see partitions.c):
 *   - whole month: when the month lies wholly before the cutoff, history has
 *     nothing of it yet, and every order of it is archivable, its partitions
 *     are detached from the live parents and attached to the history parents,
 *     all tables in one short transaction that waits at most
 *     order_ext.ddl_lock_timeout for each lock and otherwise gives up and
 *     leaves the month for the next run (live traffic never queues behind it
 *     for longer).  The partitions carry a CHECK constraint repeating their
 *     bounds, so ATTACH does not scan them.
 *   - batches (the seed's way): by primary key below the cutoff id (an id
 *     encodes its creation time, so "created before the cutoff" is
 *     "order_id < min_order_id(cutoff)"): each transaction takes the next
 *     batch_size orders in primary-key order (an index range scan, so a
 *     batch costs the same at the start and the end of a month) and moves
 *     the archivable ones among them, pausing order_ext.archive_pause
 *     between batches, keeping to one CPU and stepping aside inside a batch
 *     whenever live work waits for a CPU (order_ext.archive_yield, see
 *     ArchiveOneCpu() and ArchiveYieldPoint()), and resting inside a batch
 *     if asked to (order_ext.archive_rest, ArchiveRest()).  Each batch first deletes
 *     the order rows (which locks them: every writer of an order's rows
 *     locks the order row first) and copies them into history, then moves
 *     the child rows of exactly those orders, read with a snapshot taken
 *     after the order rows were locked.  The mover in archive_move.c does
 *     this below SQL; a month it cannot take (triggers, rules, row-level
 *     security, history columns that differ), or every month with
 *     order_ext.archive_statements on, goes by SQL statements (DELETE ...
 *     RETURNING into INSERT, PrepareMonthPlans).  All in one transaction:
 *     an order is in exactly one of live or history at every commit, also
 *     if the server dies midway.
 * Then the after-sales of archived orders follow them into the (unpartitioned)
 * order_ext.after_sales_history, in batches of their own (AfterSalesSweep).
 *
 * archive() is an SQL function, and a function cannot commit; so it starts a
 * dynamic background worker ("order_ext archive") that runs ArchiveRun(),
 * committing batch by batch, and waits for it.  Cancelling or terminating
 * the caller stops the worker; finished batches stay moved and the next run
 * carries on.  The background worker (worker.c) calls ArchiveRun() directly.
 * One run at a time per database (a session advisory lock); progress shows
 * in pg_stat_activity.query of the archiving process and in the server log.
 */
#include "postgres.h"

#ifdef __linux__
#include <sched.h>
#endif

#include <fcntl.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include "access/attmap.h"
#include "access/genam.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/pg_constraint.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "parser/parse_utilcmd.h"
#include "pgstat.h"
#include "partitioning/partbounds.h"
#include "partitioning/partdesc.h"
#include "portability/instr_time.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "tcop/utility.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/partcache.h"
#include "utils/rel.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "archive.h"
#include "archive_move.h"
#include "machine.h"
#include "order_ext.h"
#include "runnable.h"
#include "worker.h"

#define MAX_TABLES		ARCHIVE_MAX_TABLES
#define MONTH_ATTEMPTS	3

int			oe_archive_pause_ms = 10;
int			oe_archive_rest_us = 250;
int			oe_archive_rest_every_us = 1000;
bool		oe_archive_yield = true;
bool		oe_archive_statements = false;

/*
 * The pace of the archive run this process is in (ArchiveRun sets it), or
 * NULL: the yield points step aside only inside a run.
 */
static const ArchivePace *run_pace = NULL;

/* Microseconds archive_yield() slept in this run (ArchiveRun resets it). */
static int64 archive_yielded_us = 0;

/* Orders this process's current or last run moved and committed (Moved). */
static int64 archive_moved = 0;

/*
 * This run's rests inside batches (order_ext.archive_rest, see ArchiveRest):
 * when the work since the last rest (or pause, or yield) began, and what
 * the rests came to.
 */
static instr_time archive_work_from;
static int64 archive_rested_us = 0;
static int64 archive_rests = 0;

/* The CPU ArchiveOneCpu() keeps this run to, or -1 */
static int	archive_cpu = -1;

/* What archive() hands its worker, and what the worker hands back. */
typedef struct ArchiveShared
{
	Oid			dboid;
	Oid			loginoid;		/* the role the caller logged in as */
	Oid			useroid;		/* the role archive() runs as: its owner */
	TimestampTz cutoff;			/* ArchiveCutoff, in the caller's session */
	int32		batch_size;
	ArchivePace pace;
	int			ddl_lock_timeout_ms;	/* the caller's order_ext.ddl_lock_timeout */
	int64		moved;
	bool		finished;
	int			sqlerrcode;
	char		message[1024];
} ArchiveShared;

/* The nice value of archiving processes (ArchiveNice). */
#define ARCHIVE_NICE 10

/* One month: the partitions of every order table on the same bounds. */
typedef struct ArchiveMonth
{
	int64		lo;
	int64		hi;
	char	   *bound;			/* FOR VALUES FROM (...) TO (...) */
	char	   *live[MAX_TABLES];	/* live partition, NULL if none */
	char	   *hist[MAX_TABLES];	/* history partition on these bounds, NULL if none */
	bool		hist_overlap;	/* history has a partition on other, overlapping bounds */
} ArchiveMonth;

/* One archive run. */
typedef struct ArchiveState
{
	int64		cutoff_id;		/* orders below it are old enough */
	int32		batch_size;
	int32		pause_ms;
	const char *yield_point;	/* " WHERE order_ext.archive_yield()" or "" */
	ArchiveMoveSpec spec;		/* the batch mover's view of the run (archive_move.c);
								 * spec.terminal: text[] of 'machine/status'
								 * that are terminal, for the statements too */
	bool		statements;		/* batches by the SQL statements only */
	char	   *after_sales_columns;	/* InsertColumns of order_ext.after_sales */
	int64		moved;
	TimestampTz last_log;
	SPIPlanPtr	plans[MAX_TABLES];	/* a month's statements (PrepareMonthPlans) */
	SPIPlanPtr	sweep_plan;		/* AfterSalesSweep's statement */
	TimestampTz stop_at;		/* no new batch or month after it; 0: none */
	int			budget_ms;		/* what stop_at was set from */
	bool		time_up;		/* stop_at passed, the run stopped early */
	long		whole_locked_ms;	/* the last whole month: its tables locked */
	long		whole_check_ms;		/* of which checking it was finished */
	MemoryContext cxt;
} ArchiveState;

/* The partitions of one table: name, bound text, lo, hi. */
typedef struct PartInfo
{
	char	   *name;
	char	   *bound;
	int64		lo;
	int64		hi;
} PartInfo;

PG_FUNCTION_INFO_V1(archive);
PG_FUNCTION_INFO_V1(archive_yield);
PGDLLEXPORT void ArchiveWorkerMain(Datum main_arg);

static void ArchiveWorkFromNow(void);
static void Moved(ArchiveState *st, int64 n);
static void ArchiveRest(instr_time now);

/* Whether a run at this pace has yield points to step aside at. */
static inline bool
PaceStepsAside(const ArchivePace *pace)
{
	return pace->yield || pace->rest_us > 0;
}

/*
 * The archivable test on an order row of alias o; K is the terminal list.
 * An order is archivable when its status is terminal and none of its
 * after-sales can still move (refund): those stay with a live order, since
 * fire_after_sale and refund work on live orders.  No after-sale can be
 * opened for a terminal order (aftersale.c), so for a terminal order the
 * second test can only turn true, never false again.  TERMINAL alone is the
 * recheck on a row a concurrent writer changed (EvalPlanQual).
 */
#define TERMINAL(K) "(o.machine || '/' || o.status) = ANY (" K ")"
#define AFTER_SALES_OPEN(K, RANGE) \
	"EXISTS (SELECT 1 FROM order_ext.after_sales a WHERE " RANGE " AND " AFTER_SALE_CAN_MOVE(K) ")"
#define ARCHIVABLE(K) "(" TERMINAL(K) " AND NOT " AFTER_SALES_OPEN(K, "a.order_id = o.order_id") ")"

/*
 * Report
 *		Show where the run is in pg_stat_activity, and in the log every 10 s.
 */
static void
Report(ArchiveState *st, const char *what, bool log)
{
	char		buf[256];
	TimestampTz now = GetCurrentTimestamp();

	snprintf(buf, sizeof(buf), "order_ext archive: %s; " INT64_FORMAT " orders moved so far",
			 what, st->moved);
	pgstat_report_activity(STATE_RUNNING, buf);
	if (log || TimestampDifferenceExceeds(st->last_log, now, 10000))
	{
		ereport(LOG, (errmsg("%s", buf)));
		st->last_log = now;
	}
}

/*
 * SetLockTimeoutMs
 *		lock_timeout = ms (at least 1: 0 would mean none) for the current
 *		transaction.
 */
static void
SetLockTimeoutMs(long ms)
{
	char		timeout[32];

	snprintf(timeout, sizeof(timeout), "%ld", Max(ms, 1));
	(void) set_config_option("lock_timeout", timeout, PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_LOCAL, true, 0, false);
}

/* lock_timeout = order_ext.ddl_lock_timeout for the current transaction. */
static void
SetLockTimeout(void)
{
	SetLockTimeoutMs(oe_ddl_lock_timeout_ms);
}

/*
 * LockWithin
 *		Run one LOCK TABLE statement, waiting at most what is *left_ms of the
 *		transaction's budget for its locks, and take what it waited from it.
 *		A budget spent before the statement is a lock timeout too.
 */
static void
LockWithin(const char *sql, long *left_ms)
{
	TimestampTz start = GetCurrentTimestamp();

	if (*left_ms <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
				 errmsg("the month's locks took order_ext.ddl_lock_timeout (%d ms) in all",
						oe_ddl_lock_timeout_ms)));
	SetLockTimeoutMs(*left_ms);
	if (SPI_execute(sql, false, 0) != SPI_OK_UTILITY)
		elog(ERROR, "could not run %s", sql);
	*left_ms -= TimestampDifferenceMilliseconds(start, GetCurrentTimestamp());
}

/*
 * ListPartitions
 *		The partitions of order_ext.<parent> by lower bound (in st->cxt).
 */
static int
ListPartitions(ArchiveState *st, const char *parent, PartInfo **parts)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	MemoryContext old;
	uint64		i;
	int			n;

	values[0] = CStringGetTextDatum(psprintf("order_ext.%s", quote_identifier(parent)));
	if (SPI_execute_with_args(
							  "SELECT c.relname::text, b.bound, (m.v)[1]::bigint, (m.v)[2]::bigint"
							  " FROM pg_catalog.pg_inherits i"
							  " JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid,"
							  " LATERAL (SELECT pg_catalog.pg_get_expr(c.relpartbound, c.oid) AS bound) b,"
							  " LATERAL (SELECT pg_catalog.regexp_match(b.bound,"
							  "   '^FOR VALUES FROM \\(''?(-?\\d+)''?\\) TO \\(''?(-?\\d+)''?\\)$') AS v) m"
							  " WHERE i.inhparent = pg_catalog.to_regclass($1) AND m.v IS NOT NULL"
							  " ORDER BY 3",
							  1, argtypes, values, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not list the partitions of order_ext.%s", parent);
	n = (int) SPI_processed;
	old = MemoryContextSwitchTo(st->cxt);
	*parts = palloc0(sizeof(PartInfo) * Max(n, 1));
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;

		(*parts)[i].name = SPI_getvalue(tup, desc, 1);
		(*parts)[i].bound = SPI_getvalue(tup, desc, 2);
		(*parts)[i].lo = DatumGetInt64(SPI_getbinval(tup, desc, 3, &isnull));
		(*parts)[i].hi = DatumGetInt64(SPI_getbinval(tup, desc, 4, &isnull));
	}
	MemoryContextSwitchTo(old);
	return n;
}

/*
 * HistoryName
 *		The history partition's name for a live partition of table t:
 *		orders_p2026_01 -> orders_history_p2026_01.
 */
static char *
HistoryName(const char *t, const char *live, int64 lo)
{
	size_t		len = strlen(t);

	if (strncmp(live, t, len) == 0 && live[len] == '_')
		return psprintf("%s_history%s", t, live + len);
	return psprintf("%s_history_" INT64_FORMAT, t, lo);
}

/*
 * TwinAddColumns
 *		Check that order_ext.<table> has its history twin, and add to the twin
 *		the columns the live table gained since.
 */
static void
TwinAddColumns(const char *table)
{
	Oid			argtypes[2] = {TEXTOID, TEXTOID};
	Datum		values[2];
	uint64		k;

	values[0] = CStringGetTextDatum(psprintf("order_ext.%s", quote_identifier(table)));
	values[1] = CStringGetTextDatum(psprintf("order_ext.%s",
											 quote_identifier(psprintf("%s_history", table))));
	if (SPI_execute_with_args("SELECT pg_catalog.to_regclass($2) IS NOT NULL",
							  2, argtypes, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not look up order_ext.%s_history", table);
	if (!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &(bool){false})))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("order_ext.%s_history does not exist", table),
				 errdetail("Every order table needs a history twin of the same shape.")));

	/* columns the live table has and its twin lacks: add them */
	if (SPI_execute_with_args(
							  "SELECT pg_catalog.format('ALTER TABLE %s ADD COLUMN %I %s', $2, a.attname,"
							  "        pg_catalog.format_type(a.atttypid, a.atttypmod))"
							  " FROM pg_catalog.pg_attribute a"
							  " WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped"
							  " AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute h"
							  "  WHERE h.attrelid = $2::regclass AND h.attname = a.attname AND NOT h.attisdropped)"
							  " ORDER BY a.attnum",
							  2, argtypes, values, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not compare order_ext.%s with its history twin", table);
	if (SPI_processed > 0)
	{
		List	   *ddl = NIL;
		ListCell   *lc;

		for (k = 0; k < SPI_processed; k++)
			ddl = lappend(ddl, SPI_getvalue(SPI_tuptable->vals[k], SPI_tuptable->tupdesc, 1));
		foreach(lc, ddl)
		{
			ereport(LOG, (errmsg("order_ext archive: %s", (char *) lfirst(lc))));
			RunDDLWithRetry((char *) lfirst(lc));
		}
	}
}

/*
 * InsertColumns
 *		The quoted column list of "INSERT INTO order_ext.<hist> (list)
 *		SELECT list FROM <rows deleted from order_ext.<live>>": every column
 *		of live but those hist generates itself (a generated column may not
 *		be given a value; a DBA who adds one to a live table and its twin
 *		alike gets it computed again in history).
 */
static char *
InsertColumns(const char *live, const char *hist)
{
	Oid			argtypes[2] = {TEXTOID, TEXTOID};
	Datum		values[2];

	values[0] = CStringGetTextDatum(psprintf("order_ext.%s", quote_identifier(live)));
	values[1] = CStringGetTextDatum(psprintf("order_ext.%s", quote_identifier(hist)));
	if (SPI_execute_with_args(
							  "SELECT pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ' ORDER BY a.attnum)"
							  " FROM pg_catalog.pg_attribute a"
							  " WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped"
							  " AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute h"
							  "  WHERE h.attrelid = $2::regclass AND h.attname = a.attname"
							  "  AND NOT h.attisdropped AND h.attgenerated <> '')",
							  2, argtypes, values, NULL, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not read the columns of order_ext.%s", live);
	return SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
}

/*
 * PrepareRun
 *		In one transaction: check the history twins (adding columns the live
 *		tables gained since), read the column lists and the terminal
 *		statuses, and list the months below the cutoff.
 */
static int
PrepareRun(ArchiveState *st, ArchiveMonth **months)
{
	PartInfo   *live[MAX_TABLES];
	PartInfo   *hist[MAX_TABLES];
	int			nlive[MAX_TABLES];
	int			nhist[MAX_TABLES];
	int			nmonths = 0;
	int			t;
	int			i;
	MemoryContext old;

	BgXactBegin();
	SetLockTimeout();
	for (t = 0; t < OrderTablesCount; t++)
	{
		const char *table = OrderTables[t];

		TwinAddColumns(table);
		nlive[t] = ListPartitions(st, table, &live[t]);
		nhist[t] = ListPartitions(st, psprintf("%s_history", table), &hist[t]);
	}
	TwinAddColumns("after_sales");
	st->after_sales_columns = MemoryContextStrdup(st->cxt, InsertColumns("after_sales", "after_sales_history"));

	if (SPI_execute("SELECT coalesce(pg_catalog.array_agg(m.machine || '/' || s), '{}')"
					" FROM order_ext.machines m, pg_catalog.unnest(m.terminal_statuses) s",
					true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read the terminal statuses");
	old = MemoryContextSwitchTo(st->cxt);
	st->spec.terminal = datumCopy(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
												&(bool){false}), false, -1);
	st->spec.ntables = OrderTablesCount;

	/* the months: the live orders partitions that start below the cutoff */
	*months = palloc0(sizeof(ArchiveMonth) * Max(nlive[0], 1));
	for (i = 0; i < nlive[0]; i++)
	{
		ArchiveMonth *m = &(*months)[nmonths];
		PartInfo   *p = &live[0][i];

		if (p->lo >= st->cutoff_id)
			break;
		m->lo = p->lo;
		m->hi = p->hi;
		m->bound = p->bound;
		for (t = 0; t < OrderTablesCount; t++)
		{
			int			j;

			for (j = 0; j < nlive[t]; j++)
				if (live[t][j].lo == p->lo && live[t][j].hi == p->hi)
					m->live[t] = live[t][j].name;
			for (j = 0; j < nhist[t]; j++)
			{
				if (hist[t][j].lo == p->lo && hist[t][j].hi == p->hi)
					m->hist[t] = hist[t][j].name;
				else if (hist[t][j].lo < p->hi && hist[t][j].hi > p->lo)
					m->hist_overlap = true;
			}
		}
		nmonths++;
	}
	MemoryContextSwitchTo(old);
	BgXactCommit();
	return nmonths;
}

/*
 * MonthFinished
 *		Whether every order of the month is archivable: terminal
 *		(ArchiveMonthFinished), with no after-sale that can still move (one
 *		range probe).  *total: its orders.  Read with a snapshot taken now,
 *		so, with the month locked, every committed row.
 */
static bool
MonthFinished(ArchiveState *st, ArchiveMonth *m, int64 *total)
{
	Oid			argtypes[3] = {TEXTARRAYOID, INT8OID, INT8OID};
	Datum		values[3];
	bool		isnull;

	if (!ArchiveMonthFinished(m->live[0], total))
		return false;
	values[0] = st->spec.terminal;
	values[1] = Int64GetDatum(m->lo);
	values[2] = Int64GetDatum(m->hi);
	/* not read-only: a new snapshot */
	if (SPI_execute_with_args("SELECT " AFTER_SALES_OPEN("$1", "a.order_id >= $2 AND a.order_id < $3"),
							  3, argtypes, values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not check the month's after-sales");
	return !DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * HistoryIndexesMissing
 *		The indexes of history parent 'hist' that ATTACH PARTITION would
 *		build on the month's partition 'live' for want of a match (it matches
 *		each to the first equivalent index of the partition not matched
 *		yet; an index behind a constraint only to one behind a constraint),
 *		as statements to build them on 'live' beforehand.  Those behind a
 *		constraint are left to ATTACH: a plain index would not match them.
 *		The caller has checked that the columns match (ArchiveColumnMap).
 */
static List *
HistoryIndexesMissing(Relation hist, Relation live)
{
	List	   *hist_idx = RelationGetIndexList(hist);
	List	   *live_idx = RelationGetIndexList(live);
	AttrMap    *attmap = build_attrmap_by_name(RelationGetDescr(live), RelationGetDescr(hist));
	bool	   *used = palloc0(sizeof(bool) * (list_length(live_idx) + 1));
	List	   *missing = NIL;
	ListCell   *lc;

	foreach(lc, hist_idx)
	{
		Relation	hidx = index_open(lfirst_oid(lc), AccessShareLock);
		Oid			hcon = get_relation_idx_constraint_oid(RelationGetRelid(hist), RelationGetRelid(hidx));
		IndexInfo  *hinfo = BuildIndexInfo(hidx);
		bool		found = false;
		ListCell   *lc2;

		foreach(lc2, live_idx)
		{
			Relation	lidx;
			Oid			lcon;

			if (used[foreach_current_index(lc2)])
				continue;
			lidx = index_open(lfirst_oid(lc2), AccessShareLock);
			lcon = get_relation_idx_constraint_oid(RelationGetRelid(live), RelationGetRelid(lidx));
			found = lidx->rd_index->indisvalid &&
				CompareIndexInfo(BuildIndexInfo(lidx), hinfo, lidx->rd_indcollation, hidx->rd_indcollation,
								 lidx->rd_opfamily, hidx->rd_opfamily, attmap) &&
				(!OidIsValid(hcon) || OidIsValid(lcon));
			index_close(lidx, AccessShareLock);
			if (found)
			{
				used[foreach_current_index(lc2)] = true;
				break;
			}
		}
		if (!found && !OidIsValid(hcon) && hidx->rd_rel->relkind == RELKIND_PARTITIONED_INDEX)
		{
			Oid			unused;

			missing = lappend(missing, generateClonedIndexStmt(NULL, hidx, attmap, &unused));
		}
		index_close(hidx, AccessShareLock);
	}
	return missing;
}

/*
 * MonthBusy
 *		Whether some transaction holds one of the month's live partitions
 *		in a mode that SHARE conflicts with (a writer at work), looked at
 *		without waiting and without keeping any lock.
 */
static bool
MonthBusy(ArchiveMonth *m)
{
	Oid			nsp = get_namespace_oid("order_ext", false);
	int			t;

	for (t = 0; t < OrderTablesCount; t++)
	{
		Oid			relid = get_relname_relid(m->live[t], nsp);

		if (!OidIsValid(relid))
			continue;
		if (!ConditionalLockRelationOid(relid, ShareLock))
			return true;
		UnlockRelationOid(relid, ShareLock);
	}
	return false;
}

/*
 * MonthWholeReady
 *		Before a month moves whole.  NULL, or why its live partitions cannot
 *		be attached to the history tables as they are (a column history has
 *		and live lacks, say: the month then goes by batches, whose
 *		statements can fill it in).  And it builds on the live partitions
 *		the indexes the history tables have and they lack (a DBA's index
 *		for reports on history, say): ATTACH PARTITION would build them
 *		inside the whole-month transaction, with the live parents locked
 *		against everyone; built here, one transaction per table, they lock
 *		only that partition against writes (as CREATE INDEX does), and
 *		ATTACH takes them as they are.  Nothing built for a month that is not
 *		finished.  *unfinished: a writer is at work in the month and a
 *		plain read found an unfinished order (it goes by batches, without
 *		asking for the month's locks).  A partition that stays busy past
 *		lock_timeout is left to ATTACH.
 */
static const char *
MonthWholeReady(ArchiveState *st, ArchiveMonth *m, volatile bool *empty, volatile bool *unfinished)
{
	volatile int finished = -1; /* -1: not looked at yet */
	const char *volatile why = NULL;
	volatile int t;

	*empty = false;
	*unfinished = false;
	for (t = 0; t < OrderTablesCount && finished != 0 && why == NULL && !*empty; t++)
	{
		MemoryContext old = CurrentMemoryContext;

		PG_TRY();
		{
			Oid			nsp;
			Oid			live_oid;
			Relation	hist;
			Relation	live;
			List	   *missing = NIL;
			ListCell   *lc;
			int64		count;

			BgXactBegin();
			SetLockTimeout();
			nsp = get_namespace_oid("order_ext", false);
			live_oid = get_relname_relid(m->live[t], nsp);
			hist = table_open(get_relname_relid(psprintf("%s_history", OrderTables[t]), nsp), AccessShareLock);
			live = table_open(live_oid, AccessShareLock);
			why = ArchiveColumnMap(live, hist, NULL);
			if (why != NULL)
				why = MemoryContextStrdup(st->cxt, why);
			else
				missing = HistoryIndexesMissing(hist, live);
			table_close(live, NoLock);
			table_close(hist, NoLock);
			/* a month with no orders is left alone, without its locks (MonthWhole) */
			if (t == 0)
			{
				bool		isnull;

				if (SPI_execute(psprintf("SELECT NOT EXISTS (SELECT 1 FROM order_ext.%s)",
										 quote_identifier(m->live[0])), true, 1) != SPI_OK_SELECT)
					elog(ERROR, "could not read %s", m->live[0]);
				*empty = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
				missing = *empty ? NIL : missing;

				/*
				 * A writer at work in the month (one of its partitions not
				 * free for SHARE now): whether the month has an unfinished
				 * order, with a plain read (it stops at the first).  If it
				 * has, it goes by batches: the month's locks, waited for
				 * behind that writer, would queue the month's traffic
				 * behind them for nothing.  A month nobody writes to is
				 * checked under its locks only (MonthWhole), as before.
				 */
				if (!*empty && MonthBusy(m))
					finished = MonthFinished(st, m, &count) ? 1 : 0;
			}
			if (missing != NIL && finished < 0)
				finished = MonthFinished(st, m, &count) ? 1 : 0;
			foreach(lc, finished == 1 ? missing : NIL)
			{
				TimestampTz start = GetCurrentTimestamp();
				ObjectAddress idx = DefineIndex(live_oid, lfirst_node(IndexStmt, lc), InvalidOid, InvalidOid,
												InvalidOid, false, false, false, false, true);

				ereport(LOG,
						(errmsg("order_ext archive: built index %s on %s in %ld ms before moving its month"
								" whole (attaching it to %s_history would have built it with the live tables"
								" locked)", get_rel_name(idx.objectId), m->live[t],
								TimestampDifferenceMilliseconds(start, GetCurrentTimestamp()),
								OrderTables[t])));
			}
			BgXactCommit();
		}
		PG_CATCH();
		{
			ErrorData  *edata = BgXactAbort(st->cxt);

			MemoryContextSwitchTo(old);
			if (edata->sqlerrcode != ERRCODE_LOCK_NOT_AVAILABLE)
				ReThrowError(edata);
			ereport(LOG,
					(errmsg("order_ext archive: %s busy (%s); its missing indexes are left to the move",
							m->live[t], edata->message)));
			FreeErrorData(edata);
		}
		PG_END_TRY();
	}
	*unfinished = (finished == 0);
	return why;
}

/*
 * MonthWhole
 *		Move a month as whole partitions in one short transaction.  Returns
 *		the number of orders moved, -1 if some order of the month is not
 *		archivable or its partitions do not fit history's (the month then
 *		goes by batches: the statements can fill in a column, and a
 *		constraint history has is checked row by row), -2 if the locks were
 *		not to be had (try next run), -3 if the month has no orders (it stays
 *		live: an empty past month is most likely one create_partitions()
 *		made for an import, whose orders are still to come).
 */
static int64
MonthWhole(ArchiveState *st, ArchiveMonth *m)
{
	volatile int attempt;
	volatile bool empty;
	volatile bool unfinished;
	const char *why = MonthWholeReady(st, m, &empty, &unfinished);

	if (empty)
		return -3;				/* no orders: nothing to move, no locks taken */
	if (unfinished)
		return -1;				/* an order still moves: by batches, no locks taken */
	if (why != NULL)
	{
		ereport(LOG, (errmsg("order_ext archive: %s cannot move whole: %s", m->live[0], why)));
		return -1;
	}

	for (attempt = 1;; attempt++)
	{
		volatile int64 result = 0;
		MemoryContext old = CurrentMemoryContext;

		PG_TRY();
		{
			StringInfoData sql;
			int64		total;
			bool		blocked;
			int			t;
			TimestampTz locked_at;
			TimestampTz checked_at;
			long		left_ms;

			BgXactBegin();
			left_ms = oe_ddl_lock_timeout_ms;

			/*
			 * No writes into this month from here on; reads go on.  Every
			 * lock of this transaction is waited for out of one budget of
			 * order_ext.ddl_lock_timeout, table by table: waits for several
			 * tables, each under the timeout, must not add up to a longer
			 * stop of live traffic queued behind an ACCESS EXCLUSIVE request.
			 */
			initStringInfo(&sql);
			for (t = 0; t < OrderTablesCount; t++)
			{
				resetStringInfo(&sql);
				appendStringInfo(&sql, "LOCK TABLE order_ext.%s IN SHARE MODE", quote_identifier(m->live[t]));
				LockWithin(sql.data, &left_ms);
			}
			locked_at = GetCurrentTimestamp();

			blocked = !MonthFinished(st, m, &total);
			checked_at = GetCurrentTimestamp();
			if (blocked || total == 0)
			{
				/* an empty month stays live: create_partitions made it for an import, say */
				SPI_finish();
				PopActiveSnapshot();
				AbortCurrentTransaction();
				MemoryContextSwitchTo(old);
				result = blocked ? -1 : -3;
			}
			else
			{
				/*
				 * The locks the DDL below takes, all before the first of it:
				 * history's parents (ATTACH), then each live parent and its
				 * partition (DETACH).  ONLY: a live parent's other months
				 * are none of this.
				 */
				for (t = 0; t < OrderTablesCount; t++)
				{
					resetStringInfo(&sql);
					appendStringInfo(&sql, "LOCK TABLE ONLY order_ext.%s IN SHARE UPDATE EXCLUSIVE MODE",
									 quote_identifier(psprintf("%s_history", OrderTables[t])));
					LockWithin(sql.data, &left_ms);
				}
				for (t = 0; t < 2 * OrderTablesCount; t++)
				{
					resetStringInfo(&sql);
					appendStringInfo(&sql, "LOCK TABLE ONLY order_ext.%s IN ACCESS EXCLUSIVE MODE",
									 quote_identifier(t % 2 ? m->live[t / 2] : OrderTables[t / 2]));
					LockWithin(sql.data, &left_ms);
				}
				SetLockTimeoutMs(left_ms);	/* for anything the DDL locks besides */
				for (t = 0; t < OrderTablesCount; t++)
				{
					const char *table = OrderTables[t];
					char	   *hname = HistoryName(table, m->live[t], m->lo);

					resetStringInfo(&sql);
					appendStringInfo(&sql, "ALTER TABLE order_ext.%s DETACH PARTITION order_ext.%s",
									 quote_identifier(table), quote_identifier(m->live[t]));
					if (SPI_execute(sql.data, false, 0) != SPI_OK_UTILITY)
						elog(ERROR, "could not detach %s", m->live[t]);
					resetStringInfo(&sql);
					appendStringInfo(&sql, "ALTER TABLE order_ext.%s RENAME TO %s",
									 quote_identifier(m->live[t]), quote_identifier(hname));
					if (SPI_execute(sql.data, false, 0) != SPI_OK_UTILITY)
						elog(ERROR, "could not rename %s", m->live[t]);
					resetStringInfo(&sql);
					appendStringInfo(&sql, "ALTER TABLE order_ext.%s ATTACH PARTITION order_ext.%s %s",
									 quote_identifier(psprintf("%s_history", table)),
									 quote_identifier(hname), m->bound);
					if (SPI_execute(sql.data, false, 0) != SPI_OK_UTILITY)
						elog(ERROR, "could not attach %s", hname);
				}
				BgXactCommit();
				st->whole_locked_ms = TimestampDifferenceMilliseconds(locked_at, GetCurrentTimestamp());
				st->whole_check_ms = TimestampDifferenceMilliseconds(locked_at, checked_at);
				result = total;
			}
		}
		PG_CATCH();
		{
			ErrorData  *edata = BgXactAbort(st->cxt);
			int			category = ERRCODE_TO_CATEGORY(edata->sqlerrcode);

			MemoryContextSwitchTo(old);
			if (edata->sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE)
			{
				ereport(LOG,
						(errmsg("order_ext archive: month from order id " INT64_FORMAT " busy (%s), attempt %d of %d",
								m->lo, edata->message, attempt, MONTH_ATTEMPTS)));
				result = -2;
			}
			else if (category == ERRCODE_SYNTAX_ERROR_OR_ACCESS_RULE_VIOLATION)
			{
				/* ATTACH refused a partition (a CHECK constraint of history's, say): nothing moved */
				ereport(LOG,
						(errmsg("order_ext archive: %s cannot move whole: %s", m->live[0], edata->message)));
				result = -1;
			}
			else
				ReThrowError(edata);
			FreeErrorData(edata);
		}
		PG_END_TRY();
		if (result != -2 || attempt >= MONTH_ATTEMPTS)
			return result;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 200L * attempt, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * FreeKeptPlans
 *		Free the statements a run keeps across its transactions: when they
 *		are done with, and when the run fails (they live in
 *		CacheMemoryContext, and the worker's process lives on).
 */
static void
FreeKeptPlans(ArchiveState *st)
{
	int			t;

	for (t = 0; t < MAX_TABLES; t++)
	{
		if (st->plans[t] != NULL)
			SPI_freeplan(st->plans[t]);
		st->plans[t] = NULL;
	}
	if (st->sweep_plan != NULL)
		SPI_freeplan(st->sweep_plan);
	st->sweep_plan = NULL;
}

/*
 * PrepareMonthPlans
 *		The statements that move a batch of a month, by partition (no
 *		routing, no pruning needed), kept across the month's transactions
 *		in st->plans: plans[0] moves the next batch_size orders' archivable
 *		ones and returns the window's last id and the moved ids; plans[t]
 *		moves table t's rows of those ids.
 */
static void
PrepareMonthPlans(ArchiveState *st, ArchiveMonth *m)
{
	Oid			argtypes[4] = {INT8OID, INT8OID, TEXTARRAYOID, INT4OID};
	Oid			childtypes[1] = {INT8ARRAYOID};
	char	   *columns[MAX_TABLES] = {NULL};
	SPIPlanPtr	plans[MAX_TABLES] = {NULL};
	char	   *sql;
	int			t;

	for (t = 0; t < OrderTablesCount; t++)
		if (m->live[t] != NULL)
			columns[t] = InsertColumns(m->live[t], m->hist[t]);
	sql = psprintf("WITH pick AS ("
				   " SELECT o.order_id, " ARCHIVABLE("$3") " AS ok FROM order_ext.%s o"
				   " WHERE o.order_id > $1 AND o.order_id < $2"
				   " ORDER BY o.order_id LIMIT $4),"
				   " moved AS (DELETE FROM order_ext.%s o USING pick"
				   " WHERE pick.ok AND o.order_id = pick.order_id AND " TERMINAL("$3") " RETURNING o.*),"
				   " ins AS (INSERT INTO order_ext.%s (%s) SELECT %s FROM moved%s RETURNING order_id)"
				   " SELECT (SELECT max(order_id) FROM pick),"
				   "        (SELECT array_agg(order_id ORDER BY order_id) FROM ins)",
				   quote_identifier(m->live[0]), quote_identifier(m->live[0]),
				   quote_identifier(m->hist[0]), columns[0], columns[0], st->yield_point);
	/* custom plans: a generic one cannot see that the LIMIT is small */
	plans[0] = SPI_prepare_cursor(sql, 4, argtypes, CURSOR_OPT_CUSTOM_PLAN);
	for (t = 1; t < OrderTablesCount; t++)
	{
		plans[t] = NULL;
		if (m->live[t] == NULL)
			continue;
		sql = psprintf("WITH moved AS (DELETE FROM order_ext.%s WHERE order_id = ANY ($1) RETURNING *)"
					   " INSERT INTO order_ext.%s (%s) SELECT %s FROM moved%s",
					   quote_identifier(m->live[t]), quote_identifier(m->hist[t]),
					   columns[t], columns[t], st->yield_point);
		plans[t] = SPI_prepare(sql, 1, childtypes);
	}
	for (t = 0; t < OrderTablesCount; t++)
	{
		if (plans[t] == NULL && (t == 0 || m->live[t] != NULL))
			elog(ERROR, "could not prepare the archive statements: %s",
				 SPI_result_code_string(SPI_result));
		if (plans[t] != NULL && SPI_keepplan(plans[t]) != 0)
			elog(ERROR, "SPI_keepplan failed");
		st->plans[t] = plans[t];	/* kept: FreeKeptPlans frees it */
	}
}

/*
 * BatchXactBegin
 *		The transaction of one batch.  A crash can lose the last batches, not
 *		split them: no need to wait for the WAL flush at commit.
 */
static void
BatchXactBegin(void)
{
	CHECK_FOR_INTERRUPTS();
	BgXactBegin();
	(void) set_config_option("synchronous_commit", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_LOCAL, true, 0, false);
}

/*
 * BatchPause
 *		After a batch's commit: progress, then order_ext.archive_pause.
 */
static void
BatchPause(ArchiveState *st, const char *what)
{
	Report(st, what, false);
	if (st->pause_ms > 0)
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 st->pause_ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		ArchiveWorkFromNow();	/* a pause is a rest too */
	}
}

/*
 * TimeUp
 *		Whether the run's time budget is spent (ArchiveRun's budget_ms): then
 *		it starts no new batch or month, and says so once.
 */
static bool
TimeUp(ArchiveState *st)
{
	if (st->time_up)
		return true;
	if (st->stop_at == 0 || GetCurrentTimestamp() < st->stop_at)
		return false;
	st->time_up = true;
	ereport(LOG,
			(errmsg("order_ext archive: stopping after %d ms of this run (" INT64_FORMAT " orders moved);"
					" the rest is left for the next run", st->budget_ms, st->moved)));
	return true;
}

/*
 * Where a run that stopped on its time budget (the worker's: ArchiveRun's
 * budget_ms) left a month's batches, so that the next run of this process
 * goes on from there rather than from the month's first order: a month
 * that starts with more orders still under way than one run can read
 * would otherwise keep every run from the finished ones further on.  When
 * a month's batches reach its end, it starts from its first order again
 * (orders passed over may have finished since).  Only the worker's process
 * lives from one run to the next; archive()'s is new every call.
 */
#define RESUME_SLOTS 16

typedef struct MonthResume
{
	int64		lo;				/* the month's first id; 0: a free slot */
	int64		last;			/* the last id its batches read */
} MonthResume;

static MonthResume month_resume[RESUME_SLOTS];

/* Where the batches of the month from lo go on: after 'last', or lo - 1. */
static int64
ResumeFrom(int64 lo)
{
	int			i;

	for (i = 0; i < RESUME_SLOTS; i++)
		if (month_resume[i].lo == lo)
			return month_resume[i].last;
	return lo - 1;
}

/* Remember (last > 0) or forget (last == 0) where the month's batches are. */
static void
ResumeSet(int64 lo, int64 last)
{
	int			i;
	int			slot = -1;

	for (i = 0; i < RESUME_SLOTS; i++)
	{
		if (month_resume[i].lo == lo)
		{
			slot = i;
			break;
		}
		if (month_resume[i].lo == 0 && slot < 0)
			slot = i;
	}
	if (slot < 0)
		slot = (int) ((uint64) lo % RESUME_SLOTS);	/* full: forget one */
	month_resume[slot].lo = last > 0 ? lo : 0;
	month_resume[slot].last = last;
}

/*
 * MonthBatches
 *		Move the archivable orders of a month below 'upper', batch_size per
 *		transaction, into the month's history partitions (made if missing).
 */
static void
MonthBatches(ArchiveState *st, ArchiveMonth *m, int64 upper)
{
	StringInfoData sql;
	SPIPlanPtr *plans = st->plans;	/* the statements, once needed */
	Datum		values[4];
	char		what[128];
	int64		last = ResumeFrom(m->lo);
	bool		statements;
	int			t;

	if (m->live[0] == NULL)
		return;
	if (m->hist_overlap)
	{
		ereport(WARNING,
				(errmsg("order_ext archive: skipping the month from order id " INT64_FORMAT
						": a history partition overlaps it on other bounds", m->lo)));
		return;
	}

	initStringInfo(&sql);
	BgXactBegin();
	SetLockTimeout();

	/*
	 * No archivable order below the cutoff left in the month (one emptied
	 * by earlier runs, or one with only orders still under way): nothing
	 * to move and nothing to log, on every run after.
	 */
	appendStringInfo(&sql, "SELECT NOT EXISTS (SELECT 1 FROM order_ext.%s o WHERE o.order_id < " INT64_FORMAT
					 " AND " ARCHIVABLE("$1") ")",
					 quote_identifier(m->live[0]), upper);
	if (SPI_execute_with_args(sql.data, 1, (Oid[]) {TEXTARRAYOID}, &st->spec.terminal, NULL, true, 1)
		!= SPI_OK_SELECT)
		elog(ERROR, "could not read %s", m->live[0]);
	{
		bool		isnull;

		if (DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)))
		{
			BgXactCommit();
			return;
		}
	}

	/* the history partitions of this month */
	for (t = 0; t < OrderTablesCount; t++)
	{
		if (m->live[t] == NULL || m->hist[t] != NULL)
			continue;
		m->hist[t] = MemoryContextStrdup(st->cxt, HistoryName(OrderTables[t], m->live[t], m->lo));
		resetStringInfo(&sql);
		appendStringInfo(&sql, "CREATE TABLE order_ext.%s PARTITION OF order_ext.%s %s",
						 quote_identifier(m->hist[t]),
						 quote_identifier(psprintf("%s_history", OrderTables[t])), m->bound);
		RunDDLWithRetry(sql.data);
		/* a member of the extension, so that pg_dump keeps its rows (partitions.c) */
		OrderPartitionAdopt(get_relname_relid(m->hist[t], get_namespace_oid("order_ext", false)));
	}
	BgXactCommit();

	snprintf(what, sizeof(what), "batches of %s", m->live[0]);
	Report(st, what, true);
	statements = st->statements;
	for (t = 0; t < OrderTablesCount; t++)
	{
		st->spec.live[t] = m->live[t];
		st->spec.hist[t] = m->hist[t];
	}

	for (;;)
	{
		bool		isnull;
		bool		ids_null;
		Datum		ids;
		int64		n = 0;
		int64		picked;

		if (TimeUp(st))
		{
			FreeKeptPlans(st);
			ResumeSet(m->lo, last); /* the next run of this process goes on here */
			break;
		}
		BatchXactBegin();
		if (!statements)
		{
			ArchiveMoveResult r;
			const char *why = ArchiveMoveBatch(&st->spec, last, upper, st->batch_size, &r);

			if (why == NULL)
			{
				BgXactCommit();
				if (r.done)
				{
					ResumeSet(m->lo, 0);	/* the end: next time from the start */
					break;
				}
				Moved(st, r.moved);
				last = r.last;
				BatchPause(st, what);
				continue;
			}
			/* nothing changed yet: this month's batches go by the statements */
			ereport(LOG,
					(errmsg("order_ext archive: %s moves by SQL statements: %s", m->live[0], why)));
			statements = true;
		}
		if (plans[0] == NULL)
			PrepareMonthPlans(st, m);
		values[0] = Int64GetDatum(last);
		values[1] = Int64GetDatum(upper);
		values[2] = st->spec.terminal;
		values[3] = Int32GetDatum(st->batch_size);
		if (SPI_execute_plan(plans[0], values, NULL, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not move a batch of orders");
		picked = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		if (isnull)
		{
			FreeKeptPlans(st);
			BgXactCommit();
			ResumeSet(m->lo, 0);	/* the end: next time from the start */
			break;
		}
		ids = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &ids_null);
		if (!ids_null)
		{
			ArrayType  *arr = DatumGetArrayTypeP(ids);

			for (t = 1; t < OrderTablesCount; t++)
				if (plans[t] != NULL &&
					SPI_execute_plan(plans[t], &ids, NULL, false, 0) != SPI_OK_INSERT)
					elog(ERROR, "could not move the rows of %s", m->live[t]);
			n = ArrayGetNItems(ARR_NDIM(arr), ARR_DIMS(arr));
		}
		BgXactCommit();
		Moved(st, n);
		last = picked;
		BatchPause(st, what);
	}
}

/*
 * AfterSalesSweep
 *		Move the after-sales of archived orders (all finished, see ARCHIVABLE)
 *		to order_ext.after_sales_history, batch_size per transaction, in
 *		primary-key order up to the newest archived order (not only below
 *		this run's cutoff: an earlier run with a later one may have stopped
 *		before its sweep).  A sweep rather than a step of each path: a whole
 *		month moves in one short transaction that should not grow with its
 *		after-sales, and a run that stopped between the orders and their
 *		requests leaves the rest to the next sweep.  Every request is in
 *		exactly one of the two tables at every commit.
 */
static void
AfterSalesSweep(ArchiveState *st)
{
	Oid			argtypes[4] = {INT8OID, INT8OID, INT8OID, INT4OID};
	Datum		values[4];
	int64		last_order = PG_INT64_MIN;
	int64		last_id = PG_INT64_MIN;
	int64		moved = 0;
	int64		upper = -1;		/* above the newest archived order */

	Report(st, "after-sales of archived orders", false);
	for (;;)
	{
		bool		isnull;

		if (TimeUp(st))
		{
			FreeKeptPlans(st);
			break;
		}
		BatchXactBegin();
		if (st->sweep_plan == NULL)
		{
			SPIPlanPtr	plan = SPI_prepare(psprintf("WITH pick AS ("
										" SELECT a.order_id, a.id FROM order_ext.after_sales a"
										" WHERE (a.order_id, a.id) > ($1, $2) AND a.order_id < $3"
										" AND EXISTS (SELECT 1 FROM order_ext.orders_history h"
										"             WHERE h.order_id = a.order_id)"
										" ORDER BY a.order_id, a.id LIMIT $4),"
										" moved AS (DELETE FROM order_ext.after_sales a USING pick"
										" WHERE a.order_id = pick.order_id AND a.id = pick.id RETURNING a.*),"
										" ins AS (INSERT INTO order_ext.after_sales_history (%s)"
										" SELECT %s FROM moved%s RETURNING 1)"
										" SELECT p.order_id, p.id, (SELECT count(*) FROM ins)"
										" FROM pick p ORDER BY p.order_id DESC, p.id DESC LIMIT 1",
										st->after_sales_columns, st->after_sales_columns,
										st->yield_point),
							   4, argtypes);
			if (plan == NULL || SPI_keepplan(plan) != 0)
				elog(ERROR, "could not prepare the after-sales sweep: %s",
					 SPI_result_code_string(SPI_result));
			st->sweep_plan = plan;
		}
		if (upper < 0)
		{
			bool		none;
			Datum		newest;

			if (SPI_execute("SELECT max(order_id) FROM order_ext.orders_history", true, 1) != SPI_OK_SELECT)
				elog(ERROR, "could not read the newest archived order");
			newest = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &none);
			upper = Max(st->cutoff_id, none ? 0 : DatumGetInt64(newest) + 1);
		}
		values[0] = Int64GetDatum(last_order);
		values[1] = Int64GetDatum(last_id);
		values[2] = Int64GetDatum(upper);
		values[3] = Int32GetDatum(st->batch_size);
		if (SPI_execute_plan(st->sweep_plan, values, NULL, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not move after-sales of archived orders");
		if (SPI_processed == 0)
		{
			FreeKeptPlans(st);
			BgXactCommit();
			break;
		}
		last_order = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		last_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
		moved += DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
		BgXactCommit();
	}
	if (moved > 0)
		ereport(LOG,
				(errmsg("order_ext archive: moved " INT64_FORMAT " after-sales of archived orders to history",
						moved)));
}

/*
 * ArchiveCovers
 *		Whether order_ext.orders_history has a partition that takes order_id
 *		(only then can the id be archived).  A binary search in the relcache;
 *		the table's oid is cached (OrderRelid).
 */
bool
ArchiveCovers(int64 order_id)
{
	static Oid	history_relid = InvalidOid;
	Oid			relid = OrderRelid(&history_relid, "orders_history");
	Relation	rel;
	PartitionKey key;
	PartitionDesc pd;
	bool		covered = false;

	if (!OidIsValid(relid))
		return false;
	rel = table_open(relid, AccessShareLock);
	key = RelationGetPartitionKey(rel);
	pd = RelationGetPartitionDesc(rel, true);
	if (key != NULL && pd->boundinfo != NULL)
	{
		Datum		value = Int64GetDatum(order_id);
		bool		equal = false;
		int			offset;

		offset = partition_range_datum_bsearch(key->partsupfunc, key->partcollation,
											   pd->boundinfo, 1, &value, &equal);
		covered = pd->boundinfo->indexes[offset + 1] >= 0;
	}
	table_close(rel, AccessShareLock);
	return covered;
}

/*
 * ArchiveLock
 *		Take (or try to take) the session advisory lock that lets one archive
 *		run at a time in this database; release it with take = false.
 */
static bool
ArchiveLock(bool take, bool wait)
{
	LOCKTAG		tag;

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, OE_ADVISORY_CLASS, OE_LOCK_ARCHIVE, 2);
	if (!take)
		return LockRelease(&tag, ExclusiveLock, true);
	return LockAcquire(&tag, ExclusiveLock, true, !wait) != LOCKACQUIRE_NOT_AVAIL;
}

/*
 * ArchiveOneCpu
 *		With archive_yield on, a run keeps to one CPU, the last one this
 *		process may run on (on = true), and gets back the CPUs it had after
 *		(on = false).  Live work then always has the other CPUs to itself,
 *		and shares this one only when the run steps aside (archive_yield()).
 *		Measured on Linux 6.18 with two CPUs: left to itself, the archiving
 *		process lands on whichever CPU is free whenever it comes back from
 *		stepping aside, so live work on both CPUs keeps finding it there;
 *		kept to one, create_order's p99 during a run was 10-30% lower at the
 *		same archiving rate.  Nothing where there is one CPU, or no
 *		sched_setaffinity.
 */
static void
ArchiveOneCpu(bool on)
{
#if defined(__linux__) && defined(CPU_SET)
	static cpu_set_t before;

	if (on)
	{
		cpu_set_t	one;
		int			cpu;
		int			last = -1;

		Assert(archive_cpu < 0);
		/* fails (changing nothing) on machines with over CPU_SETSIZE CPUs */
		if (sched_getaffinity(0, sizeof(before), &before) != 0 || CPU_COUNT(&before) < 2)
			return;
		for (cpu = 0; cpu < CPU_SETSIZE; cpu++)
			if (CPU_ISSET(cpu, &before))
				last = cpu;
		CPU_ZERO(&one);
		CPU_SET(last, &one);
		if (sched_setaffinity(0, sizeof(one), &one) == 0)
			archive_cpu = last;
		else
			ereport(DEBUG1, (errmsg("order_ext archive: could not keep to CPU %d: %m", last)));
	}
	else if (archive_cpu >= 0)
	{
		if (sched_setaffinity(0, sizeof(before), &before) != 0)
			ereport(WARNING, (errmsg("order_ext: could not give this process back its CPUs: %m")));
		archive_cpu = -1;
	}
#endif
}

/*
 * ArchivePaceFromSettings
 *		The pace of a run asked for now: this session's settings (for the
 *		background worker, those of its configuration).
 */
void
ArchivePaceFromSettings(ArchivePace *pace)
{
	pace->pause_ms = oe_archive_pause_ms;
	pace->rest_us = oe_archive_rest_us;
	pace->rest_every_us = oe_archive_rest_every_us;
	pace->yield = oe_archive_yield;
	pace->statements = oe_archive_statements;
}

/*
 * ArchiveDoneLine
 *		The closing line of a run: "done", and how it stepped aside (yields,
 *		rests, its CPU) when it was to or did.
 */
static const char *
ArchiveDoneLine(const ArchivePace *pace)
{
	StringInfoData line;

	initStringInfo(&line);
	appendStringInfoString(&line, "done");
	if (pace->yield || archive_yielded_us > 0)
		appendStringInfo(&line, ", " INT64_FORMAT " ms yielded to live work", archive_yielded_us / 1000);
	if (pace->rest_us > 0 || archive_rests > 0)
		appendStringInfo(&line, ", " INT64_FORMAT " rests of %d us after every %d us of work (" INT64_FORMAT " ms)",
						 archive_rests, pace->rest_us, pace->rest_every_us, archive_rested_us / 1000);
	if (archive_cpu >= 0)
		appendStringInfo(&line, ", kept to CPU %d", archive_cpu);
	return line.data;
}

/*
 * Moved
 *		Count n orders a committed transaction moved, in the run's state and
 *		where ArchiveMovedSoFar finds them after the run failed.
 */
static void
Moved(ArchiveState *st, int64 n)
{
	st->moved += n;
	archive_moved = st->moved;
}

/*
 * ArchiveMovedSoFar
 *		The orders the current or last ArchiveRun of this process moved (and
 *		committed): what a failed run did before it failed, for its record.
 */
int64
ArchiveMovedSoFar(void)
{
	return archive_moved;
}

/*
 * ArchiveCutoff
 *		The time orders must be older than to be archived: now less
 *		older_than, reckoned in this session's TimeZone (a day is a calendar
 *		day there, across a daylight-saving change), so that it is the
 *		caller's now() - older_than.  0 when no order id is that old: from
 *		any time ids are issued (2020 to 2089), older_than of at least 100
 *		years (as interval_cmp counts, a month as 30 days) reaches back past
 *		the first id time, and now() - older_than might not even be a
 *		timestamp.
 */
TimestampTz
ArchiveCutoff(const Interval *older_than)
{
	TimestampTz cutoff;

	if (IntervalCmpMonths(older_than, 100 * MONTHS_PER_YEAR) >= 0)
		return 0;
	cutoff = DatumGetTimestampTz(DirectFunctionCall2(timestamptz_mi_interval,
													 TimestampTzGetDatum(GetCurrentTimestamp()),
													 IntervalPGetDatum(older_than)));
	return cutoff <= OE_ID_EPOCH ? 0 : cutoff;
}

/*
 * ArchiveRun
 *		One archive run, in transactions of its own (the caller is a
 *		background process outside any transaction).  With wait_for_lock
 *		false, returns 0 with *skipped set if another run holds the lock.
 *		With budget_ms > 0, it starts no batch or month after that long and
 *		leaves the rest to the next run (which finds it as this one did).
 */
int64
ArchiveRun(TimestampTz cutoff, int32 batch_size, const ArchivePace *pace,
		   bool wait_for_lock, int budget_ms, bool *skipped)
{
	ArchiveState st;
	ArchiveMonth *months = NULL;
	MemoryContext oldcxt;
	bool		locked;
	int			nmonths;
	int			i;

	memset(&st, 0, sizeof(st));
	*skipped = false;
	archive_moved = 0;
	st.batch_size = batch_size;
	st.pause_ms = pace->pause_ms;
	st.yield_point = PaceStepsAside(pace) ? " WHERE order_ext.archive_yield()" : "";
	st.statements = pace->statements;
	archive_yielded_us = 0;
	archive_rested_us = 0;
	archive_rests = 0;
	st.last_log = GetCurrentTimestamp();
	st.budget_ms = budget_ms;
	if (budget_ms > 0)
		st.stop_at = TimestampTzPlusMilliseconds(st.last_log, budget_ms);
	if (cutoff == 0)
		return 0;				/* no order id is that old (ArchiveCutoff) */
	st.cutoff_id = OrderIdMinForTime(cutoff);

	StartTransactionCommand();
	locked = ArchiveLock(true, wait_for_lock);
	CommitTransactionCommand();
	if (!locked)
	{
		*skipped = true;
		return 0;
	}

	if (pace->yield)
		ArchiveOneCpu(true);
	run_pace = pace;
	ArchiveWorkFromNow();
	st.cxt = AllocSetContextCreate(TopMemoryContext, "order_ext archive", ALLOCSET_DEFAULT_SIZES);
	oldcxt = MemoryContextSwitchTo(st.cxt);
	PG_TRY();
	{
		Report(&st, psprintf("orders created before %s", timestamptz_to_str(cutoff)), false);
		nmonths = PrepareRun(&st, &months);
		for (i = 0; i < nmonths && !TimeUp(&st); i++)
		{
			ArchiveMonth *m = &months[i];
			bool		whole = m->hi <= st.cutoff_id && !m->hist_overlap;
			int			t;

			for (t = 0; t < OrderTablesCount && whole; t++)
				whole = m->live[t] != NULL && m->hist[t] == NULL;
			if (whole)
			{
				int64		r;

				Report(&st, psprintf("whole month %s", m->live[0]), false);
				r = MonthWhole(&st, m);
				if (r >= 0)
				{
					Moved(&st, r);
					Report(&st, psprintf("moved month %s as a whole (" INT64_FORMAT " orders; its tables were locked"
										 " for %ld ms, %ld of them checking that every order was finished)",
										 m->live[0], r, st.whole_locked_ms, st.whole_check_ms), true);
					continue;
				}
				if (r == -2)
				{
					ereport(LOG,
							(errmsg("order_ext archive: month %s left for the next run: its tables stayed busy",
									m->live[0])));
					continue;
				}
				if (r == -3)
					continue;	/* empty: nothing to move, and it stays live */
			}
			MonthBatches(&st, m, Min(m->hi, st.cutoff_id));
		}
		if (!TimeUp(&st))
			AfterSalesSweep(&st);
		/* a run that yielded or rested says so, also one that should not have */
		Report(&st, ArchiveDoneLine(pace), st.moved > 0);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcxt);
		FreeKeptPlans(&st);
		MemoryContextDelete(st.cxt);
		run_pace = NULL;
		ArchiveOneCpu(false);
		(void) ArchiveLock(false, false);
		PG_RE_THROW();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(oldcxt);
	run_pace = NULL;
	ArchiveOneCpu(false);
	(void) ArchiveLock(false, false);
	pgstat_report_activity(STATE_IDLE, NULL);
	MemoryContextDelete(st.cxt);
	archive_moved = 0;			/* a later failure before its run starts reports none */
	return st.moved;
}

/* Microseconds from 'then' to 'now' (instr_time, the monotonic clock). */
static int64
ElapsedUs(instr_time now, instr_time then)
{
	INSTR_TIME_SUBTRACT(now, then);
	return (int64) INSTR_TIME_GET_MICROSEC(now);
}

/*
 * ArchiveYieldPoint, and archive_yield() -> boolean for the SQL statements
 *		The yield point of the batch mover and statements
 *		(order_ext.archive_yield): called for every row they move, between
 *		rows, and by the mover also for every order of its window scan,
 *		between the chunks of its multi-row heap inserts (ArchiveYieldRows)
 *		and between the index inserts of its buffered history rows (no
 *		buffer lock held).
 *		Every YIELD_EVERY rows, at most every YIELD_LOOK_US, it looks at how
 *		many tasks are runnable on the machine (/proc/loadavg); while more
 *		are than there are CPUs, some
 *		live work is waiting for one, and this process sleeps YIELD_SLEEP_US
 *		at a time, at most YIELD_MAX_US per look, so that it always gets on.
 *		There too it takes the rests of order_ext.archive_rest (ArchiveRest).
 *
 *		Why not leave it to the scheduler: measured on Linux 6.18 with two
 *		CPUs, an archiver at nice 10 (and its autogroup at nice 10) ran its
 *		40 ms batches on one CPU unpreempted while the backends queued behind
 *		each other on the other; sched_yield, a SCHED_IDLE policy and custom
 *		EEVDF slices did not change it.  Always true; a no-op outside a run
 *		with order_ext.archive_yield on or order_ext.archive_rest above 0; its
 *		yield check also where there is no /proc/loadavg.
 */
#define YIELD_EVERY		16
#define YIELD_LOOK_US	100
#define YIELD_SLEEP_US	200
#define YIELD_MAX_US	2000

void
ArchiveYieldPoint(void)
{
	ArchiveYieldRows(1);
}

/*
 * ArchiveYieldRows
 *		The yield point after 'rows' rows done in one step (a chunk of a
 *		multi-row insert): looks if YIELD_EVERY rows or more are done since
 *		the last look.  A look at /proc/loadavg costs about a microsecond,
 *		and 16 rows take about 15: looked at every time, it took 8% of the
 *		mover's CPU (docs/archive-benchmark.md).  So it looks there at most
 *		every YIELD_LOOK_US by the clock (tens of nanoseconds), which the
 *		rests read anyway: a waiting task is seen at most that much later.
 */
void
ArchiveYieldRows(int rows)
{
	static uint32 calls = 0;
	static int	fd = -2;		/* -2: not opened yet; -1: none */
	static long ncpu;
	static instr_time last_look;
	instr_time	now;
	int			slept = 0;

	if (run_pace == NULL || !PaceStepsAside(run_pace))
		return;
	calls += rows;
	if (calls < YIELD_EVERY)
		return;
	calls = 0;
	INSTR_TIME_SET_CURRENT(now);
	if (run_pace->yield && fd == -2)
	{
		fd = open("/proc/loadavg", O_RDONLY | O_CLOEXEC);
		ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	}
	if (run_pace->yield && fd >= 0 && ncpu > 0 && ElapsedUs(now, last_look) >= YIELD_LOOK_US)
	{
		last_look = now;
		for (; slept < YIELD_MAX_US; slept += YIELD_SLEEP_US)
		{
			if (RunnableTasks(fd) <= ncpu)
				break;
			pg_usleep(YIELD_SLEEP_US);
			archive_yielded_us += YIELD_SLEEP_US;
			CHECK_FOR_INTERRUPTS();
		}
	}
	if (run_pace->rest_us <= 0)
		return;
	if (slept > 0)
		ArchiveWorkFromNow();	/* it just stepped aside */
	else
		ArchiveRest(now);
}

/*
 * ArchiveRest, ArchiveWorkFromNow
 *		Rests inside batches (order_ext.archive_rest): at a yield point,
 *		once the run's rest_every_us of work have passed since the last rest
 *		(or pause, or yield), sleep its rest_us.
 *
 *		Why: live work that wakes while the archiver has a CPU waits for it
 *		at least until the scheduler preempts the archiver, and on two CPUs
 *		that wait reaches create_order's tail even when the other CPU is
 *		free most of the time.  The pause between batches does not help
 *		there: a batch is tens of milliseconds of work.  Short rests often
 *		(docs/archive-benchmark.md: 0.25-0.5 ms after every millisecond)
 *		leave the CPU to whatever waits for it, at a known cost in rate;
 *		the yield check only sees waiters at the moment it looks.
 */
static void
ArchiveWorkFromNow(void)
{
	INSTR_TIME_SET_CURRENT(archive_work_from);
}

static void
ArchiveRest(instr_time now)
{
	if (ElapsedUs(now, archive_work_from) < run_pace->rest_every_us)
		return;
	pg_usleep(run_pace->rest_us);
	archive_rested_us += run_pace->rest_us;
	archive_rests++;
	CHECK_FOR_INTERRUPTS();
	ArchiveWorkFromNow();
}

Datum
archive_yield(PG_FUNCTION_ARGS)
{
	ArchiveYieldPoint();
	PG_RETURN_BOOL(true);
}

/*
 * ArchiveNice
 *		Background work yields the CPU to live traffic: a lower scheduling
 *		priority for this process (nice 10; it never holds a lock live
 *		traffic waits for, except the old rows it moves).
 *
 *		On Linux with autogroups (kernel.sched_autogroup_enabled, on by
 *		default in many distributions) nice only ranks processes within one
 *		session, and every postmaster child starts a session of its own
 *		(setsid in InitPostmasterChild): nice 10 alone would leave this
 *		process an equal share against each backend.  So the process's
 *		autogroup, which holds only this process, gets nice 10 too.
 */
void
ArchiveNice(void)
{
	FILE	   *f;

	if (setpriority(PRIO_PROCESS, 0, ARCHIVE_NICE) != 0)
		ereport(DEBUG1, (errmsg("order_ext: could not lower the process priority: %m")));
#ifdef __linux__
	if (getsid(0) == getpid() && (f = fopen("/proc/self/autogroup", "w")) != NULL)
	{
		/* no such file without autogroup support; a failed write changes nothing */
		int			rc = fprintf(f, "%d\n", ARCHIVE_NICE);

		if (fclose(f) != 0 || rc < 0)
			ereport(DEBUG1, (errmsg("order_ext: could not lower the autogroup priority: %m")));
	}
#endif
}

/*
 * ArchiveWorkerMain
 *		The dynamic background worker archive() starts: attach to its shared
 *		memory, connect as the caller, run, record the run, hand back.
 */
void
ArchiveWorkerMain(Datum main_arg)
{
	dsm_segment *seg;
	ArchiveShared *sh;
	volatile int64 run_id = 0;
	MemoryContext cxt;

	pqsignal(SIGTERM, BgSigterm);
	BackgroundWorkerUnblockSignals();
	ArchiveNice();

	CurrentResourceOwner = ResourceOwnerCreate(NULL, "order_ext archive");
	seg = dsm_attach(DatumGetUInt32(main_arg));
	if (seg == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("order_ext archive: could not attach to the caller's shared memory")));
	sh = dsm_segment_address(seg);
	/*
	 * Log in as the caller did, then run as archive()'s owner, as the
	 * SECURITY DEFINER call does: an owner that may not log in (a NOLOGIN
	 * role, as owners often are) would otherwise end the worker at its start.
	 */
	BackgroundWorkerInitializeConnectionByOid(sh->dboid, sh->loginoid, 0);
	BgPinSettings();			/* not the caller's role defaults: see there */
	/* archive() refused a read-only caller; its role defaults may say so still */
	SetConfigOption("default_transaction_read_only", "off", PGC_SUSET, PGC_S_OVERRIDE);
	SetUserIdAndSecContext(sh->useroid, SECURITY_LOCAL_USERID_CHANGE);
	pgstat_report_appname("order_ext archive");
	cxt = CurrentMemoryContext;
	/* the caller's session settings: the pace is in sh->pace, this one a GUC */
	{
		char		timeout[32];

		snprintf(timeout, sizeof(timeout), "%d", sh->ddl_lock_timeout_ms);
		SetConfigOption("order_ext.ddl_lock_timeout", timeout, PGC_USERSET, PGC_S_SESSION);
	}

	PG_TRY();
	{
		bool		skipped;
		char		results[64];

		run_id = RunsBegin("archive");
		sh->moved = ArchiveRun(sh->cutoff, sh->batch_size, &sh->pace, true, 0, &skipped);
		snprintf(results, sizeof(results), "{\"archive\": " INT64_FORMAT "}", sh->moved);
		RunsEnd(run_id, "succeeded", results, NULL);
		sh->finished = true;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		if (!oe_stop_requested)
			EmitErrorReport();	/* the server log gets it with its context */
		edata = BgXactAbort(cxt);
		if (oe_stop_requested)
		{
			ereport(LOG,
					(errmsg("order_ext archive: stopped on request; the batches committed so far stay archived")));
			sh->sqlerrcode = ERRCODE_ADMIN_SHUTDOWN;
			strlcpy(sh->message, "the archive process was asked to stop (its caller was cancelled or ended, "
					"or DROP DATABASE, DROP EXTENSION, a rename or copy of the database, a shutdown or "
					"pg_terminate_backend)", sizeof(sh->message));
		}
		else
		{
			sh->sqlerrcode = edata->sqlerrcode;
			strlcpy(sh->message, edata->message ? edata->message : "unknown error", sizeof(sh->message));
		}
		if (run_id > 0)
		{
			char		results[64];

			snprintf(results, sizeof(results), "{\"archive\": " INT64_FORMAT "}", ArchiveMovedSoFar());
			RunsEnd(run_id, "failed", results, sh->message);
		}
	}
	PG_END_TRY();
	dsm_detach(seg);
	proc_exit(0);
}

/*
 * CallerLockedOrderTable
 *		A partitioned order table of schema order_ext, or a partition of one,
 *		that this backend holds a lock on (the first found), or InvalidOid.
 *		The archive process would wait for such a lock: a whole month's
 *		DETACH for any of them, a history partition's CREATE for a lock on
 *		history's parent.
 */
static Oid
CallerLockedOrderTable(void)
{
	LockData   *locks = GetLockStatusData();
	Oid			nsp = get_namespace_oid("order_ext", true);
	int			i;

	for (i = 0; i < locks->nelements && OidIsValid(nsp); i++)
	{
		LockInstanceData *l = &locks->locks[i];
		Oid			relid = l->locktag.locktag_field2;
		char		relkind;

		if (l->pid != MyProcPid || l->holdMask == 0 ||
			l->locktag.locktag_type != LOCKTAG_RELATION ||
			l->locktag.locktag_field1 != MyDatabaseId ||
			get_rel_namespace(relid) != nsp)
			continue;
		/* a lock on an index (reading a table takes those too): name its table */
		relkind = get_rel_relkind(relid);
		if (relkind == RELKIND_INDEX || relkind == RELKIND_PARTITIONED_INDEX)
			relid = IndexGetRelation(relid, true);
		if (!OidIsValid(relid))
			continue;
		if (get_rel_relkind(relid) == RELKIND_PARTITIONED_TABLE || get_rel_relispartition(relid))
			return relid;
	}
	return InvalidOid;
}

/* archive()'s caller errs or exits: the archive process stops with it. */
static void
ArchiveCallerGone(int code, Datum arg)
{
	(void) code;
	TerminateBackgroundWorker((BackgroundWorkerHandle *) DatumGetPointer(arg));
}

/*
 * archive(older_than interval, batch_size int) -> bigint
 *		Run ArchiveRun in a background worker of its own and wait for it;
 *		returns the number of orders moved.
 */
Datum
archive(PG_FUNCTION_ARGS)
{
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;
	dsm_segment *seg;
	ArchiveShared *sh;
	Interval   *older_than;
	int32		batch_size;
	pid_t		pid;
	int64		moved;
	Oid			locked;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be NULL", PG_ARGISNULL(0) ? "older_than" : "batch_size")));
	older_than = PG_GETARG_INTERVAL_P(0);
	batch_size = PG_GETARG_INT32(1);
	if (IntervalCmpMonths(older_than, 0) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("older_than must not be negative")));
	if (batch_size < 1 || batch_size > 100000)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("batch_size must be between 1 and 100000"),
				 errdetail("Got %d.", batch_size)));
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot archive during recovery")));
	/* its process commits on its own, but the caller asked for no writes */
	PreventCommandIfReadOnly("archive()");
	if (TransactionIdIsValid(GetTopTransactionIdIfAny()))
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("archive() cannot run in a transaction that has written"),
				 errdetail("It commits batch by batch in a process of its own, which would wait for this transaction's locks."),
				 errhint("Call it in a transaction of its own.")));
	locked = CallerLockedOrderTable();
	if (OidIsValid(locked))
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("archive() cannot run in a transaction that holds a lock on order_ext.%s",
						get_rel_name(locked)),
				 errdetail("It moves orders in a process of its own, which would wait for this transaction's locks"
						   " and leave months behind."),
				 errhint("Call it in a transaction of its own.")));

	seg = dsm_create(sizeof(ArchiveShared), 0);
	sh = dsm_segment_address(seg);
	memset(sh, 0, sizeof(ArchiveShared));
	sh->dboid = MyDatabaseId;
	sh->loginoid = GetAuthenticatedUserId();
	sh->useroid = GetUserId();
	sh->cutoff = ArchiveCutoff(older_than);
	sh->batch_size = batch_size;
	ArchivePaceFromSettings(&sh->pace);
	sh->ddl_lock_timeout_ms = oe_ddl_lock_timeout_ms;

	BgWorkerFill(&worker, "ArchiveWorkerMain", "order_ext archive",
				 UInt32GetDatum(dsm_segment_handle(seg)));
	snprintf(worker.bgw_name, BGW_MAXLEN, "order_ext archive for PID %d", MyProcPid);
	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
				 errmsg("could not start the archive process: no background worker slot is free"),
				 errhint("Raise max_worker_processes, or try again later.")));

	/*
	 * Cancelled or terminated (pg_terminate_backend, which exits without
	 * unwinding to a PG_CATCH): stop the worker too; its open batch rolls
	 * back.
	 */
	PG_ENSURE_ERROR_CLEANUP(ArchiveCallerGone, PointerGetDatum(handle));
	{
		for (;;)
		{
			BgwHandleStatus status = GetBackgroundWorkerPid(handle, &pid);

			if (status == BGWH_STOPPED || status == BGWH_POSTMASTER_DIED)
				break;
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 1000L, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
		}
	}
	PG_END_ENSURE_ERROR_CLEANUP(ArchiveCallerGone, PointerGetDatum(handle));

	if (!sh->finished)
	{
		if (sh->message[0] != '\0')
			ereport(ERROR,
					(errcode(sh->sqlerrcode ? sh->sqlerrcode : ERRCODE_INTERNAL_ERROR),
					 errmsg("archive failed: %s", sh->message),
					 errdetail("Batches committed before the failure stay archived.")));
		ereport(ERROR,
				(errcode(ERRCODE_ADMIN_SHUTDOWN),
				 errmsg("the archive process stopped before it finished"),
				 errdetail("Batches committed before it stopped stay archived; run archive() again to carry on.")));
	}
	moved = sh->moved;
	dsm_detach(seg);
	PG_RETURN_INT64(moved);
}
