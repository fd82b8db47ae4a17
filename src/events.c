/*
 * events.c
 *		The order timeline and the outbox: every change of an order appends
 *		one row to order_ext.order_events and one to order_ext.outbox in the
 *		caller's transaction, and queues a NOTIFY on channel order_ext.
 *
 * Owns: the one place where event and outbox rows are written, and the
 * NOTIFY.  PostgreSQL serialises the commits of all transactions that
 * NOTIFY (a database-wide lock held through commit), so queueing one per
 * order when nobody listens would cap order throughput for nothing.  With
 * shared_preload_libraries, a ProcessUtility hook counts the sessions that
 * ran LISTEN order_ext (a session is counted until it exits; UNLISTEN does
 * not uncount it, so the count errs only towards notifying), and the
 * NOTIFYs a transaction asked for are queued at pre-commit only if that
 * count is non-zero.  Without preloading, every request is queued.  A
 * listener that joins while a transaction is between that check and its
 * commit can miss that one notification: consumers wait on LISTEN with a
 * timeout and then read the outbox anyway (read_events), which the outbox
 * makes safe.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "access/xact.h"
#include "commands/async.h"
#include "catalog/namespace.h"
#include "commands/extension.h"
#include "utils/acl.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "events.h"
#include "order_ext.h"

static SPIPlanPtr append_plans[2] = {NULL, NULL};

typedef struct ListenerState
{
	pg_atomic_uint32 listeners; /* sessions that ran LISTEN order_ext */
} ListenerState;

static ListenerState *listener_state = NULL;
static bool counted_as_listener = false;
/* A NOTIFY asked for: the order, and the subtransaction level that asked. */
typedef struct PendingNotify
{
	int64		order_id;
	int			level;
} PendingNotify;

static List *pending_notifies = NIL;	/* PendingNotify, in TopTransactionContext */
static bool xact_callback_registered = false;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void
EventsShmemRequest(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(ListenerState)));
}

static void
EventsShmemStartup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	listener_state = ShmemInitStruct("order_ext listeners", sizeof(ListenerState), &found);
	if (!found)
		pg_atomic_init_u32(&listener_state->listeners, 0);
	LWLockRelease(AddinShmemInitLock);
}

static void
ListenerExit(int code, Datum arg)
{
	(void) code;
	(void) arg;
	if (counted_as_listener && listener_state != NULL)
		pg_atomic_fetch_sub_u32(&listener_state->listeners, 1);
	counted_as_listener = false;
}

/*
 * RefuseListenerWithoutUsage
 *		PostgreSQL has no privileges on channels, and this one carries the
 *		id of every order changed (and a listener makes every order's commit
 *		queue a NOTIFY): in a database with order_ext, only a role that may
 *		use its schema (grant_app, grant_admin) may LISTEN on it.
 */
static void
RefuseListenerWithoutUsage(void)
{
	Oid			nsp;

	if (!IsTransactionState() || !OidIsValid(get_extension_oid("order_ext", true)))
		return;
	nsp = get_namespace_oid("order_ext", true); /* the control file's schema */
	if (OidIsValid(nsp) && pg_namespace_aclcheck(nsp, GetUserId(), ACL_USAGE) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to listen on channel \"order_ext\""),
				 errdetail("The channel carries the id of every order changed; it is for roles that may read order_ext's events."),
				 errhint("order_ext.grant_app(role) lets a role read them.")));
}

/*
 * EventsBeforeListen
 *		Count this session as a listener when it runs LISTEN order_ext
 *		(called by the utility hook, order_ext.c).
 */
void
EventsBeforeListen(ListenStmt *stmt)
{
	if (strcmp(stmt->conditionname, "order_ext") != 0)
		return;
	RefuseListenerWithoutUsage();
	if (listener_state != NULL && !counted_as_listener)
	{
		before_shmem_exit(ListenerExit, (Datum) 0);
		pg_atomic_fetch_add_u32(&listener_state->listeners, 1);
		counted_as_listener = true;
	}
}

/*
 * EventsInit
 *		With shared_preload_libraries: the listener count in shared memory.
 */
void
EventsInit(void)
{
	if (!process_shared_preload_libraries_in_progress)
		return;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = EventsShmemRequest;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = EventsShmemStartup;
}

/*
 * EventsXactCallback
 *		At pre-commit, queue the NOTIFYs the transaction asked for if anyone
 *		listens (or if we cannot tell); forget them at the end.
 */
