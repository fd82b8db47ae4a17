/*
 * worker.h
 *		The background worker (worker.c) and the helpers archive.c shares
 *		with it: transactions of a background process, the run log.
 */
#ifndef ORDER_EXT_WORKER_H
#define ORDER_EXT_WORKER_H

#include <signal.h>

#include "nodes/parsenodes.h"
#include "postmaster/bgworker.h"

extern void WorkerInit(void);
extern void WorkerBeforeDropdb(DropdbStmt *stmt, bool isTopLevel);
extern void WorkerBeforeDropExtension(DropStmt *stmt);
extern void WorkerBeforeDatabaseCopyOrRename(Node *stmt, bool isTopLevel);
extern void BgWorkerFill(BackgroundWorker *worker, const char *function, const char *type, Datum arg);
extern void BgPinSettings(void);

/* a transaction of a background process, with SPI connected */
extern void BgXactBegin(void);
extern void BgXactCommit(void);
extern ErrorData *BgXactAbort(MemoryContext cxt);

/* SIGTERM of a background process: stop at the next interrupt check */
extern volatile sig_atomic_t oe_stop_requested;
extern void BgSigterm(SIGNAL_ARGS);

/* order_ext.worker_runs: one row per run */
extern int64 RunsBegin(const char *source);
extern void RunsEnd(int64 run_id, const char *status, const char *results, const char *message);

#endif
