/*
 * worker.c
 *		The background worker: a launcher (started after recovery, so never
 *		on a standby and at once on promotion) and one worker per database in
 *		order_ext.worker_databases, which every order_ext.naptime seconds runs
 *		the jobs of WorkerJobs[] (timers, partition maintenance, archiving,
 *		pruning acknowledged outbox events and expired request keys),
 *		each in transactions of its own, and records the run in
 *		order_ext.worker_runs.
 *
 * Owns: the worker GUCs, the launcher and the workers, the run log
 * (order_ext.worker_runs, also written by archive()), and the transaction
 * helpers of background processes.
 *
 * Lessons taken (LESSONS.md, pg_cron, worker_spi):
 *   - the launcher never exits with code 0 (that would unregister it for
 *     good): SIGTERM and errors exit with 1, and the postmaster starts it
 *     again after bgw_restart_time; workers it started are restarted by it
 *     after they stop (pg_terminate_backend, an error), with a back-off when
 *     they keep failing fast, and one log line each time, not a flood;
 *   - SIGTERM stops every process promptly: the launcher with die(), a
 *     worker or archive process at its next interrupt check (BgSigterm:
 *     between rows or batches), after recording its run as failed;
 *     SIGHUP reloads the settings;
 *   - a worker keeps a connection to its database, which would block DROP
 *     DATABASE: the library's utility hook (order_ext.c) stops the
 *     database's order_ext processes before DROP DATABASE runs
 *     (WorkerBeforeDropdb), and the launcher restarts a worker only after
 *     5 s and only if the database still exists;
 *   - one worker per database (a session advisory lock), and one archive
 *     run at a time with manual and pg_cron runs (archive.c's lock);
 *   - every run is recorded, capped at 1000 rows; runs left 'running' by a
 *     crash (or a stop request outside a job) are marked failed when the
 *     next starts;
 *   - Citus: maintenance runs only where the parent tables live (not on a
 *     Citus worker node); the worker checks before it acts.
 */
#include "postgres.h"

#include <signal.h>

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/defrem.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lock.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/backend_status.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "archive.h"
#include "order_ext.h"
#include "timers.h"
#include "worker.h"

#define WORKER_TYPE			"order_ext worker"
#define LAUNCHER_TYPE		"order_ext launcher"
#define MAX_WORKERS			64
/* slots: a worker being stopped keeps one until it is gone (LauncherSync) */
#define MAX_SLOTS			(2 * MAX_WORKERS)
#define RESTART_DELAY_MS	5000	/* after a worker stopped */
#define MAX_BACKOFF_MS		300000	/* after repeated fast failures */
#define RUNS_KEPT			1000
#define JOB_REPEATS			100		/* a repeating job runs at most this often per run */

/* GUCs */
static char *oe_worker_databases = NULL;
static int	oe_naptime = 60;
static char *oe_archive_after = NULL;
static int	oe_archive_batch_size = 1000;

static MemoryContext xact_saved_cxt = NULL;

/*
 * The jobs of one worker run, in order.  A job is either one SQL statement
 * returning one integer, run in a transaction of its own (and, if repeat,
 * again while it returns more than zero), or a C function that manages its
 * own transactions.  To add a job (say an outbox prune), add a line.
 */
typedef struct WorkerJob
{
	const char *name;			/* its key in worker_runs.results */
	const char *sql;
	bool		repeat;
	int64		(*run) (bool *skipped);
	const uint64 *counted;		/* if set, the job's result is how far this
								 * counter moved (run_timers: the timers
								 * fired), not the sum the SQL returned */
} WorkerJob;

static int64 ArchiveJob(bool *skipped);
static void LauncherKeepIdsAhead(TimestampTz *retry);

static const WorkerJob WorkerJobs[] = {
	{"run_timers", "SELECT order_ext.run_timers_claimed(1000)", true, NULL, &TimersFired},
	{"maintain", "SELECT order_ext.maintain()", false, NULL, NULL},
	{"archive", NULL, false, ArchiveJob, NULL},
	{"prune_outbox", "SELECT order_ext.prune_outbox(10000)", true, NULL, NULL},
	{"prune_requests", "SELECT order_ext.prune_requests()", false, NULL, NULL},
};

/* What the launcher knows of each database's worker. */
typedef struct LaunchedWorker
{
	char		dbname[NAMEDATALEN];
	Oid			dboid;
	BackgroundWorkerHandle *handle;
	TimestampTz started;
	TimestampTz next_start;
	int			fast_failures;
	bool		warned;
	bool		wanted;
} LaunchedWorker;

static LaunchedWorker launched[MAX_SLOTS];

PGDLLEXPORT void OrderLauncherMain(Datum main_arg);
PGDLLEXPORT void OrderWorkerMain(Datum main_arg);

/* ---------------------------------------------------------------------
 * Transactions of a background process, and the run log
 * ---------------------------------------------------------------------
 */

/*
 * BgWorkerFill
 *		An order_ext background process with a database connection, started
 *		after recovery, not restarted by the postmaster, that tells this
 *		process when it starts and stops.
 */
