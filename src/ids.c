/*
 * ids.c
 *		Order ids: new_order_id(), order_id_time(), min_order_id().
 *
 * Owns: the id layout and the shared-memory generator state.
 *
 * An id is | 41 bits: ms since 2020-01-01 UTC | 10 bits: node | 12 bits: seq |.
 * The generator keeps one 64-bit word in shared memory, (ms << 12) | seq of
 * the last id issued, and advances it with compare-and-swap, so concurrent
 * backends never collide and ids are strictly increasing within a server.
 * If the clock steps back the generator keeps counting from the last ms it
 * issued (borrowing the next ms when a ms's 4096 sequence numbers run out).
 *
 * Restarts: before any id of a ms beyond the "horizon" is handed out, the
 * horizon is moved OE_ID_HORIZON_STEP_MS ahead and written durably to
 * $PGDATA/order_ext_ids.state.  At start-up the generator resumes from that
 * horizon, so no id issued before a crash can be issued again, whatever the
 * clock says after the restart.
 *
 * A server that starts from a backup or as a standby (standby.signal,
 * recovery.signal or backup_label) has no such file of the server whose ids it replays, or
 * an old one: the ids that server issued just ahead of the clock, or that
 * create_order took ahead of it (OrderIdClaim), are in the tables but not
 * in this generator.  So its first id after recovery starts no earlier
 * than OE_ID_AHEAD_MS past the clock, beyond any id another server could
 * have taken (id_state->floor_pending).  A restore by COPY (pg_restore)
 * moves the generator past the ids it brings in (OrderIdSeen).
 *
 * Writing the file durably takes fsyncs, under a lock every id-issuing
 * backend would queue on; while the disk is busy (a checkpoint, archiving,
 * new WAL segments) an fsync took tens of milliseconds, which create_order's
 * tail showed (docs/archive-benchmark.md).  So the launcher (worker.c) keeps
 * the horizon ahead while ids are being issued (OrderIdsKeepAhead): a
 * backend writes the file itself only when it runs into the horizon, which
 * with the launcher running happens after an idle spell, or where the
 * launcher cannot keep up.
 */
#include "postgres.h"

#include <unistd.h>
#include <fcntl.h>

#include "access/xlog.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "order_ext.h"

#define OE_ID_STATE_FILE		"order_ext_ids.state"
#define OE_ID_HORIZON_STEP_MS	4000
/* the launcher moves the horizon on when ids come within this of it */
#define OE_ID_HORIZON_AHEAD_MS	2000

typedef struct OrderIdState
{
	pg_atomic_uint64 last;		/* (ms << 12) | seq of the last id issued */
	pg_atomic_uint64 horizon;	/* ids with ms < horizon are covered on disk */
	uint64		resumed;		/* 'last' at start-up: no id issued while equal */
	pg_atomic_uint32 floor_pending; /* started in recovery from a backup: see above */
	LWLock	   *lock;			/* serialises writes of the state file */
} OrderIdState;

/* a caller-supplied id may be this far ahead of the clock (OrderIdClaim) */
#define OE_ID_AHEAD_MS	10000	/* a restart resumes ids up to OE_ID_HORIZON_STEP_MS ahead, plus clock skew */

static OrderIdState *id_state = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

PG_FUNCTION_INFO_V1(new_order_id);
PG_FUNCTION_INFO_V1(order_id_time);
PG_FUNCTION_INFO_V1(min_order_id);

static void OrderIdShmemRequest(void);
static void OrderIdShmemStartup(void);
static void MoveHorizon(uint64 horizon);

/*
 * OrderIdsInit
 *		Ask for shared memory when loaded by shared_preload_libraries.
 */
void
OrderIdsInit(void)
{
	if (!process_shared_preload_libraries_in_progress)
		return;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = OrderIdShmemRequest;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = OrderIdShmemStartup;
}

static void
OrderIdShmemRequest(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(OrderIdState)));
	RequestNamedLWLockTranche("order_ext_ids", 1);
}

/*
 * ReadHorizonFile
 *		The horizon saved by the previous server run, or 0 if there is none.
 */
