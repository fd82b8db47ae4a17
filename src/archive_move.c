/*
 * archive_move.c
 *		One batch of archive()'s batch path at the table-access level: pick
 *		the next batch_size orders of a month by primary key, delete the
 *		archivable ones and their child rows from the live partitions, and
 *		insert them into the history partitions with multi-row inserts.
 *
 * Owns: the batch mover.  archive.c decides what a batch is (the window,
 * the month, the transaction) and falls back to its SQL statements (DELETE
 * ... RETURNING into INSERT) whenever this mover says it cannot take the
 * month as it is: user triggers, rules or row-level security on the tables,
 * a history column that differs from its live one, missing privileges.
 * Those statements do the same thing with the executor's generality; this
 * does it without a plan, a tuple store or one index descent per order id,
 * which is most of the archiver's CPU (see docs/archive-benchmark.md, "The
 * mover") and so most of what it takes from live traffic.
 *
 * What a batch does, in the caller's transaction:
 *   1. An index range scan of the live orders partition's primary key after
 *      the previous window, under the transaction's snapshot: up to
 *      batch_size orders, each noted with whether its status is terminal.
 *   2. One range query of order_ext.after_sales over the window: orders with
 *      a request that can still move stay live (as ARCHIVABLE in archive.c).
 *   3. Each archivable order row is deleted by its tuple id.  If it changed
 *      since step 1 (a concurrent fire(), say), the delete reports so and
 *      the order stays for the next run; otherwise the deleted row is copied
 *      to history.  Deleting locks it: every writer of an order's rows locks
 *      the order row first, so from here on nobody adds a child row to it.
 *   4. With a fresh snapshot (it sees every child row committed before the
 *      order rows were locked), an index range scan of each child table's
 *      primary key over the moved orders' ids moves the rows of exactly those
 *      orders.  A child row that changed meanwhile is an error: the batch
 *      rolls back whole, and the run fails rather than split an order.
 * Inserts go through table_multi_insert() in buffers of up to MOVE_BUFFER
 * rows or MOVE_BUFFER_BYTES, then every index of the history partition gets
 * its entries (unique and exclusion checks included), and its NOT NULL and
 * CHECK constraints are checked on every row first, as an INSERT would.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/relscan.h"
#include "access/sysattr.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_am.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "nodes/execnodes.h"
#include "optimizer/optimizer.h"
#include "storage/bufmgr.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "archive_move.h"
#include "machine.h"

/*
 * A buffer of 128 rows moved a month 10% faster than one of 1000 (and 5%
 * faster than one of 64); presumably its slots and rows stay in the CPU's caches from
 * the heap insert to the index inserts, and a batch makes fewer slots.
 */
#define MOVE_BUFFER			128
#define MOVE_BUFFER_BYTES	(64 * 1024)
/*
 * Rows per table_multi_insert() call of a flush, with a yield point between
 * calls: a whole buffer's heap insert took about 0.6 ms without one, the
 * longest stretch of a batch without a look for waiting live work (the page
 * being filled stays pinned in the bulk-insert state from one call to the
 * next, so the rows fill the same pages as in one call).
 */
#define MOVE_INSERT_CHUNK	64

/* One order table of the month, opened for a batch. */
typedef struct MoveTable
{
	Relation	live;
	Relation	hist;
	Relation	pk;				/* the live partition's primary key, order_id first */
	AttrNumber	id_attno;		/* order_id in live */
	AttrNumber *map;			/* hist attno - 1 -> live attno; 0: dropped in hist */
	bool		aligned;		/* every hist column has its live column's number */
	bool		same;			/* hist rows are laid out as live rows: copy them */
	bool		constrained;	/* hist has a constraint live rows may break */
	ResultRelInfo *rri;
	TupleDesc	buf_desc;		/* hist's, unpinned: one pin per buffer slot is slow */
	TupleTableSlot *scan;		/* live rows */
	TupleTableSlot *buf[MOVE_BUFFER];	/* history rows waiting for the insert */
	int			nbuf;
	int			nslots;			/* of buf[], made so far */
	Size		bytes;
	BulkInsertState bistate;
} MoveTable;

