/*
 * machine.c
 *		Order state machines as data: a per-backend cache of the definitions
 *		in order_ext.machines, order_ext.transitions and order_ext.timeouts,
 *		rebuilt when those tables change.
 *
 * Owns: looking machines, transitions and timeouts up, and the meaning of
 * the effect names.  Writes to the machine tables fire the statement
 * trigger order_ext.config_changed(), which sends a relcache invalidation
 * for the table; every backend then drops its cache when it next processes
 * invalidations, so another session's INSERT is seen by the next call.  A
 * lookup between two invalidations is a hash probe: no SPI, no catalog.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "machine.h"
#include "order_ext.h"

typedef struct TimeoutEntry
{
	char		key[2 * OE_NAME_LEN];	/* machine \0 status */
	TimeoutDef *first;
} TimeoutEntry;

static const char *const MachineTables[] = {"machines", "transitions", "timeouts"};

static HTAB *machine_hash = NULL;
static HTAB *transition_hash = NULL;
static HTAB *timeout_hash = NULL;
static MemoryContext machine_cxt = NULL;	/* holds the three tables */
static bool machine_valid = false;
static bool callback_registered = false;
static MemoryContext retired_cxt = NULL;	/* parent of replaced tables */
static Oid	machine_relids[lengthof(MachineTables)];

PG_FUNCTION_INFO_V1(config_changed);

/*
 * MachineCacheRetiredFree
 *		At the end of a transaction, free the tables a reload replaced.  They
 *		live until then because callers hold pointers into them across SPI
 *		calls, and any SPI call may process an invalidation and reload.
 */
static void
MachineCacheRetiredFree(XactEvent event, void *arg)
{
	(void) arg;
	if ((event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		 event == XACT_EVENT_PREPARE) && retired_cxt != NULL)
		MemoryContextDeleteChildren(retired_cxt);
}

/*
 * MachineCacheReset
 *		Relcache callback: drop the cache when one of the machine tables (or
 *		everything, InvalidOid) is invalidated.
 */
static void
MachineCacheReset(Datum arg, Oid relid)
{
	int			i;
	bool		ours = !OidIsValid(relid);

	(void) arg;
	for (i = 0; i < (int) lengthof(MachineTables) && !ours; i++)
		ours = (relid == machine_relids[i]);
	if (ours)
		machine_valid = false;	/* freed by the next load, not here: a load may be running */
}

static HTAB *
NewHash(const char *name, Size keysize, Size entrysize)
{
	HASHCTL		ctl;

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = keysize;
	ctl.entrysize = entrysize;
	ctl.hcxt = machine_cxt;
	return hash_create(name, 64, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}

/*
 * MakeKey
 *		A fixed-size, zero-padded key of up to three names.
 */
static void
MakeKey(char *key, const char *a, const char *b, const char *c)
{
	memset(key, 0, (c ? 3 : b ? 2 : 1) * OE_NAME_LEN);
	strlcpy(key, a, OE_NAME_LEN);
	if (b)
		strlcpy(key + OE_NAME_LEN, b, OE_NAME_LEN);
	if (c)
		strlcpy(key + 2 * OE_NAME_LEN, c, OE_NAME_LEN);
}

static bool
NameFits(const char *s)
{
	return strlen(s) < OE_NAME_LEN;
}

/*
 * TextArray
 *		A text[] column as a palloc'd array of C strings in machine_cxt.
 */
static char **
TextArray(Datum d, int *n)
{
	Datum	   *elems;
	bool	   *nulls;
	char	  **out;
	int			i;
	int			k = 0;

	deconstruct_array(DatumGetArrayTypeP(d), TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, &nulls, n);
	out = MemoryContextAlloc(machine_cxt, sizeof(char *) * Max(*n, 1));
	for (i = 0; i < *n; i++)
		if (!nulls[i])
			out[k++] = MemoryContextStrdup(machine_cxt, TextDatumGetCString(elems[i]));
	*n = k;
	return out;
}

/*
 * EffectBits
 *		The effect names of a transition as a bitmask.
 */
static uint32
EffectBits(Datum d)
{
	static const struct
	{
		const char *name;
		uint32		bit;
	}			names[] = {
		{"stamp:paid_at", OE_EFFECT_STAMP_PAID},
		{"stamp:shipped_at", OE_EFFECT_STAMP_SHIPPED},
		{"stamp:received_at", OE_EFFECT_STAMP_RECEIVED},
		{"stamp:completed_at", OE_EFFECT_STAMP_COMPLETED},
		{"stamp:closed_at", OE_EFFECT_STAMP_CLOSED},
		{"merge_attrs", OE_EFFECT_MERGE_ATTRS},
		{"stock:reserve", OE_EFFECT_STOCK_RESERVE},
		{"stock:commit", OE_EFFECT_STOCK_COMMIT},
		{"stock:release", OE_EFFECT_STOCK_RELEASE},
	};
	int			n;
	char	  **effects = TextArray(d, &n);
	uint32		bits = 0;
	int			i;
	int			j;

	for (i = 0; i < n; i++)
	{
		bool		known = false;

		for (j = 0; j < (int) lengthof(names); j++)
			if (strcmp(effects[i], names[j].name) == 0)
			{
				bits |= names[j].bit;
				known = true;
			}
		if (!known)
			elog(ERROR, "unknown effect \"%s\" in order_ext.transitions", effects[i]);
	}
	return bits;
}

/*
 * LatestRead
 *		Run a read-only query with a fresh snapshot.
 */
static int
LatestRead(const char *sql)
{
	SPIPlanPtr	plan = SPI_prepare(sql, 0, NULL);

	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed for \"%s\"", sql);
	return SPI_execute_snapshot(plan, NULL, NULL, GetLatestSnapshot(), InvalidSnapshot,
								true, false, 0);
}