static uint64
ReadHorizonFile(void)
{
	FILE	   *f;
	unsigned long long v = 0;

	f = AllocateFile(OE_ID_STATE_FILE, "r");
	if (f == NULL)
	{
		if (errno != ENOENT)
			ereport(FATAL,
					(errcode_for_file_access(),
					 errmsg("could not read order id state file \"%s\": %m",
							OE_ID_STATE_FILE)));
		return 0;
	}
	if (fscanf(f, "%llu", &v) != 1)
		ereport(FATAL,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("order id state file \"%s\" is corrupt", OE_ID_STATE_FILE),
				 errhint("If the server clock is right, remove the file; order ids then restart from the current time.")));
	FreeFile(f);
	return (uint64) v;
}

/*
 * WriteHorizonFile
 *		Durably record that ids up to (not including) ms 'horizon' may exist.
 */
static void
WriteHorizonFile(uint64 horizon)
{
	char		tmp[MAXPGPATH];
	char		buf[32];
	int			fd;
	int			len;

	snprintf(tmp, sizeof(tmp), "%s.tmp", OE_ID_STATE_FILE);
	len = snprintf(buf, sizeof(buf), "%llu\n", (unsigned long long) horizon);
	fd = OpenTransientFile(tmp, O_WRONLY | O_CREAT | O_TRUNC | PG_BINARY);
	if (fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not create order id state file \"%s\": %m", tmp)));
	errno = 0;
	if (write(fd, buf, len) != len)
	{
		if (errno == 0)
			errno = ENOSPC;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not write order id state file \"%s\": %m", tmp)));
	}
	/* durable_rename fsyncs it, renames it, and fsyncs the directory */
	if (CloseTransientFile(fd) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not close order id state file \"%s\": %m", tmp)));
	durable_rename(tmp, OE_ID_STATE_FILE, ERROR);
}

