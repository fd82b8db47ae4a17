/*
 * archive.h
 *		Archiving history orders (archive.c).
 */
#ifndef ORDER_EXT_ARCHIVE_H
#define ORDER_EXT_ARCHIVE_H

#include "utils/timestamp.h"

extern int	oe_archive_pause_ms;
extern int	oe_archive_rest_us;
extern int	oe_archive_rest_every_us;
extern bool oe_archive_yield;
extern bool oe_archive_statements;

/* How a run paces itself: the settings of the session that asks for it. */
typedef struct ArchivePace
{
	int32		pause_ms;		/* order_ext.archive_pause, between batches */
	int32		rest_us;		/* order_ext.archive_rest, inside batches; 0: none */
	int32		rest_every_us;	/* order_ext.archive_rest_every: work between rests */
	bool		yield;			/* order_ext.archive_yield */
	bool		statements;		/* order_ext.archive_statements */
} ArchivePace;

extern void ArchivePaceFromSettings(ArchivePace *pace);
extern void ArchiveNice(void);
extern bool ArchiveCovers(int64 order_id);
extern int64 ArchiveMovedSoFar(void);
extern TimestampTz ArchiveCutoff(const Interval *older_than);
extern int64 ArchiveRun(TimestampTz cutoff, int32 batch_size, const ArchivePace *pace,
						bool wait_for_lock, int budget_ms, bool *skipped);

#endif