void
BgWorkerFill(BackgroundWorker *worker, const char *function, const char *type, Datum arg)
{
	memset(worker, 0, sizeof(*worker));
	worker->bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker->bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker->bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker->bgw_library_name, BGW_MAXLEN, "order_ext");
	snprintf(worker->bgw_function_name, BGW_MAXLEN, "%s", function);
	snprintf(worker->bgw_name, BGW_MAXLEN, "%s", type);
	snprintf(worker->bgw_type, BGW_MAXLEN, "%s", type);
	worker->bgw_main_arg = arg;
	worker->bgw_notify_pid = MyProcPid;
}

/*
 * BgXactBegin
 *		Start a transaction with SPI connected and a snapshot pushed.
 */
void
BgXactBegin(void)
{
	xact_saved_cxt = CurrentMemoryContext;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
}

/*
 * BgXactCommit
 *		Commit what BgXactBegin started; back in the caller's memory context.
 */
void
BgXactCommit(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	if (xact_saved_cxt != NULL)
		MemoryContextSwitchTo(xact_saved_cxt);
}

/*
 * BgPinSettings
 *		Right after a background process connects: the settings its SQL
 *		relies on, whatever the database's or the login role's defaults
 *		(ALTER DATABASE / ALTER ROLE ... SET, which a database owner or any
 *		role may set for itself) say.  The process runs as a superuser, or as
 *		archive()'s owner: a search_path naming a schema of the caller's
 *		ahead of pg_catalog would run the caller's operators and functions
 *		with those rights, as SECURITY DEFINER functions' pinned search_path
 *		prevents in a session.  The others keep its statements meaning what
 *		they say: string literals, date and interval text, READ COMMITTED
 *		(the batches re-read what another transaction committed), and
 *		triggers firing (replica mode would skip the version bump).
 */
void
BgPinSettings(void)
{
	static const char *const pins[][2] = {
		{"search_path", "pg_catalog, pg_temp"},
		{"standard_conforming_strings", "on"},
		{"DateStyle", "ISO, MDY"},
		{"IntervalStyle", "postgres"},
		{"default_transaction_isolation", "read committed"},
		{"session_replication_role", "origin"},
	};
	size_t		i;

	for (i = 0; i < lengthof(pins); i++)
		SetConfigOption(pins[i][0], pins[i][1], PGC_SUSET, PGC_S_OVERRIDE);
}

/*
 * BgXactAbort
 *		In PG_CATCH: the error (copied into cxt, and cleared), after aborting
 *		the transaction that raised it; back in cxt.
 */
ErrorData *
BgXactAbort(MemoryContext cxt)
{
	ErrorData  *edata;

	MemoryContextSwitchTo(cxt);
	edata = CopyErrorData();
	FlushErrorState();
	AbortCurrentTransaction();
	MemoryContextSwitchTo(cxt);
	return edata;
}

/* Set by BgSigterm: this process has been asked to stop. */
volatile sig_atomic_t oe_stop_requested = false;

/*
 * BgSigterm
 *		SIGTERM of a worker or an archive process (pg_terminate_backend,
 *		DROP DATABASE, a shutdown, archive()'s caller gone): stop at the next
 *		interrupt check as a query cancel does, with an error, rather than
 *		exiting there (die) with the run still recorded as running; the open
 *		transaction rolls back, the run is recorded as failed, and then the
 *		process exits.
 */
void
BgSigterm(SIGNAL_ARGS)
{
	int			save_errno = errno;

	oe_stop_requested = true;
	QueryCancelPending = true;
	InterruptPending = true;
	SetLatch(MyLatch);
	errno = save_errno;
}

/*
 * RunsBegin
 *		Record a run as 'running' (committed at once); first mark runs that
 *		a crash or a terminated process left 'running' as failed, and keep
 *		only the newest rows of finished runs.
 */