static void
OrderIdShmemStartup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	id_state = ShmemInitStruct("order_ext ids", sizeof(OrderIdState), &found);
	if (!found)
	{
		uint64		horizon = ReadHorizonFile();

		/* Resume after everything a previous run may have issued. */
		pg_atomic_init_u64(&id_state->last, horizon << OE_ID_SEQ_BITS);
		pg_atomic_init_u64(&id_state->horizon, horizon);
		id_state->resumed = horizon << OE_ID_SEQ_BITS;
		/* (the postmaster runs in the data directory) */
		pg_atomic_init_u32(&id_state->floor_pending,
						   access(STANDBY_SIGNAL_FILE, F_OK) == 0 ||
						   access(RECOVERY_SIGNAL_FILE, F_OK) == 0 ||
						   access(BACKUP_LABEL_FILE, F_OK) == 0);
		id_state->lock = &(GetNamedLWLockTranche("order_ext_ids"))->lock;
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * NowMs
 *		Milliseconds since the id epoch by the system clock (0 if before it).
 */
static uint64
NowMs(void)
{
	TimestampTz now = GetCurrentTimestamp();

	if (now <= OE_ID_EPOCH)
		return 0;
	return (uint64) ((now - OE_ID_EPOCH) / 1000);
}

/*
 * NextHorizon
 *		Where to move the horizon when ids reach ms: OE_ID_HORIZON_STEP_MS
 *		past the clock, or OE_ID_HORIZON_NEAR_MS past ms if that is further.
 *		Not OE_ID_HORIZON_STEP_MS past ms: after a restart the ids resume at
 *		the old horizon, up to that step ahead of the clock, and a step past
 *		them would have the next start resume further ahead still, a server
 *		restarting again and again pushing its ids ever further ahead of the
 *		clock (4 s a start).  The near step is shorter than any restart
 *		takes, so restarts cannot add it up; and while ids run ahead of the
 *		clock (after a start, a caller's id ahead of it, a clock stepped
 *		back) it still covers about 262,000 ids (64 ms of 4096) per write.
 */
#define OE_ID_HORIZON_NEAR_MS	64

static uint64
NextHorizon(uint64 ms)
{
	return Max(ms + OE_ID_HORIZON_NEAR_MS, NowMs() + OE_ID_HORIZON_STEP_MS);
}

/*
 * ExtendHorizon
 *		Make sure ms is below the durable horizon before an id of it is used.
 */
static void
ExtendHorizon(uint64 ms)
{
	LWLockAcquire(id_state->lock, LW_EXCLUSIVE);
	if (ms >= pg_atomic_read_u64(&id_state->horizon))
		MoveHorizon(NextHorizon(ms));
	LWLockRelease(id_state->lock);
}

/*
 * MoveHorizon
 *		With the lock held: the horizon to 'horizon' if that is further on,
 *		on disk first, then for the backends.
 */
static void
MoveHorizon(uint64 horizon)
{
	if (horizon <= pg_atomic_read_u64(&id_state->horizon))
		return;
	WriteHorizonFile(horizon);
	pg_atomic_write_u64(&id_state->horizon, horizon);
}

/*
 * OrderIdsKeepAhead
 *		Called by the launcher about every OE_ID_KEEP_AHEAD_INTERVAL_MS: while
 *		ids are being issued (the last one is within OE_ID_HORIZON_AHEAD_MS
 *		of the horizon), move the horizon on (NextHorizon), so that no
 *		backend has to.  Ids not
 *		being issued, it writes nothing; nor before the first id since
 *		start-up (which resumes at the horizon: moving it then would push
 *		the ids of a server that restarts again and again ever further
 *		ahead of the clock).  Never waits for the lock: a backend holding
 *		it is writing the file already.
 */
void
OrderIdsKeepAhead(void)
{
	uint64		last;
	uint64		last_ms;

	if (id_state == NULL)
		return;
	last = pg_atomic_read_u64(&id_state->last);
	if (last == id_state->resumed)
		return;
	last_ms = last >> OE_ID_SEQ_BITS;
	if (last_ms + OE_ID_HORIZON_AHEAD_MS < pg_atomic_read_u64(&id_state->horizon))
		return;
	if (!LWLockConditionalAcquire(id_state->lock, LW_EXCLUSIVE))
		return;
	MoveHorizon(NextHorizon(last_ms));
	LWLockRelease(id_state->lock);
}

/*
 * new_order_id
 *		A new, unique, time-ordered order id.
 */
Datum
new_order_id(PG_FUNCTION_ARGS)
{
	uint64		now_ms;
	uint64		old;
	uint64		next;
	uint64		ms;

	if (id_state == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("order_ext.new_order_id() needs order_ext in shared_preload_libraries"),
				 errdetail("Order ids are issued from shared memory so that concurrent sessions never collide."),
				 errhint("Add order_ext to shared_preload_libraries in postgresql.conf and restart the server.")));

	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("order_ext.new_order_id() cannot run during recovery"),
				 errdetail("A standby shares the primary's order_ext.node_id, and neither sees the ids the other issues."),
				 errhint("Ask the primary for order ids.")));

	now_ms = NowMs();
	if (unlikely(pg_atomic_read_u32(&id_state->floor_pending) != 0))
	{
		/* the first ids after recovery from a backup: past any taken ahead */
		OrderIdSeen((int64) (((now_ms + OE_ID_AHEAD_MS) << OE_ID_TIME_SHIFT) |
							 ((uint64) oe_node_id << OE_ID_SEQ_BITS)));
		pg_atomic_write_u32(&id_state->floor_pending, 0);
	}
	old = pg_atomic_read_u64(&id_state->last);
	for (;;)
	{
		uint64		old_ms = old >> OE_ID_SEQ_BITS;

		if (now_ms > old_ms)
			next = now_ms << OE_ID_SEQ_BITS;
		else if ((old & OE_ID_SEQ_MASK) < OE_ID_SEQ_MASK)
			next = old + 1;
		else
			next = (old_ms + 1) << OE_ID_SEQ_BITS;
		if (pg_atomic_compare_exchange_u64(&id_state->last, &old, next))
			break;
	}

	ms = next >> OE_ID_SEQ_BITS;
	if (ms > (uint64) OE_ID_MAX_MS)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("order id time is beyond the range of the id layout")));
	if (ms >= pg_atomic_read_u64(&id_state->horizon))
		ExtendHorizon(ms);

	PG_RETURN_INT64((int64) ((ms << OE_ID_TIME_SHIFT) |
							 ((uint64) oe_node_id << OE_ID_SEQ_BITS) |
							 (next & OE_ID_SEQ_MASK)));
}