static void
EventsXactCallback(XactEvent event, void *arg)
{
	ListCell   *lc;

	(void) arg;
	if (event == XACT_EVENT_PRE_COMMIT && pending_notifies != NIL &&
		(listener_state == NULL || pg_atomic_read_u32(&listener_state->listeners) > 0))
	{
		foreach(lc, pending_notifies)
		{
			char		buf[32];

			snprintf(buf, sizeof(buf), INT64_FORMAT, ((PendingNotify *) lfirst(lc))->order_id);
			Async_Notify("order_ext", buf);
		}
	}
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PREPARE || event == XACT_EVENT_PRE_COMMIT ||
		event == XACT_EVENT_PRE_PREPARE)
		pending_notifies = NIL; /* the list lives in TopTransactionContext */
}

/*
 * EventsSubXactCallback
 *		A subtransaction that rolls back (ROLLBACK TO SAVEPOINT, a timer or
 *		a payment's subtransaction that failed) takes its NOTIFYs with it;
 *		one that commits hands them to its parent.
 */
static void
EventsSubXactCallback(SubXactEvent event, SubTransactionId mySubid,
					  SubTransactionId parentSubid, void *arg)
{
	int			level = GetCurrentTransactionNestLevel();
	ListCell   *lc;

	(void) mySubid;
	(void) parentSubid;
	(void) arg;
	if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		foreach(lc, pending_notifies)
			if (((PendingNotify *) lfirst(lc))->level >= level)
				pending_notifies = foreach_delete_current(pending_notifies, lc);
	}
	else if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		foreach(lc, pending_notifies)
		{
			PendingNotify *p = lfirst(lc);

			if (p->level >= level)
				p->level = level - 1;
		}
	}
}

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
	OrderEventAppendIn(false, order_id, version, event, from_status, to_status, actor, payload);
}

/*
 * OrderEventAppendIn
 *		The same for a live order, or (archived) for one in the history
 *		tables: its event goes to order_events_history, its outbox row to
 *		the outbox as any other.
 */
void
OrderEventAppendIn(bool archived, int64 order_id, int32 version, const char *event,
				   const char *from_status, const char *to_status,
				   const char *actor, Datum payload)
{
	Oid			argtypes[7] = {INT8OID, INT4OID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, JSONBOID};
	Datum		values[7];
	char		nulls[7] = {' ', ' ', ' ', ' ', ' ', ' ', ' '};
	SPIPlanPtr	plan;
	int			ret;

	plan = TwinPlan(append_plans, archived,
					"WITH " OE_EVENT_CTES_IN("order_ext.order_events{h}", "true", "$1", "$2", "$3",
											 "$4::text", "$5", "$6", "$7")
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
 *		Ask for NOTIFY order_ext, '<order_id>' at commit (see the file
 *		header), unless order_ext.notify is off.  Top-level functions call
 *		this, never triggers (API.md's Citus rules).
 */
void
OrderNotify(int64 order_id)
{
	MemoryContext old;
	PendingNotify *p;

	if (!oe_notify)
		return;
	if (!xact_callback_registered)
	{
		RegisterXactCallback(EventsXactCallback, NULL);
		RegisterSubXactCallback(EventsSubXactCallback, NULL);
		xact_callback_registered = true;
	}
	old = MemoryContextSwitchTo(TopTransactionContext);
	p = palloc(sizeof(PendingNotify));
	p->order_id = order_id;
	p->level = GetCurrentTransactionNestLevel();
	pending_notifies = lappend(pending_notifies, p);
	MemoryContextSwitchTo(old);
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

/*
 * OutboxNotice
 *		An outbox row that is not an order event (refund_due, after-sale
 *		changes): written in the caller's transaction and announced like
 *		the events.  version is the order version it refers to, or 0 for
 *		none (NULL in the row).  The caller is connected to SPI.
 */
void
OutboxNotice(int64 order_id, int32 version, const char *event, Datum payload)
{
	static SPIPlanPtr notice_plan = NULL;
	Oid			argtypes[4] = {INT8OID, INT4OID, TEXTOID, JSONBOID};
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	SPIPlanPtr	plan;
	int			ret;

	plan = OrderPlan(&notice_plan,
					 "INSERT INTO order_ext.outbox (order_id, version, event, payload, created_at)"
					 " VALUES ($1, $2, $3, $4, now())",
					 4, argtypes);
	values[0] = Int64GetDatum(order_id);
	values[1] = Int32GetDatum(version);
	if (version == 0)
		nulls[1] = 'n';
	values[2] = CStringGetTextDatum(event);
	values[3] = payload;
	ret = SPI_execute_plan(plan, values, nulls, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "could not write outbox notice: %s", SPI_result_code_string(ret));
	OrderNotify(order_id);
}
