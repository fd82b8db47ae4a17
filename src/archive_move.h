/*
 * archive_move.h
 *		Moving one batch of a month's orders to history at the table-access
 *		level (archive_move.c).
 */
#ifndef ORDER_EXT_ARCHIVE_MOVE_H
#define ORDER_EXT_ARCHIVE_MOVE_H

#include "postgres.h"

#include "machine.h"
#include "utils/rel.h"

#define ARCHIVE_MAX_TABLES	16

/*
 * An after-sale (row alias a) that can still move, so its order stays live:
 * its status is not in K, the text[] of terminal 'machine/status' pairs.
 * The one definition for the whole-month check, the batch statements and
 * the mover's probe.
 */
#define AFTER_SALE_CAN_MOVE(K) "('" AFTER_SALE_MACHINE "/' || a.status) <> ALL (" K ")"

/* What a batch mover needs to know of a run and a month. */
typedef struct ArchiveMoveSpec
{
	int			ntables;		/* order tables, orders first */
	const char *live[ARCHIVE_MAX_TABLES];	/* this month's live partition; NULL if none */
	const char *hist[ARCHIVE_MAX_TABLES];	/* and its history partition */
	Datum		terminal;		/* text[] of 'machine/status' that are terminal (after-sales) */
} ArchiveMoveSpec;

/* Outcome of ArchiveMoveBatch */
typedef struct ArchiveMoveResult
{
	bool		done;			/* no order left in the window */
	int64		last;			/* the window's last order id (the next batch starts after it) */
	int64		moved;			/* orders moved */
} ArchiveMoveResult;

extern bool ArchiveMonthFinished(const char *live, int64 *count);
extern const char *ArchiveColumnMap(Relation live, Relation hist, AttrNumber *map);
extern const char *ArchiveMoveBatch(const ArchiveMoveSpec *spec, int64 after, int64 upper,
									int32 batch_size, ArchiveMoveResult *result);

/* archive.c */
extern void ArchiveYieldPoint(void);
extern void ArchiveYieldRows(int rows);

#endif