/* The last (machine, status) pair IsTerminal() answered for */
typedef struct TerminalMemo
{
	bool		valid;
	bool		terminal;
	char		machine[OE_NAME_LEN];
	char		status[OE_NAME_LEN];
} TerminalMemo;

/* The orders table's extras: where machine and status are */
typedef struct MoveOrders
{
	AttrNumber	machine_attno;
	AttrNumber	status_attno;
} MoveOrders;

static int
cmp_int64(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return (x > y) - (x < y);
}

/*
 * IsTerminal
 *		Whether an order's machine and status (text datums) are a terminal
 *		pair, by the machine cache (machine.c).  Most orders of a month end
 *		the same way, so the last pair's answer is kept in *memo.
 */
static bool
IsTerminal(TerminalMemo *memo, Datum machine, Datum status)
{
	text	   *mt = DatumGetTextPP(machine);
	text	   *st = DatumGetTextPP(status);
	char		m[OE_NAME_LEN];
	char		s[OE_NAME_LEN];
	const MachineDef *def;

	/* longer names than machines may have: no machine of ours */
	if (VARSIZE_ANY_EXHDR(mt) >= OE_NAME_LEN || VARSIZE_ANY_EXHDR(st) >= OE_NAME_LEN)
		return false;
	text_to_cstring_buffer(mt, m, sizeof(m));
	text_to_cstring_buffer(st, s, sizeof(s));
	if (memo->valid && strcmp(m, memo->machine) == 0 && strcmp(s, memo->status) == 0)
		return memo->terminal;
	def = MachineLookup(m);
	memo->terminal = def != NULL && MachineIsTerminal(def, s);
	strlcpy(memo->machine, m, sizeof(memo->machine));
	strlcpy(memo->status, s, sizeof(memo->status));
	memo->valid = true;
	return memo->terminal;
}

/* The attribute number of column 'name' of rel, or 0 (if of another type too) */
static AttrNumber
ColumnOf(Relation rel, const char *name, Oid type)
{
	TupleDesc	desc = RelationGetDescr(rel);
	int			i;

	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute a = TupleDescAttr(desc, i);

		if (!a->attisdropped && strcmp(NameStr(a->attname), name) == 0)
			return a->atttypid == type ? a->attnum : 0;
	}
	return 0;
}

/*
 * TriggersOrRules
 *		Whether rel has triggers of the kind the statements would fire
 *		(DELETE on live, INSERT on history), rules, or row-level security.
 */
static bool
TriggersOrRules(Relation rel, bool deleting)
{
	TriggerDesc *td = rel->trigdesc;

	if (rel->rd_rel->relhasrules || rel->rd_rel->relrowsecurity)
		return true;
	if (td == NULL)
		return false;
	if (deleting)
		return td->trig_delete_before_row || td->trig_delete_after_row ||
			td->trig_delete_instead_row || td->trig_delete_before_statement ||
			td->trig_delete_after_statement;
	return td->trig_insert_before_row || td->trig_insert_after_row ||
		td->trig_insert_instead_row || td->trig_insert_before_statement ||
		td->trig_insert_after_statement;
}

/*
 * ArchiveColumnMap
 *		Whether the rows of live fit hist column for column: every column
 *		of hist is a column of live of its name, of the same type, typmod
 *		and collation, and every column of live is one of hist's (what
 *		ATTACH PARTITION asks of the columns, and what the mover needs).
 *		NULL, or why not; with map not NULL, map[i] is the attno in live of
 *		hist's column i + 1 (0 for a dropped one).
 */