/*
 * OrderIdClaim
 *		Check a caller-supplied id of a new order (create_order), and keep
 *		new_order_id() from ever handing it out.  An id ahead of the clock by
 *		more than OE_ID_AHEAD_MS, and past the last id this server issued
 *		(a clock stepped back leaves those ahead of it), is refused: it
 *		could collide with an id issued later, and would put the order in a
 *		month to come.  One of this node's ids past the generator's last
 *		moves the generator past it (and the durable horizon with it).
 */
void
OrderIdClaim(int64 order_id)
{
	uint64		ms = (uint64) order_id >> OE_ID_TIME_SHIFT;
	bool		ours = (((uint64) order_id >> OE_ID_SEQ_BITS) & OE_ID_MAX_NODE) == (uint64) oe_node_id;
	uint64		word = (ms << OE_ID_SEQ_BITS) | ((uint64) order_id & OE_ID_SEQ_MASK);
	uint64		last = id_state != NULL ? pg_atomic_read_u64(&id_state->last) : 0;

	if (ms > NowMs() + OE_ID_AHEAD_MS && !(ours && id_state != NULL && word <= last))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("order_id " INT64_FORMAT " is ahead of the clock", order_id),
				 errdetail("Its time is %s; ids of times to come are new_order_id()'s, and one taken"
						   " now could be issued again.",
						   timestamptz_to_str(OrderIdTime(order_id))),
				 errhint("Get one from order_ext.new_order_id(); ids of past times may be supplied"
						 " (importing history).")));
	OrderIdSeen(order_id);
}

/*
 * OrderIdSeen
 *		An id that is in the tables now (taken by create_order, or restored):
 *		if it is one of this node's and past the generator's last, move the
 *		generator past it (and the durable horizon with it), so that
 *		new_order_id() never hands it out.
 */
void
OrderIdSeen(int64 order_id)
{
	uint64		ms = (uint64) order_id >> OE_ID_TIME_SHIFT;
	bool		ours = (((uint64) order_id >> OE_ID_SEQ_BITS) & OE_ID_MAX_NODE) == (uint64) oe_node_id;
	uint64		word = (ms << OE_ID_SEQ_BITS) | ((uint64) order_id & OE_ID_SEQ_MASK);
	uint64		last;

	if (!ours || id_state == NULL || RecoveryInProgress() || ms > (uint64) OE_ID_MAX_MS)
		return;
	last = pg_atomic_read_u64(&id_state->last);
	while (word > last)
		if (pg_atomic_compare_exchange_u64(&id_state->last, &last, word))
			break;
	if (ms >= pg_atomic_read_u64(&id_state->horizon))
		ExtendHorizon(ms);
}

/*
 * OrderIdTime
 *		The creation time encoded in an order id.
 */
TimestampTz
OrderIdTime(int64 order_id)
{
	if (order_id < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("order_id must not be negative"),
				 errdetail("Got %lld.", (long long) order_id)));
	return OE_ID_EPOCH + (order_id >> OE_ID_TIME_SHIFT) * 1000;
}

/*
 * OrderIdMinForTime
 *		The smallest id that could be issued at time t.
 */
int64
OrderIdMinForTime(TimestampTz t)
{
	int64		us;
	int64		ms;

	if (TIMESTAMP_NOT_FINITE(t))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("order id time must be finite")));
	us = t - OE_ID_EPOCH;
	ms = us / 1000 - ((us % 1000 < 0) ? 1 : 0);	/* floor */
	if (ms < 0 || ms > OE_ID_MAX_MS)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("order id time %s is outside the id range",
						timestamptz_to_str(t)),
				 errdetail("Order ids encode times from 2020-01-01 00:00:00 UTC to 2089-09-06 UTC.")));
	return ms << OE_ID_TIME_SHIFT;
}

Datum
order_id_time(PG_FUNCTION_ARGS)
{
	PG_RETURN_TIMESTAMPTZ(OrderIdTime(PG_GETARG_INT64(0)));
}

Datum
min_order_id(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(OrderIdMinForTime(PG_GETARG_TIMESTAMPTZ(0)));
}