/*
 * MachineCacheLoad
 *		Read all machines, transitions and timeouts into fresh hash tables.
 */
static void
MachineCacheLoad(void)
{
	Oid			nsp = get_namespace_oid("order_ext", false);
	uint64		r;
	int			i;
	bool		isnull;
	bool		found;
	MemoryContext old_cxt;
	HTAB	   *mh;
	HTAB	   *th;
	HTAB	   *toh;

	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(MachineCacheReset, (Datum) 0);
		RegisterXactCallback(MachineCacheRetiredFree, NULL);
		retired_cxt = AllocSetContextCreate(CacheMemoryContext, "order_ext retired machines",
											ALLOCSET_SMALL_SIZES);
		callback_registered = true;
	}
	old_cxt = machine_cxt;
	machine_cxt = AllocSetContextCreate(CacheMemoryContext, "order_ext machines",
										ALLOCSET_DEFAULT_SIZES);
	machine_hash = transition_hash = timeout_hash = NULL;
	/* an invalidation that arrives while we read clears this again */
	machine_valid = true;
	for (i = 0; i < (int) lengthof(MachineTables); i++)
		machine_relids[i] = get_relname_relid(MachineTables[i], nsp);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	/*
	 * Read with the latest snapshot, not the caller's: the cache outlives
	 * this transaction, so it must hold what is committed now (plus this
	 * transaction's own changes), even under REPEATABLE READ.
	 */
	mh = NewHash("order_ext machines", OE_NAME_LEN, sizeof(MachineDef));
	if (LatestRead("SELECT machine, initial_status, terminal_statuses FROM order_ext.machines")
		!= SPI_OK_SELECT)
		elog(ERROR, "could not read order_ext.machines");
	for (r = 0; r < SPI_processed; r++)
	{
		HeapTuple	tup = SPI_tuptable->vals[r];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		char		key[OE_NAME_LEN];
		char	   *name = SPI_getvalue(tup, desc, 1);
		MachineDef *m;

		if (!NameFits(name))
			continue;
		MakeKey(key, name, NULL, NULL);
		m = hash_search(mh, key, HASH_ENTER, &found);
		m->stock_reopens = false;
		strlcpy(m->initial_status, SPI_getvalue(tup, desc, 2), OE_NAME_LEN);
		m->terminal = TextArray(SPI_getbinval(tup, desc, 3, &isnull), &m->nterminal);
	}

	th = NewHash("order_ext transitions", 3 * OE_NAME_LEN, sizeof(TransitionDef));
	if (LatestRead("SELECT machine, from_status, event, to_status, actors, effects, requires"
				   " FROM order_ext.transitions ORDER BY id") != SPI_OK_SELECT)
		elog(ERROR, "could not read order_ext.transitions");
	for (r = 0; r < SPI_processed; r++)
	{
		HeapTuple	tup = SPI_tuptable->vals[r];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		char		key[3 * OE_NAME_LEN];
		TransitionDef *t;
		Datum		req;

		MakeKey(key, SPI_getvalue(tup, desc, 1), SPI_getvalue(tup, desc, 2),
				SPI_getvalue(tup, desc, 3));
		t = hash_search(th, key, HASH_ENTER, &found);
		if (found)
		{
			t->count++;
			continue;
		}
		t->count = 1;
		strlcpy(t->to_status, SPI_getvalue(tup, desc, 4), OE_NAME_LEN);
		t->actors = TextArray(SPI_getbinval(tup, desc, 5, &isnull), &t->nactors);
		t->effects = EffectBits(SPI_getbinval(tup, desc, 6, &isnull));
		{
			char		mkey[OE_NAME_LEN];
			MachineDef *m;

			MakeKey(mkey, SPI_getvalue(tup, desc, 1), NULL, NULL);
			m = hash_search(mh, mkey, HASH_FIND, NULL);
			if (m != NULL &&
				(((t->effects & OE_EFFECT_STOCK_RELEASE) && !MachineIsTerminal(m, t->to_status)) ||
				 MachineIsTerminal(m, SPI_getvalue(tup, desc, 2))))
				m->stock_reopens = true;
		}
		req = SPI_getbinval(tup, desc, 7, &isnull);
		if (isnull)
			t->requires = NULL;
		else
		{
			Jsonb	   *j = DatumGetJsonbP(req);

			t->requires = MemoryContextAlloc(machine_cxt, VARSIZE(j));
			memcpy(t->requires, j, VARSIZE(j));
		}
	}

	toh = NewHash("order_ext timeouts", 2 * OE_NAME_LEN, sizeof(TimeoutEntry));
	if (LatestRead("SELECT machine, status, after, event FROM order_ext.timeouts"
				   " ORDER BY machine, status, event") != SPI_OK_SELECT)
		elog(ERROR, "could not read order_ext.timeouts");
	for (r = 0; r < SPI_processed; r++)
	{
		HeapTuple	tup = SPI_tuptable->vals[r];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		char		key[2 * OE_NAME_LEN];
		char	   *machine = SPI_getvalue(tup, desc, 1);
		char	   *status = SPI_getvalue(tup, desc, 2);
		char	   *event = SPI_getvalue(tup, desc, 4);
		TimeoutEntry *e;
		TimeoutDef *d;

		if (!NameFits(machine) || !NameFits(status) || !NameFits(event))
			continue;
		MakeKey(key, machine, status, NULL);
		e = hash_search(toh, key, HASH_ENTER, &found);
		if (!found)
			e->first = NULL;
		d = MemoryContextAllocZero(machine_cxt, sizeof(TimeoutDef));
		d->after = *DatumGetIntervalP(SPI_getbinval(tup, desc, 3, &isnull));
		strlcpy(d->event, event, OE_NAME_LEN);
		d->next = e->first;
		e->first = d;
	}

	SPI_finish();
	machine_hash = mh;
	transition_hash = th;
	timeout_hash = toh;
	/* the previous tables: freed at transaction end, see MachineCacheRetiredFree */
	if (old_cxt != NULL)
		MemoryContextSetParent(old_cxt, retired_cxt);
}

