/*
 * order_ext.h
 *		Shared declarations of the order_ext modules: the OE error class,
 *		the GUCs, and the entry points each module offers the others.
 *
 * One C file per concern: ids.c (order ids), partitions.c (monthly
 * partitions), orders.c (create_order), version.c (the version and status
 * guard trigger), jsonin.c (reading request JSON), order_ext.c (_PG_init).
 */
#ifndef ORDER_EXT_H
#define ORDER_EXT_H

#include "postgres.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"
#include "executor/spi.h"
#include "utils/rel.h"
#include "nodes/parsenodes.h"

/*
 * SQLSTATE class OE: the error contract of API.md.  Every user-facing error
 * of order_ext uses one of these or a standard 22xxx code.
 */
#define ERRCODE_OE_TRANSITION		MAKE_SQLSTATE('O','E','0','0','1')	/* transition not allowed */
#define ERRCODE_OE_STALE_VERSION	MAKE_SQLSTATE('O','E','0','0','2')	/* expected_version differs */
#define ERRCODE_OE_OUT_OF_STOCK		MAKE_SQLSTATE('O','E','0','0','3')	/* not enough stock */
#define ERRCODE_OE_REQUEST_MISMATCH MAKE_SQLSTATE('O','E','0','0','4')	/* same id/key, other request */
#define ERRCODE_OE_PURCHASE_LIMIT	MAKE_SQLSTATE('O','E','0','0','5')	/* purchase limit exceeded */
#define ERRCODE_OE_REFUND_EXCEEDS	MAKE_SQLSTATE('O','E','0','0','6')	/* refund exceeds paid */
#define ERRCODE_OE_AMOUNT_INVALID	MAKE_SQLSTATE('O','E','0','0','7')	/* amount invalid */
#define ERRCODE_OE_NOT_FOUND		MAKE_SQLSTATE('O','E','0','0','8')	/* order not found */

/* Order id layout: | 41 bits ms since OE_ID_EPOCH | 10 bits node | 12 bits seq | */
#define OE_ID_SEQ_BITS		12
#define OE_ID_NODE_BITS		10
#define OE_ID_TIME_SHIFT	(OE_ID_SEQ_BITS + OE_ID_NODE_BITS)
#define OE_ID_SEQ_MASK		((UINT64CONST(1) << OE_ID_SEQ_BITS) - 1)
#define OE_ID_MAX_NODE		((1 << OE_ID_NODE_BITS) - 1)
#define OE_ID_MAX_MS		((INT64CONST(1) << 41) - 1)
/* 2020-01-01 00:00:00 UTC as a PostgreSQL timestamp (microseconds since 2000) */
#define OE_ID_EPOCH			INT64CONST(631152000000000)

/* advisory locks: (class, key) pairs of pg_advisory_xact_lock(int, int) */
#define OE_ADVISORY_CLASS		0x4F45	/* "OE" */
#define OE_LOCK_PARTITIONS		1
#define OE_LOCK_ARCHIVE			2	/* one archive run at a time (session lock) */
#define OE_LOCK_WORKER			3	/* one background worker per database (session lock) */
#define OE_LOCK_CONSUMERS		4	/* registrations (shared) against prune_outbox (exclusive) */

/* GUCs (order_ext.c) */
extern int	oe_node_id;
extern bool oe_notify;
extern int	oe_ddl_lock_timeout_ms;
extern int	oe_request_ttl_s;

/* ids.c */
extern void OrderIdsInit(void);
extern void OrderIdsKeepAhead(void);
extern int64 OrderIdMinForTime(TimestampTz t);
extern void OrderIdClaim(int64 order_id);
extern void OrderIdSeen(int64 order_id);
extern TimestampTz OrderIdTime(int64 order_id);

/* How often the launcher calls OrderIdsKeepAhead(), at the most. */
#define OE_ID_KEEP_AHEAD_INTERVAL_MS	250

/* partitions.c */
extern void OrderPartitionsBeforeCopy(CopyStmt *stmt);
extern void OrderIdsAfterCopy(CopyStmt *stmt);
extern Oid	OrderPartitionCheck(Relation rel, int64 order_id);
extern void OrderPartitionRelease(Oid relid);
extern void OrderPartitionAdopt(Oid relid);
extern void RunDDLWithRetry(const char *sql);
extern const char *const OrderTables[];
extern const int OrderTablesCount;

/* order_ext.c: a table's oid cached until its relcache entry is invalidated */
extern Oid	OrderRelid(Oid *cache, const char *name);

/* order_ext.c: a prepared SPI plan kept for the life of the backend */
extern void OrderRefuseReplica(void);
extern SPIPlanPtr OrderPlan(SPIPlanPtr *cache, const char *sql, int nargs, Oid *argtypes);
extern SPIPlanPtr TwinPlan(SPIPlanPtr cache[2], bool archived, const char *sql, int nargs,
						   Oid *argtypes);

/* order_ext.c: run fn(arg) in a subtransaction; NULL or the error it raised */
typedef void (*OrderSubxactFn) (void *arg);
extern ErrorData *OrderSubxact(OrderSubxactFn fn, void *arg);
extern int	IntervalCmpMonths(const Interval *iv, int32 months);
extern char *NameTextArg(FunctionCallInfo fcinfo, int argno);

#endif							/* ORDER_EXT_H */