const char *
ArchiveColumnMap(Relation live, Relation hist, AttrNumber *map)
{
	TupleDesc	ld = RelationGetDescr(live);
	TupleDesc	hd = RelationGetDescr(hist);
	int			used = 0;
	int			live_cols = 0;
	int			i;
	int			j;

	for (j = 0; j < ld->natts; j++)
		if (!TupleDescAttr(ld, j)->attisdropped)
			live_cols++;
	for (i = 0; i < hd->natts; i++)
	{
		Form_pg_attribute h = TupleDescAttr(hd, i);

		if (map != NULL)
			map[i] = 0;
		if (h->attisdropped)
			continue;
		for (j = 0; j < ld->natts; j++)
		{
			Form_pg_attribute l = TupleDescAttr(ld, j);

			if (!l->attisdropped && strcmp(NameStr(l->attname), NameStr(h->attname)) == 0)
				break;
		}
		if (j == ld->natts)
			return psprintf("column %s of %s is not in %s", NameStr(h->attname),
							RelationGetRelationName(hist), RelationGetRelationName(live));
		if (TupleDescAttr(ld, j)->atttypid != h->atttypid ||
			TupleDescAttr(ld, j)->atttypmod != h->atttypmod ||
			TupleDescAttr(ld, j)->attcollation != h->attcollation)
			return psprintf("column %s of %s differs from its live twin's", NameStr(h->attname),
							RelationGetRelationName(hist));
		if (map != NULL)
			map[i] = j + 1;
		used++;
	}
	if (used != live_cols)
		return psprintf("%s has columns that %s lacks", RelationGetRelationName(live),
						RelationGetRelationName(hist));
	return NULL;
}

/*
 * MapColumns
 *		mt->map (and mt->same): every history column from the live column of
 *		its name (ArchiveColumnMap), none generated.  NULL, or why not.
 */
static const char *
MapColumns(MoveTable *mt)
{
	TupleDesc	ld = RelationGetDescr(mt->live);
	TupleDesc	hd = RelationGetDescr(mt->hist);
	const char *why;
	int			i;

	for (i = 0; i < hd->natts; i++)
		if (!TupleDescAttr(hd, i)->attisdropped && TupleDescAttr(hd, i)->attgenerated)
			return psprintf("column %s of %s is generated", NameStr(TupleDescAttr(hd, i)->attname),
							RelationGetRelationName(mt->hist));
	mt->map = palloc0(sizeof(AttrNumber) * Max(hd->natts, 1));
	if ((why = ArchiveColumnMap(mt->live, mt->hist, mt->map)) != NULL)
		return why;
	/* every column has the same number on both sides (hist's dropped ones aside) */
	mt->aligned = ld->natts == hd->natts;
	for (i = 0; i < hd->natts && mt->aligned; i++)
		mt->aligned = TupleDescAttr(hd, i)->attisdropped || mt->map[i] == i + 1;
	/* a live row made before a column was added with a default reads it from ld */
	mt->same = mt->aligned && (ld->constr == NULL || ld->constr->missing == NULL);
	for (i = 0; i < hd->natts && mt->same; i++)
		mt->same = !TupleDescAttr(hd, i)->attisdropped;
	return NULL;
}

/*
 * ReadsMoreThanColumns
 *		Whether a CHECK expression reads tableoid or the whole row, which
 *		differ between a live row and its copy in history.
 */
static bool
ReadsMoreThanColumns(Node *expr)
{
	Bitmapset  *attrs = NULL;
	int			x = -1;

	pull_varattnos(expr, 1, &attrs);
	while ((x = bms_next_member(attrs, x)) >= 0)
		if (x + FirstLowInvalidHeapAttributeNumber <= 0)
			return true;
	return false;
}

/*
 * LiveHasCheck
 *		Whether live has a validated CHECK constraint with the expression of
 *		hist's 'check', read with the same attribute numbers and reading
 *		only columns: every row of live passes it already, so a copy cannot
 *		fail it in hist.
 */
static bool
LiveHasCheck(MoveTable *mt, const ConstrCheck *check)
{
	TupleDesc	ld = RelationGetDescr(mt->live);
	Node	   *expr;
	int			i;

	/* where a column's number differs, the expressions cannot be compared */
	if (ld->constr == NULL || !mt->aligned)
		return false;
	expr = stringToNode(check->ccbin);
	if (ReadsMoreThanColumns(expr))
		return false;
	/* the same text first (a constraint copied as it was); reading trees costs more */
	for (i = 0; i < ld->constr->num_check; i++)
		if (ld->constr->check[i].ccvalid && strcmp(ld->constr->check[i].ccbin, check->ccbin) == 0)
			return true;
	/* equal() compares the trees, not where their text stood in a statement */
	for (i = 0; i < ld->constr->num_check; i++)
		if (ld->constr->check[i].ccvalid && equal(stringToNode(ld->constr->check[i].ccbin), expr))
			return true;
	return false;
}

