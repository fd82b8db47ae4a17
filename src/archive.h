/*
 * archive.h
 *		Archiving history orders (archive.c).
 */
#ifndef ORDER_EXT_ARCHIVE_H
#define ORDER_EXT_ARCHIVE_H

#include "utils/timestamp.h"

extern int	oe_archive_pause_ms;
extern bool oe_archive_yield;
extern bool oe_archive_statements;

extern void ArchiveNice(void);
extern bool ArchiveCovers(int64 order_id);
extern int64 ArchiveRun(const Interval *older_than, int32 batch_size, int32 pause_ms,
						bool yield, bool statements, bool wait_for_lock, bool *skipped);

#endif