static void
EnsureLoaded(void)
{
	/*
	 * Take in invalidations other sessions' commits sent since we last
	 * looked, even if this transaction holds all its locks already (a cache
	 * hit must not outlive a committed change to the machine tables).
	 */
	AcceptInvalidationMessages();
	if (!machine_valid || machine_hash == NULL || transition_hash == NULL ||
		timeout_hash == NULL)
		MachineCacheLoad();
}

/*
 * MachineLookup
 *		The definition of a machine, or NULL if there is no such machine.
 */
const MachineDef *
MachineLookup(const char *name)
{
	char		key[OE_NAME_LEN];

	if (!NameFits(name))
		return NULL;
	EnsureLoaded();
	MakeKey(key, name, NULL, NULL);
	return hash_search(machine_hash, key, HASH_FIND, NULL);
}

/*
 * TransitionLookup
 *		The transition (machine, from, event), or NULL if there is none.
 */
const TransitionDef *
TransitionLookup(const char *machine, const char *from, const char *event)
{
	char		key[3 * OE_NAME_LEN];

	if (!NameFits(machine) || !NameFits(from) || !NameFits(event))
		return NULL;
	EnsureLoaded();
	MakeKey(key, machine, from, event);
	return hash_search(transition_hash, key, HASH_FIND, NULL);
}

/*
 * TimeoutsLookup
 *		The timeouts that start when a subject enters (machine, status).
 */
const TimeoutDef *
TimeoutsLookup(const char *machine, const char *status)
{
	char		key[2 * OE_NAME_LEN];
	TimeoutEntry *e;

	if (!NameFits(machine) || !NameFits(status))
		return NULL;
	EnsureLoaded();
	MakeKey(key, machine, status, NULL);
	e = hash_search(timeout_hash, key, HASH_FIND, NULL);
	return e ? e->first : NULL;
}

bool
MachineIsTerminal(const MachineDef *m, const char *status)
{
	int			i;

	for (i = 0; i < m->nterminal; i++)
		if (strcmp(m->terminal[i], status) == 0)
			return true;
	return false;
}

bool
TransitionAllowsActor(const TransitionDef *t, const char *actor)
{
	int			i;

	for (i = 0; i < t->nactors; i++)
		if (strcmp(t->actors[i], actor) == 0)
			return true;
	return false;
}

/*
 * config_changed
 *		Statement trigger on the machine tables: tell every backend to drop
 *		its machine cache when this transaction commits.
 */
Datum
config_changed(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "config_changed: not called as a trigger");
	CacheInvalidateRelcache(trigdata->tg_relation);
	return PointerGetDatum(NULL);
}