/*
 * NeedsConstraintCheck
 *		Whether rows copied from live can break a constraint of hist: a CHECK
 *		constraint live does not have (validated, with the same expression),
 *		or a NOT NULL column whose live column may be null.  History tables
 *		are made LIKE their live twins INCLUDING CONSTRAINTS, so usually not:
 *		checking every row again took about a tenth of the mover's CPU
 *		(docs/archive-benchmark.md).  CHECK expressions are immutable, as
 *		PostgreSQL asks of them, so a row that passed one in live passes it
 *		in hist.  One constraint that is not covered checks them all.
 */
static bool
NeedsConstraintCheck(MoveTable *mt)
{
	TupleDesc	hd = RelationGetDescr(mt->hist);
	TupleDesc	ld = RelationGetDescr(mt->live);
	int			i;

	if (hd->constr == NULL)
		return false;
	for (i = 0; i < hd->constr->num_check; i++)
		if (!LiveHasCheck(mt, &hd->constr->check[i]))
			return true;
	for (i = 0; i < hd->natts; i++)
		if (TupleDescAttr(hd, i)->attnotnull &&
			(mt->map[i] == 0 || !TupleDescAttr(ld, mt->map[i] - 1)->attnotnull))
			return true;
	return false;
}

/*
 * MoveTableOpen
 *		Open a month's live and history partition of one table for a batch,
 *		with the locks DELETE and INSERT take.  NULL, or why this mover
 *		cannot move it (the caller then uses the SQL statements).
 */
static const char *
MoveTableOpen(MoveTable *mt, const char *live, const char *hist)
{
	Oid			nsp = get_namespace_oid("order_ext", false);
	Oid			live_oid = get_relname_relid(live, nsp);
	Oid			hist_oid = get_relname_relid(hist, nsp);
	Oid			pk_oid;
	const char *why;
	int			i;

	memset(mt, 0, sizeof(*mt));
	if (!OidIsValid(live_oid) || !OidIsValid(hist_oid))
		return psprintf("%s or %s is gone", live, hist);
	mt->live = table_open(live_oid, RowExclusiveLock);
	mt->hist = table_open(hist_oid, RowExclusiveLock);
	if (mt->live->rd_rel->relkind != RELKIND_RELATION || mt->live->rd_rel->relam != HEAP_TABLE_AM_OID ||
		mt->hist->rd_rel->relkind != RELKIND_RELATION || mt->hist->rd_rel->relam != HEAP_TABLE_AM_OID)
		return psprintf("%s or %s is not a heap table", live, hist);
	if (TriggersOrRules(mt->live, true) || TriggersOrRules(mt->hist, false))
		return psprintf("%s or %s has triggers, rules or row-level security", live, hist);
	/* one privilege per call: given several, pg_class_aclcheck is content with any */
	if (pg_class_aclcheck(live_oid, GetUserId(), ACL_SELECT) != ACLCHECK_OK ||
		pg_class_aclcheck(live_oid, GetUserId(), ACL_DELETE) != ACLCHECK_OK ||
		pg_class_aclcheck(hist_oid, GetUserId(), ACL_INSERT) != ACLCHECK_OK)
		return psprintf("this role may not move rows from %s to %s", live, hist);
	if ((why = MapColumns(mt)) != NULL)
		return why;
	mt->id_attno = ColumnOf(mt->live, "order_id", INT8OID);
	pk_oid = RelationGetPrimaryKeyIndex(mt->live);
	if (mt->id_attno == 0 || !OidIsValid(pk_oid))
		return psprintf("%s has no bigint order_id or no primary key", live);
	mt->pk = index_open(pk_oid, AccessShareLock);
	if (mt->pk->rd_index->indkey.values[0] != mt->id_attno || mt->pk->rd_rel->relam != BTREE_AM_OID)
		return psprintf("the primary key of %s does not start with order_id", live);

	mt->rri = makeNode(ResultRelInfo);
	InitResultRelInfo(mt->rri, mt->hist, 0, NULL, 0);
	ExecOpenIndices(mt->rri, false);
	for (i = 0; i < mt->rri->ri_NumIndices; i++)
		if (!mt->rri->ri_IndexRelationDescs[i]->rd_index->indimmediate)
			return psprintf("%s has a deferrable constraint", hist);
	mt->constrained = NeedsConstraintCheck(mt);
	mt->scan = table_slot_create(mt->live, NULL);
	mt->buf_desc = CreateTupleDescCopy(RelationGetDescr(mt->hist));
	mt->bistate = GetBulkInsertState();
	return NULL;
}