int64
RunsBegin(const char *source)
{
	Oid			argtypes[2] = {TEXTOID, INT4OID};
	Oid			cap_types[1] = {INT4OID};
	Datum		values[2];
	bool		isnull;
	int64		id;

	BgXactBegin();
	if (SPI_execute("UPDATE order_ext.worker_runs SET status = 'failed', finished_at = clock_timestamp(),"
					" message = 'the process stopped before the run finished (crash, restart or pg_terminate_backend)'"
					" WHERE status = 'running'"
					" AND (started_at < pg_catalog.pg_postmaster_start_time()"
					"      OR pid NOT IN (SELECT a.pid FROM pg_catalog.pg_stat_activity a WHERE a.pid IS NOT NULL))",
					false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not mark interrupted runs");
	values[0] = CStringGetTextDatum(source);
	values[1] = Int32GetDatum(MyProcPid);
	if (SPI_execute_with_args("INSERT INTO order_ext.worker_runs (source, pid) VALUES ($1, $2) RETURNING id",
							  2, argtypes, values, NULL, false, 1) != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "could not record the run");
	id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	/*
	 * A run still running keeps its row, however many have finished since;
	 * of the finished ones, room is left for this one's (RUNS_KEPT - 1).
	 */
	values[0] = Int32GetDatum(RUNS_KEPT - 1);	/* room for this run's row when it ends */
	if (SPI_execute_with_args("DELETE FROM order_ext.worker_runs WHERE status <> 'running'"
							  " AND id <= (SELECT r.id FROM order_ext.worker_runs r WHERE r.status <> 'running'"
							  " ORDER BY r.id DESC OFFSET $1 LIMIT 1)",
							  1, cap_types, values, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not cap the run log");
	BgXactCommit();
	return id;
}

/*
 * RunsEnd
 *		Record a run's outcome (results: a JSON object, or NULL to keep).
 */
void
RunsEnd(int64 run_id, const char *status, const char *results, const char *message)
{
	Oid			argtypes[4] = {INT8OID, TEXTOID, TEXTOID, TEXTOID};
	Datum		values[4];
	char		nulls[4] = {' ', ' ', results ? ' ' : 'n', message ? ' ' : 'n'};

	BgXactBegin();
	values[0] = Int64GetDatum(run_id);
	values[1] = CStringGetTextDatum(status);
	values[2] = results ? CStringGetTextDatum(results) : (Datum) 0;
	values[3] = message ? CStringGetTextDatum(message) : (Datum) 0;
	if (SPI_execute_with_args("UPDATE order_ext.worker_runs SET status = $2, finished_at = clock_timestamp(),"
							  " results = coalesce($3::jsonb, results), message = $4 WHERE id = $1",
							  4, argtypes, values, nulls, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not record the run's outcome");
	BgXactCommit();
}

/* ---------------------------------------------------------------------
 * GUCs
 * ---------------------------------------------------------------------
 */

/*
 * ParseInterval
 *		The interval in text, or NULL (with no error thrown) if it is not one
 *		or is negative.
 */
static Interval *
ParseInterval(const char *text)
{
	MemoryContext cxt = CurrentMemoryContext;
	Interval   *volatile result = NULL;

	PG_TRY();
	{
		result = DatumGetIntervalP(DirectFunctionCall3(interval_in, CStringGetDatum(text),
													   ObjectIdGetDatum(InvalidOid),
													   Int32GetDatum(-1)));
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		FlushErrorState();
		result = NULL;
	}
	PG_END_TRY();
	/* negative as a whole ('1 mon -1 day' is fine; '1 day -25 hours' is not) */
	if (result != NULL && IntervalCmpMonths(result, 0) < 0)
		result = NULL;
	return result;
}

static bool
CheckArchiveAfter(char **newval, void **extra, GucSource source)
{
	(void) extra;
	(void) source;
	if (*newval == NULL || ParseInterval(*newval) == NULL)
	{
		GUC_check_errdetail("order_ext.archive_after must be a non-negative interval, e.g. '90 days'.");
		return false;
	}
	return true;
}

/* ---------------------------------------------------------------------
 * DROP DATABASE: stop the database's order_ext processes first
 * ---------------------------------------------------------------------
 */

/*
 * StopDatabaseProcesses
 *		SIGTERM the order_ext background processes connected to dboid and
 *		wait up to 5 s for them to exit; why ends the log line.
 */
static void
StopDatabaseProcesses(Oid dboid, const char *why)
{
	pid_t		pids[MAX_WORKERS];
	int			npids = 0;
	int			n = pgstat_fetch_stat_numbackends();
	int			i;
	int			waited;

	for (i = 1; i <= n && npids < MAX_WORKERS; i++)
	{
		LocalPgBackendStatus *l = pgstat_fetch_stat_local_beentry(i);
		const char *type;

		if (l == NULL || l->backendStatus.st_databaseid != dboid ||
			l->backendStatus.st_backendType != B_BG_WORKER)
			continue;
		type = GetBackgroundWorkerTypeByPid(l->backendStatus.st_procpid);
		if (type != NULL && strncmp(type, "order_ext ", 10) == 0 &&
			kill(l->backendStatus.st_procpid, SIGTERM) == 0)
			pids[npids++] = l->backendStatus.st_procpid;
	}
	pgstat_clear_backend_activity_snapshot();
	for (waited = 0; waited < 50; waited++)
	{
		bool		alive = false;

		for (i = 0; i < npids; i++)
			if (pids[i] != 0 && kill(pids[i], 0) == 0)
				alive = true;
		if (!alive)
			break;
		pg_usleep(100000L);
		CHECK_FOR_INTERRUPTS();
	}
	if (npids > 0)
		ereport(LOG,
				(errmsg("order_ext: stopped %d background process(es) of a database %s", npids, why)));
}

/*
 * WorkerBeforeDropdb
 *		Before DROP DATABASE: stop our processes connected to it, so they do
 *		not block it (called by the utility hook, order_ext.c; also
 *		without shared_preload_libraries, where archive() still starts one).
 *		Only a DROP that dropdb() will not refuse out of hand stops them: run
 *		by the database's owner (or a superuser), at top level outside a
 *		transaction block.  Otherwise any role could stop the worker, and
 *		anyone's archive(), with a DROP DATABASE bound to fail.
 */
void
WorkerBeforeDropdb(DropdbStmt *stmt, bool isTopLevel)
{
	Oid			dboid = get_database_oid(stmt->dbname, true);

	if (!OidIsValid(dboid) || !isTopLevel || IsTransactionBlock() || IsSubTransaction() ||
		!pg_database_ownercheck(dboid, GetUserId()))
		return;
	StopDatabaseProcesses(dboid, "being dropped");
}

/*
 * WorkerBeforeDatabaseCopyOrRename
 *		Before ALTER DATABASE ... RENAME, or CREATE DATABASE ... TEMPLATE,
 *		by the database's owner (or a superuser): stop our processes
 *		connected to it, which would make either fail ("being accessed by
 *		other users").  The worker of a renamed database does not come back
 *		(order_ext.worker_databases names the old name); that of a template
 *		comes back after the copy, in RESTART_DELAY_MS, and the copy holds
 *		the database's lock against new connections meanwhile.
 */
void
WorkerBeforeDatabaseCopyOrRename(Node *stmt, bool isTopLevel)
{
	const char *dbname = NULL;
	Oid			dboid;

	if (IsA(stmt, RenameStmt) && ((RenameStmt *) stmt)->renameType == OBJECT_DATABASE)
		dbname = ((RenameStmt *) stmt)->subname;
	else if (IsA(stmt, CreatedbStmt))
	{
		ListCell   *lc;

		foreach(lc, ((CreatedbStmt *) stmt)->options)
		{
			DefElem    *d = lfirst(lc);

			if (strcmp(d->defname, "template") == 0 && d->arg != NULL)
				dbname = defGetString(d);
		}
	}
	if (dbname == NULL)
		return;
	dboid = get_database_oid(dbname, true);
	/* as for DROP DATABASE: only one PostgreSQL will not refuse out of hand */
	if (!OidIsValid(dboid) || dboid == MyDatabaseId || !pg_database_ownercheck(dboid, GetUserId()) ||
		!have_createdb_privilege() ||
		(IsA(stmt, CreatedbStmt) && (!isTopLevel || IsTransactionBlock() || IsSubTransaction())))
		return;
	StopDatabaseProcesses(dboid, IsA(stmt, RenameStmt) ? "being renamed" : "being copied");
}

/*
 * WorkerBeforeDropExtension
 *		Before DROP EXTENSION order_ext by its owner: stop this database's
 *		worker and archive processes.  They hold locks on the extension's
 *		tables and wait for others: the DROP, locking its objects one by
 *		one, deadlocked with them, or dropped tables under a process still
 *		working on them.  (The launcher starts the worker again later; with
 *		no extension, its runs do nothing.)
 */
void
WorkerBeforeDropExtension(DropStmt *stmt)
{
	ListCell   *lc;
	Oid			extoid;

	if (stmt->removeType != OBJECT_EXTENSION && stmt->removeType != OBJECT_SCHEMA)
		return;
	/* DROP EXTENSION order_ext, or DROP SCHEMA order_ext CASCADE (which drops it) */
	foreach(lc, stmt->objects)
	{
		if (strcmp(strVal(lfirst(lc)), "order_ext") != 0)
			continue;
		extoid = get_extension_oid("order_ext", true);
		if (OidIsValid(extoid) && pg_extension_ownercheck(extoid, GetUserId()) &&
			(stmt->removeType == OBJECT_EXTENSION || stmt->behavior == DROP_CASCADE))
			StopDatabaseProcesses(MyDatabaseId, "whose order_ext extension is being dropped");
		return;
	}
}

/* ---------------------------------------------------------------------
 * The per-database worker
 * ---------------------------------------------------------------------
 */

/*
 * ArchiveJob
 *		The worker's archive run: at most order_ext.naptime of archiving (to
 *		the next batch's end), so that a long backlog cannot hold up the
 *		timers; the next run, due at once, goes on after them.
 */
static int64
ArchiveJob(bool *skipped)
{
	Interval   *after = ParseInterval(oe_archive_after);
	TimestampTz cutoff;
	ArchivePace pace;

	if (after == NULL)
		elog(ERROR, "order_ext.archive_after is not a valid interval");
	cutoff = ArchiveCutoff(after);
	pfree(after);
	ArchivePaceFromSettings(&pace);
	return ArchiveRun(cutoff, oe_archive_batch_size, &pace, false,
					  (int) Min((int64) oe_naptime * 1000, PG_INT32_MAX), skipped);
}

/*
 * RunSqlJob
 *		An SQL job in a transaction of its own (repeated while it returns
 *		more than zero if job->repeat); the sum of what it returned.
 */
static int64
RunSqlJob(const WorkerJob *job)
{
	int64		total = 0;
	int			i;
	uint64		counted_before = job->counted ? *job->counted : 0;

	for (i = 0; i < JOB_REPEATS; i++)
	{
		int64		value = 0;
		char	   *text;

		CHECK_FOR_INTERRUPTS();
		BgXactBegin();
		if (SPI_execute(job->sql, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "job %s: its statement did not return one row", job->name);
		text = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		if (text != NULL)
			value = strtoll(text, NULL, 10);
		BgXactCommit();
		total += value;
		if (!job->repeat || value <= 0)
			break;
	}
	return job->counted ? (int64) (*job->counted - counted_before) : total;
}

/*
 * CanMaintainHere
 *		False on a Citus worker node (the order tables' parents live on the
 *		coordinator); true elsewhere.
 */
static bool
CanMaintainHere(void)
{
	bool		ok = true;
	bool		isnull;

	BgXactBegin();
	if (SPI_execute("SELECT pg_catalog.to_regprocedure('pg_catalog.citus_is_coordinator()') IS NOT NULL",
					true, 1) == SPI_OK_SELECT &&
		DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) &&
		SPI_execute("SELECT pg_catalog.citus_is_coordinator()", true, 1) == SPI_OK_SELECT)
		ok = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	BgXactCommit();
	return ok;
}

/*
 * WorkerRun
 *		One run: every job of WorkerJobs[], each in transactions of its own;
 *		a failing job is recorded and the others still run.
 */
static void
WorkerRun(MemoryContext cxt)
{
	static bool warned_missing = false;
	static bool warned_citus = false;
	StringInfoData results;
	StringInfoData message;
	bool		installed;
	volatile bool failed = false;
	volatile bool stopped = false;
	int64		run_id;
	volatile int j;

	StartTransactionCommand();
	installed = OidIsValid(get_extension_oid("order_ext", true));
	if (!installed && !warned_missing)
		ereport(LOG,
				(errmsg("order_ext worker: extension order_ext is not installed in database \"%s\"; waiting for it",
						get_database_name(MyDatabaseId))));
	CommitTransactionCommand();
	MemoryContextSwitchTo(cxt);
	if (!installed)
	{
		warned_missing = true;
		return;
	}
	warned_missing = false;
	if (!CanMaintainHere())
	{
		if (!warned_citus)
			ereport(LOG,
					(errmsg("order_ext worker: this is not the Citus coordinator; nothing to do here")));
		warned_citus = true;
		return;
	}

	run_id = RunsBegin("worker");
	initStringInfo(&results);
	initStringInfo(&message);
	appendStringInfoChar(&results, '{');
	for (j = 0; j < (int) lengthof(WorkerJobs) && !stopped; j++)
	{
		const WorkerJob *job = &WorkerJobs[j];
		char		activity[64];

		snprintf(activity, sizeof(activity), "order_ext worker: %s", job->name);
		pgstat_report_activity(STATE_RUNNING, activity);
		PG_TRY();
		{
			bool		skipped = false;
			int64		value;

			value = job->run ? job->run(&skipped) : RunSqlJob(job);
			MemoryContextSwitchTo(cxt);
			appendStringInfo(&results, "%s\"%s\": " INT64_FORMAT, j ? ", " : "", job->name, value);
			if (skipped)
				appendStringInfo(&message, "%s%s skipped: another run holds its lock",
								 message.len ? "; " : "", job->name);
		}
		PG_CATCH();
		{
			ErrorData  *edata = BgXactAbort(cxt);

			failed = true;
			stopped = oe_stop_requested;
			/* a failed archive job still tells what it moved before it failed */
			if (job->run == ArchiveJob)
				appendStringInfo(&results, "%s\"%s\": " INT64_FORMAT, j ? ", " : "", job->name,
								 ArchiveMovedSoFar());
			else
				appendStringInfo(&results, "%s\"%s\": null", j ? ", " : "", job->name);
			appendStringInfo(&message, "%s%s failed: %s", message.len ? "; " : "", job->name,
							 stopped ? "the worker was asked to stop (pg_terminate_backend, DROP DATABASE or a shutdown)"
							 : edata->message);
			if (!stopped)
				ereport(LOG,
						(errmsg("order_ext worker: job %s failed: %s", job->name, edata->message)));
			FreeErrorData(edata);
		}
		PG_END_TRY();
	}
	appendStringInfoChar(&results, '}');
	RunsEnd(run_id, failed ? "failed" : "succeeded", results.data,
			message.len ? message.data : NULL);
	MemoryContextSwitchTo(cxt);
	pfree(results.data);
	pfree(message.data);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/*
 * OrderWorkerMain
 *		One database's worker: run every naptime seconds until SIGTERM.
 */
void
OrderWorkerMain(Datum main_arg)
{
	Oid			dboid = DatumGetObjectId(main_arg);
	MemoryContext cxt;
	volatile TimestampTz last_start = 0;
	bool		got_lock;
	LOCKTAG		tag;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, BgSigterm);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	BgPinSettings();
	pgstat_report_appname(WORKER_TYPE);
	ArchiveNice();
	cxt = AllocSetContextCreate(TopMemoryContext, "order_ext worker", ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(cxt);

	/* one worker per database */
	StartTransactionCommand();
	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, OE_ADVISORY_CLASS, OE_LOCK_WORKER, 2);
	got_lock = LockAcquire(&tag, ExclusiveLock, true, true) != LOCKACQUIRE_NOT_AVAIL;
	CommitTransactionCommand();
	MemoryContextSwitchTo(cxt);
	if (!got_lock)
	{
		ereport(LOG,
				(errmsg("order_ext worker: another worker serves this database; exiting")));
		proc_exit(1);
	}
	ereport(LOG, (errmsg("order_ext worker started (naptime %d s)", oe_naptime)));

	for (;;)
	{
		TimestampTz now;
		long		wait_ms;

		if (oe_stop_requested)
		{
			/*
			 * exit code 1: the launcher starts it again if it should run.
			 * The cancel BgSigterm set for a statement is moot now: left
			 * pending, it was raised on the way out, as a false ERROR.
			 */
			QueryCancelPending = false;
			ereport(LOG, (errmsg("order_ext worker: stopped on request")));
			proc_exit(1);
		}
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		now = GetCurrentTimestamp();
		if (last_start == 0 || TimestampDifferenceExceeds(last_start, now, oe_naptime * 1000))
		{
			last_start = now;
			PG_TRY();
			{
				WorkerRun(cxt);
			}
			PG_CATCH();
			{
				ErrorData  *edata = BgXactAbort(cxt);

				if (!oe_stop_requested)
					ereport(LOG, (errmsg("order_ext worker: run failed: %s", edata->message)));
				FreeErrorData(edata);
				pgstat_report_activity(STATE_IDLE, NULL);
			}
			PG_END_TRY();
			continue;
		}
		wait_ms = TimestampDifferenceMilliseconds(now,
												  TimestampTzPlusMilliseconds(last_start, oe_naptime * 1000));
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Max(wait_ms, 1), PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/* ---------------------------------------------------------------------
 * The launcher
 * ---------------------------------------------------------------------
 */

/*
 * LauncherExit
 *		Stop the workers this launcher started (its successor starts them).
 */
static void
LauncherExit(int code, Datum arg)
{
	int			i;

	(void) code;
	(void) arg;
	for (i = 0; i < MAX_SLOTS; i++)
		if (launched[i].handle != NULL)
			TerminateBackgroundWorker(launched[i].handle);
}

/*
 * DatabaseOid
 *		The database's oid, or InvalidOid.  A plain scan of pg_database (no
 *		index: the launcher has no database, so it cannot build relcache
 *		entries for indexes the shared init file lacks).
 */
static Oid
DatabaseOid(const char *name, bool *is_template)
{
	Relation	rel = table_open(DatabaseRelationId, AccessShareLock);
	TableScanDesc scan = table_beginscan_catalog(rel, 0, NULL);
	HeapTuple	tup;
	Oid			result = InvalidOid;

	*is_template = false;
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);

		if (strcmp(NameStr(db->datname), name) == 0)
		{
			/* a worker's connection would keep CREATE DATABASE from copying it */
			*is_template = db->datistemplate;
			result = db->datallowconn && !db->datistemplate ? db->oid : InvalidOid;
		}
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	return result;
}

/*
 * LauncherSync
 *		Start the workers of the configured databases that are not running
 *		(when due), stop those of databases no longer configured; returns
 *		how long to sleep at most.
 */
/* a database past MAX_WORKERS was warned of, and the list is still too long */
static bool overflow_warned = false;

static long
LauncherSync(void)
{
	char	   *list = pstrdup(oe_worker_databases ? oe_worker_databases : "");
	char	   *tok;
	char	   *save;
	TimestampTz now = GetCurrentTimestamp();
	long		sleep_ms = 10000;
	bool		overflow = false;
	bool		is_template;
	int			nth = 0;
	int			i;

	for (i = 0; i < MAX_SLOTS; i++)
		launched[i].wanted = false;

	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	for (tok = strtok_r(list, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save))
	{
		char	   *name = tok;
		char	   *end;
		LaunchedWorker *w = NULL;
		int			free_slot = -1;

		while (*name == ' ' || *name == '\t')
			name++;
		end = name + strlen(name);
		while (end > name && (end[-1] == ' ' || end[-1] == '\t'))
			*--end = '\0';
		if (*name == '"' && end - name >= 2 && end[-1] == '"')
		{
			end[-1] = '\0';
			name++;
		}
		if (*name == '\0')
			continue;
		/* the first MAX_WORKERS names of the list, whatever is stopping */
		if (++nth > MAX_WORKERS)
		{
			/* said once until the list fits again */
			if (!overflow_warned)
				ereport(WARNING,
						(errmsg("order_ext launcher: database \"%s\" in order_ext.worker_databases is past the"
								" %d databases one launcher serves; it gets no worker", name, MAX_WORKERS)));
			overflow = true;
			continue;
		}
		for (i = 0; i < MAX_SLOTS; i++)
		{
			if (launched[i].dbname[0] != '\0' && strcmp(launched[i].dbname, name) == 0)
				w = &launched[i];
			else if (launched[i].dbname[0] == '\0' && free_slot < 0)
				free_slot = i;
		}
		if (w == NULL)
		{
			if (free_slot < 0)
				continue;		/* every slot still held by stopping workers: the next round */
			w = &launched[free_slot];
			memset(w, 0, sizeof(*w));
			strlcpy(w->dbname, name, NAMEDATALEN);
		}
		w->wanted = true;
		w->dboid = DatabaseOid(name, &is_template);
		if (!OidIsValid(w->dboid) && !w->warned)
		{
			if (is_template)
				ereport(WARNING,
						(errmsg("order_ext launcher: database \"%s\" in order_ext.worker_databases is a template;"
								" it gets no worker", name),
						 errdetail("A worker's connection would keep CREATE DATABASE from copying it.")));
			else
				ereport(WARNING,
						(errmsg("order_ext launcher: database \"%s\" in order_ext.worker_databases does not exist"
								" or does not allow connections", name)));
			w->warned = true;
		}
		else if (OidIsValid(w->dboid))
			w->warned = false;
	}
	PopActiveSnapshot();
	CommitTransactionCommand();
	overflow_warned = overflow;

	for (i = 0; i < MAX_SLOTS; i++)
	{
		LaunchedWorker *w = &launched[i];
		pid_t		pid;

		if (w->dbname[0] == '\0')
			continue;
		if (w->handle != NULL && GetBackgroundWorkerPid(w->handle, &pid) == BGWH_STOPPED)
		{
			bool		fast = !TimestampDifferenceExceeds(w->started, now, 10000);
			long		delay = RESTART_DELAY_MS;

			pfree(w->handle);
			w->handle = NULL;
			w->fast_failures = fast ? w->fast_failures + 1 : 0;
			for (int k = 1; k < w->fast_failures && delay < MAX_BACKOFF_MS; k++)
				delay *= 2;
			delay = Min(delay, MAX_BACKOFF_MS);
			w->next_start = TimestampTzPlusMilliseconds(now, delay);
			if (w->wanted)
				ereport(LOG,
						(errmsg("order_ext launcher: the worker of database \"%s\" stopped; starting it again in %ld s",
								w->dbname, delay / 1000)));
		}
		if (!w->wanted)
		{
			if (w->handle != NULL)
				TerminateBackgroundWorker(w->handle);
			else
				w->dbname[0] = '\0';
			continue;
		}
		if (w->handle == NULL && OidIsValid(w->dboid))
		{
			if (now >= w->next_start)
			{
				BackgroundWorker worker;
				MemoryContext old;
				bool		ok;

				BgWorkerFill(&worker, "OrderWorkerMain", WORKER_TYPE, ObjectIdGetDatum(w->dboid));
				snprintf(worker.bgw_name, BGW_MAXLEN, "order_ext worker for database %s", w->dbname);
				old = MemoryContextSwitchTo(TopMemoryContext);	/* the handle outlives the loop */
				ok = RegisterDynamicBackgroundWorker(&worker, &w->handle);

				MemoryContextSwitchTo(old);
				if (ok)
					w->started = now;
				else
				{
					w->handle = NULL;
					w->next_start = TimestampTzPlusMilliseconds(now, 10000 << Min(w->fast_failures++, 5));
					ereport(WARNING,
							(errmsg("order_ext launcher: no background worker slot free for database \"%s\"; retrying later",
									w->dbname),
							 errhint("Raise max_worker_processes.")));
				}
			}
			if (w->handle == NULL)
				sleep_ms = Min(sleep_ms, Max(1, TimestampDifferenceMilliseconds(now, w->next_start)));
		}
	}
	pfree(list);
	return sleep_ms;
}

/*
 * OrderLauncherMain
 *		Keep one worker per configured database, and the order id horizon
 *		ahead of the ids being issued (OrderIdsKeepAhead); never exits with
 *		code 0.
 */
void
OrderLauncherMain(Datum main_arg)
{
	MemoryContext cxt;
	TimestampTz next_sync = 0;
	TimestampTz ids_retry = 0;
	bool		woken;

	(void) main_arg;
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	/* no database: shared catalogs only (pg_database), blocks no DROP DATABASE */
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname(LAUNCHER_TYPE);
	before_shmem_exit(LauncherExit, (Datum) 0);
	cxt = AllocSetContextCreate(TopMemoryContext, "order_ext launcher", ALLOCSET_DEFAULT_SIZES);
	ereport(LOG,
			(errmsg("order_ext launcher started (order_ext.worker_databases = '%s')",
					oe_worker_databases ? oe_worker_databases : "")));
	woken = true;

	for (;;)
	{
		TimestampTz now;
		long		wait_ms;
		int			rc;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		/* the workers: when due, or when woken (a worker's state, SIGHUP) */
		now = GetCurrentTimestamp();
		if (woken || now >= next_sync)
		{
			MemoryContextSwitchTo(cxt);
			next_sync = TimestampTzPlusMilliseconds(now, LauncherSync());
			MemoryContextReset(cxt);
		}
		/* the order id horizon, off the backends' path (ids.c), more often */
		LauncherKeepIdsAhead(&ids_retry);
		wait_ms = Min(TimestampDifferenceMilliseconds(GetCurrentTimestamp(), next_sync),
					  OE_ID_KEEP_AHEAD_INTERVAL_MS);
		rc = WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					   Max(wait_ms, 1), PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		woken = (rc & WL_LATCH_SET) != 0;
	}
}

/*
 * LauncherKeepIdsAhead
 *		OrderIdsKeepAhead(), unless it failed less than 10 s ago.  An error
 *		writing the horizon file (a full disk, say) is logged and tried
 *		again later, rather than ending the launcher and with it every
 *		worker; meanwhile new_order_id() writes the file itself, and its
 *		caller gets the error, as without the launcher.
 */
static void
LauncherKeepIdsAhead(TimestampTz *retry)
{
	MemoryContext cxt = CurrentMemoryContext;

	if (GetCurrentTimestamp() < *retry)
		return;
	PG_TRY();
	{
		OrderIdsKeepAhead();
	}
	PG_CATCH();
	{
		HOLD_INTERRUPTS();
		MemoryContextSwitchTo(cxt);
		EmitErrorReport();
		FlushErrorState();
		LWLockReleaseAll();
		AtEOXact_Files(false);	/* the state file, if it was open */
		*retry = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 10000);
		RESUME_INTERRUPTS();
	}
	PG_END_TRY();
}

/*
 * WorkerInit
 *		The worker GUCs; with shared_preload_libraries, the launcher.
 */
void
WorkerInit(void)
{
	BackgroundWorker worker;

	DefineCustomStringVariable("order_ext.worker_databases",
							   "Databases the order_ext background worker serves (comma-separated).",
							   "Empty: no worker. Needs order_ext in shared_preload_libraries.",
							   &oe_worker_databases,
							   "",
							   PGC_SIGHUP, 0,
							   NULL, NULL, NULL);
	DefineCustomIntVariable("order_ext.naptime",
							"Seconds between two runs of the order_ext background worker.",
							"Also the longest a run archives; it leaves the rest to the next run, due at once.",
							&oe_naptime,
							60, 1, 86400,
							PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomStringVariable("order_ext.archive_after",
							   "The background worker archives terminal orders older than this interval.",
							   NULL,
							   &oe_archive_after,
							   "90 days",
							   PGC_SIGHUP, 0,
							   CheckArchiveAfter, NULL, NULL);
	DefineCustomIntVariable("order_ext.archive_batch_size",
							"Orders the background worker archives per transaction.",
							NULL,
							&oe_archive_batch_size,
							1000, 1, 100000,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("order_ext.archive_pause",
							"Pause between two archive batches, so that live traffic keeps going.",
							NULL,
							&oe_archive_pause_ms,
							10, 0, 60000,
							PGC_USERSET, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("order_ext.archive_rest",
							"Microseconds archiving rests inside a batch after every order_ext.archive_rest_every of work; 0 for none.",
							"Short rests often leave a CPU to live work that waits for it, at a cost in archiving speed: a rest of 250 after every 1000 takes a fifth of it.",
							&oe_archive_rest_us,
							250, 0, 100000,
							PGC_USERSET, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("order_ext.archive_rest_every",
							"Microseconds of archiving work between two rests inside a batch (order_ext.archive_rest).",
							NULL,
							&oe_archive_rest_every_us,
							1000, 100, 1000000,
							PGC_USERSET, 0,
							NULL, NULL, NULL);
	DefineCustomBoolVariable("order_ext.archive_yield",
							 "Archiving steps aside for live work: it keeps to one CPU, and inside a batch sleeps while live work waits for a CPU.",
							 "A run keeps to the last CPU its process may run on; every 16 rows moved (at most every 100 us), it sleeps while more tasks are runnable than there are CPUs (at most 2 ms per look).",
							 &oe_archive_yield,
							 true,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);
	DefineCustomBoolVariable("order_ext.archive_statements",
							 "Archive batches move rows with SQL statements instead of the built-in mover.",
							 "The statements (DELETE ... RETURNING into INSERT, through the executor) do what the mover does at about twice its CPU; archiving uses them by itself where the mover cannot take a month (triggers, rules or row-level security on the tables, history columns that differ). For comparisons and as a way out.",
							 &oe_archive_statements,
							 false,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);

	if (!process_shared_preload_libraries_in_progress)
		return;

	BgWorkerFill(&worker, "OrderLauncherMain", LAUNCHER_TYPE, (Datum) 0);
	worker.bgw_restart_time = 5;	/* the postmaster restarts it: it never exits with 0 */
	worker.bgw_notify_pid = 0;
	RegisterBackgroundWorker(&worker);
}