static void
MoveTableClose(MoveTable *mt)
{
	int			i;

	if (mt->bistate != NULL)
		FreeBulkInsertState(mt->bistate);
	for (i = 0; i < mt->nslots; i++)
		ExecDropSingleTupleTableSlot(mt->buf[i]);
	if (mt->scan != NULL)
		ExecDropSingleTupleTableSlot(mt->scan);
	if (mt->rri != NULL)
		ExecCloseIndices(mt->rri);
	if (mt->pk != NULL)
		index_close(mt->pk, AccessShareLock);
	/* the table locks stay until the end of the transaction, as DML's do */
	if (mt->hist != NULL)
		table_close(mt->hist, NoLock);
	if (mt->live != NULL)
		table_close(mt->live, NoLock);
	memset(mt, 0, sizeof(*mt));
}

/*
 * MoveFlush
 *		Insert the buffered history rows and their index entries.
 */
static void
MoveFlush(MoveTable *mt, EState *estate, CommandId cid, MemoryContext flushcxt)
{
	MemoryContext old;
	int			i;

	if (mt->nbuf == 0)
		return;
	old = MemoryContextSwitchTo(flushcxt);
	for (i = 0; i < mt->nbuf; i += MOVE_INSERT_CHUNK)
	{
		int			n = Min(MOVE_INSERT_CHUNK, mt->nbuf - i);

		table_multi_insert(mt->hist, mt->buf + i, n, cid, 0, mt->bistate);
		ArchiveYieldRows(n);
	}
	for (i = 0; i < mt->nbuf; i++)
	{
		if (mt->rri->ri_NumIndices > 0)
		{
			list_free(ExecInsertIndexTuples(mt->rri, mt->buf[i], estate, false, false, NULL, NIL));
			/* a buffer's index entries take milliseconds: look for waiting live work meanwhile */
			ArchiveYieldPoint();
		}
		ExecClearTuple(mt->buf[i]);
		ResetPerTupleExprContext(estate);
	}
	MemoryContextSwitchTo(old);
	MemoryContextReset(flushcxt);
	mt->nbuf = 0;
	mt->bytes = 0;
}

/*
 * MoveRow
 *		Copy the live row in mt->scan to the history buffer (as a history
 *		row, constraints checked), inserting the buffer when full.
 */
static void
MoveRow(MoveTable *mt, EState *estate, CommandId cid, MemoryContext flushcxt)
{
	TupleTableSlot *dst;
	TupleDesc	hd = mt->buf_desc;

	if (mt->nbuf == mt->nslots)
		mt->buf[mt->nslots++] = MakeSingleTupleTableSlot(hd, &TTSOpsHeapTuple);
	dst = mt->buf[mt->nbuf];
	if (mt->same)
		ExecCopySlot(dst, mt->scan);
	else
	{
		int			i;

		slot_getallattrs(mt->scan);
		ExecClearTuple(dst);
		for (i = 0; i < hd->natts; i++)
		{
			AttrNumber	from = mt->map[i];

			dst->tts_isnull[i] = from == 0 || mt->scan->tts_isnull[from - 1];
			dst->tts_values[i] = dst->tts_isnull[i] ? (Datum) 0 : mt->scan->tts_values[from - 1];
		}
		ExecStoreVirtualTuple(dst);
		ExecMaterializeSlot(dst);
	}
	/* a row of hist, also for a CHECK that reads tableoid (the copy carries live's) */
	dst->tts_tableOid = RelationGetRelid(mt->hist);
	if (mt->constrained)
		ExecConstraints(mt->rri, dst, estate);
	mt->nbuf++;
	mt->bytes += ((HeapTupleTableSlot *) dst)->tuple->t_len;
	if (mt->nbuf == MOVE_BUFFER || mt->bytes >= MOVE_BUFFER_BYTES)
		MoveFlush(mt, estate, cid, flushcxt);
}

/*
 * OpenAfterSales
 *		Mark !ok the orders of ids[0..n) with an after-sale that can still
 *		move (the window's one range query; ids ascending).
 */
static void
OpenAfterSales(const ArchiveMoveSpec *spec, const int64 *ids, bool *ok, int n)
{
	static SPIPlanPtr plan = NULL;
	Datum		values[3];
	uint64		i;

	if (plan == NULL)
	{
		Oid			argtypes[3] = {INT8OID, INT8OID, TEXTARRAYOID};
		SPIPlanPtr	p = SPI_prepare("SELECT a.order_id FROM order_ext.after_sales a"
									" WHERE a.order_id >= $1 AND a.order_id <= $2"
									" AND " AFTER_SALE_CAN_MOVE("$3"),
									3, argtypes);

		if (p == NULL || SPI_keepplan(p) != 0)
			elog(ERROR, "could not prepare the after-sales probe: %s", SPI_result_code_string(SPI_result));
		plan = p;
	}
	values[0] = Int64GetDatum(ids[0]);
	values[1] = Int64GetDatum(ids[n - 1]);
	values[2] = spec->terminal;
	if (SPI_execute_plan(plan, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not look up the after-sales of a batch");
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		int64		id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		int64	   *hit = bsearch(&id, ids, n, sizeof(int64), cmp_int64);

		if (hit != NULL)
			ok[hit - ids] = false;
	}
	SPI_freetuptable(SPI_tuptable);
}

/* Begin an index range scan of mt's primary key: order_id in (lo, hi) or [lo, hi]. */
static IndexScanDesc
RangeScan(MoveTable *mt, Snapshot snapshot, int64 lo, int64 hi, bool inclusive, ScanKeyData *keys)
{
	IndexScanDesc scan;

	ScanKeyInit(&keys[0], 1, inclusive ? BTGreaterEqualStrategyNumber : BTGreaterStrategyNumber,
				inclusive ? F_INT8GE : F_INT8GT, Int64GetDatum(lo));
	ScanKeyInit(&keys[1], 1, inclusive ? BTLessEqualStrategyNumber : BTLessStrategyNumber,
				inclusive ? F_INT8LE : F_INT8LT, Int64GetDatum(hi));
	scan = index_beginscan(mt->live, mt->pk, snapshot, 2, 0);
	index_rescan(scan, keys, 2, NULL, 0);
	return scan;
}

static void
CloseAll(MoveTable *tabs, int n, EState *estate)
{
	int			t;

	for (t = 0; t < n; t++)
		MoveTableClose(&tabs[t]);
	FreeExecutorState(estate);
}

/*
 * ArchiveMoveBatch
 *		Move the archivable orders among the next batch_size orders of the
 *		month with ids in (after, upper), with their child rows, in the
 *		caller's transaction (an active snapshot pushed, SPI connected).
 *		Returns NULL with *result filled in, or why this mover cannot move
 *		the month (before it has changed anything).
 */
const char *
ArchiveMoveBatch(const ArchiveMoveSpec *spec, int64 after, int64 upper, int32 batch_size,
				 ArchiveMoveResult *result)
{
	MoveTable  *tabs = palloc0(sizeof(MoveTable) * spec->ntables);
	MoveTable  *ot = &tabs[0];
	EState	   *estate = CreateExecutorState();
	MemoryContext flushcxt = AllocSetContextCreate(CurrentMemoryContext, "order_ext archive flush",
												   ALLOCSET_DEFAULT_SIZES);
	CommandId	cid;
	Snapshot	snapshot = GetActiveSnapshot();
	ScanKeyData keys[2];
	IndexScanDesc scan;
	MoveOrders	o;
	TerminalMemo memo = {0};
	int64	   *ids;
	int64	   *moved;
	ItemPointerData *tids;
	bool	   *ok;
	int			cap = Min(batch_size, 1024);
	int			n = 0;
	int			nmoved = 0;
	int			t;
	int			i;

	memset(result, 0, sizeof(*result));
	for (t = 0; t < spec->ntables; t++)
	{
		const char *why;

		if (spec->live[t] == NULL)
			continue;
		why = MoveTableOpen(&tabs[t], spec->live[t], spec->hist[t]);
		if (why != NULL)
		{
			CloseAll(tabs, spec->ntables, estate);
			return why;
		}
	}
	o.machine_attno = ColumnOf(ot->live, "machine", TEXTOID);
	o.status_attno = ColumnOf(ot->live, "status", TEXTOID);
	if (o.machine_attno == 0 || o.status_attno == 0)
	{
		CloseAll(tabs, spec->ntables, estate);
		return psprintf("%s has no text machine or status", spec->live[0]);
	}

	/* 1. the window: the next batch_size orders */
	ids = palloc(sizeof(int64) * cap);
	tids = palloc(sizeof(ItemPointerData) * cap);
	ok = palloc(sizeof(bool) * cap);
	scan = RangeScan(ot, snapshot, after, upper, false, keys);
	while (n < batch_size && index_getnext_slot(scan, ForwardScanDirection, ot->scan))
	{
		bool		null_id;
		bool		null_machine;
		bool		null_status;
		Datum		id = slot_getattr(ot->scan, ot->id_attno, &null_id);
		Datum		machine = slot_getattr(ot->scan, o.machine_attno, &null_machine);
		Datum		status = slot_getattr(ot->scan, o.status_attno, &null_status);

		if (n == cap)
		{
			cap = Min((int64) cap * 2, batch_size);
			ids = repalloc(ids, sizeof(int64) * cap);
			tids = repalloc(tids, sizeof(ItemPointerData) * cap);
			ok = repalloc(ok, sizeof(bool) * cap);
		}
		ids[n] = DatumGetInt64(id);
		tids[n] = ot->scan->tts_tid;
		ok[n] = !null_id && !null_machine && !null_status && IsTerminal(&memo, machine, status);
		n++;
		ArchiveYieldPoint();
	}
	index_endscan(scan);
	ExecClearTuple(ot->scan);
	if (n == 0)
	{
		result->done = true;
		CloseAll(tabs, spec->ntables, estate);
		return NULL;
	}
	result->last = ids[n - 1];

	/* 2. orders with an after-sale that can still move stay */
	OpenAfterSales(spec, ids, ok, n);

	/* 3. the order rows: delete, and copy what was deleted (as the command after step 2's) */
	cid = GetCurrentCommandId(true);
	moved = palloc(sizeof(int64) * n);
	for (i = 0; i < n; i++)
	{
		TM_FailureData tmfd;
		TM_Result	r;

		if (!ok[i])
			continue;
		CHECK_FOR_INTERRUPTS();
		/*
		 * No wait: an order another transaction holds (a late payment, a
		 * retried create) stays for the next run, rather than the batch
		 * waiting for as long as that transaction stays open while the
		 * orders it already took stay locked against their own callers.
		 */
		r = table_tuple_delete(ot->live, &tids[i], cid, snapshot, InvalidSnapshot, false, &tmfd, false);
		if (r == TM_Updated || r == TM_Deleted || r == TM_BeingModified)
			continue;			/* changed since step 1, or held now: it stays for the next run */
		if (r != TM_Ok)
			elog(ERROR, "could not delete order " INT64_FORMAT " from %s (%d)", ids[i], spec->live[0], (int) r);
		if (!table_tuple_fetch_row_version(ot->live, &tids[i], SnapshotAny, ot->scan))
			elog(ERROR, "could not read order " INT64_FORMAT " of %s", ids[i], spec->live[0]);
		MoveRow(ot, estate, cid, flushcxt);
		moved[nmoved++] = ids[i];
		ArchiveYieldPoint();
	}
	MoveFlush(ot, estate, cid, flushcxt);
	ExecClearTuple(ot->scan);

	/* 4. their child rows, seeing every row committed before the orders were locked */
	if (nmoved > 0)
	{
		CommandCounterIncrement();
		PushActiveSnapshot(GetTransactionSnapshot());
		cid = GetCurrentCommandId(true);
		for (t = 1; t < spec->ntables; t++)
		{
			MoveTable  *mt = &tabs[t];

			if (mt->live == NULL)
				continue;
			scan = RangeScan(mt, GetActiveSnapshot(), moved[0], moved[nmoved - 1], true, keys);
			while (index_getnext_slot(scan, ForwardScanDirection, mt->scan))
			{
				TM_FailureData tmfd;
				TM_Result	r;
				bool		isnull;
				int64		id = DatumGetInt64(slot_getattr(mt->scan, mt->id_attno, &isnull));

				CHECK_FOR_INTERRUPTS();
				if (isnull || bsearch(&id, moved, nmoved, sizeof(int64), cmp_int64) == NULL)
					continue;
				MoveRow(mt, estate, cid, flushcxt);
				r = table_tuple_delete(mt->live, &mt->scan->tts_tid, cid, GetActiveSnapshot(),
									   InvalidSnapshot, true, &tmfd, false);
				if (r != TM_Ok)
					ereport(ERROR,
							(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
							 errmsg("a row of %s of order " INT64_FORMAT " changed while it was archived",
									spec->live[t], id),
							 errdetail("Its order row was locked; whatever changed it did not lock the order first.")));
				ArchiveYieldPoint();
			}
			index_endscan(scan);
			ExecClearTuple(mt->scan);
			MoveFlush(mt, estate, cid, flushcxt);
		}
		PopActiveSnapshot();
	}
	CloseAll(tabs, spec->ntables, estate);
	MemoryContextDelete(flushcxt);
	result->moved = nmoved;
	return NULL;
}

/*
 * ArchiveMonthFinished
 *		Whether every order of the live orders partition 'live' is terminal,
 *		read with a snapshot taken now (so, with the month locked, every
 *		committed row), and how many orders it has.  Stops at the first
 *		unfinished order.  The whole-month path's check: one pass over the
 *		month without the executor, as the batches do.
 */
bool
ArchiveMonthFinished(const char *live, int64 *count)
{
	Oid			relid = get_relname_relid(live, get_namespace_oid("order_ext", false));
	Relation	rel;
	TableScanDesc scan;
	TupleTableSlot *slot;
	Snapshot	snapshot;
	AttrNumber	machine_attno;
	AttrNumber	status_attno;
	bool		finished = true;
	int64		n = 0;
	TerminalMemo memo = {0};

	if (!OidIsValid(relid))
		elog(ERROR, "order_ext.%s does not exist", live);
	rel = table_open(relid, AccessShareLock);
	machine_attno = ColumnOf(rel, "machine", TEXTOID);
	status_attno = ColumnOf(rel, "status", TEXTOID);
	if (machine_attno == 0 || status_attno == 0)
		elog(ERROR, "%s has no text machine or status", live);
	snapshot = RegisterSnapshot(GetLatestSnapshot());
	scan = table_beginscan(rel, snapshot, 0, NULL);
	slot = table_slot_create(rel, NULL);
	while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
	{
		bool		null_machine;
		bool		null_status;
		Datum		machine = slot_getattr(slot, machine_attno, &null_machine);
		Datum		status = slot_getattr(slot, status_attno, &null_status);

		if (null_machine || null_status || !IsTerminal(&memo, machine, status))
		{
			finished = false;
			break;
		}
		if ((++n & 4095) == 0)
			CHECK_FOR_INTERRUPTS();
	}
	ExecDropSingleTupleTableSlot(slot);
	table_endscan(scan);
	UnregisterSnapshot(snapshot);
	table_close(rel, AccessShareLock);
	*count = n;
	return finished;
}
