/*
 * machine.c
 *		Order state machines as data: a per-backend cache of the definitions
 *		in order_ext.machines, rebuilt when those tables change.
 *
 * Owns: looking machines up.  Writes to the machine tables fire the
 * statement trigger order_ext.config_changed(), which sends a relcache
 * invalidation; every backend then drops its cache at its next transaction
 * start, so another session's INSERT is seen by the next call.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "machine.h"
#include "order_ext.h"

static HTAB *machine_cache = NULL;
static MemoryContext machine_cxt = NULL;
static bool machine_callback_registered = false;
static Oid	machine_relids[4];	/* the tables the cache was built from */
static const char *const MachineTables[] = {"machines"};

PG_FUNCTION_INFO_V1(config_changed);

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
	if (!ours)
		return;
	machine_cache = NULL;
	if (machine_cxt != NULL)
		MemoryContextReset(machine_cxt);
}

/*
 * MachineCacheLoad
 *		Read every machine into a fresh hash table.
 */
static void
MachineCacheLoad(void)
{
	HASHCTL		ctl;
	HTAB	   *h;
	uint64		i;
	int			ret;

	if (!machine_callback_registered)
	{
		CacheRegisterRelcacheCallback(MachineCacheReset, (Datum) 0);
		machine_callback_registered = true;
	}
	if (machine_cxt == NULL)
		machine_cxt = AllocSetContextCreate(CacheMemoryContext, "order_ext machines",
											ALLOCSET_SMALL_SIZES);

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = NAMEDATALEN;
	ctl.entrysize = sizeof(MachineDef);
	ctl.hcxt = machine_cxt;
	h = hash_create("order_ext machines", 16, &ctl, HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);

	for (i = 0; i < (int) lengthof(MachineTables); i++)
		machine_relids[i] = get_relname_relid(MachineTables[i],
											  get_namespace_oid("order_ext", false));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	ret = SPI_execute("SELECT machine, initial_status FROM order_ext.machines", true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read order_ext.machines: %s", SPI_result_code_string(ret));
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		char	   *name = SPI_getvalue(tup, desc, 1);
		char	   *initial = SPI_getvalue(tup, desc, 2);
		MachineDef *m;
		bool		found;

		if (strlen(name) >= NAMEDATALEN)
			continue;			/* the table's CHECK keeps names short */
		m = hash_search(h, name, HASH_ENTER, &found);
		m->initial_status = MemoryContextStrdup(machine_cxt, initial);
	}
	SPI_finish();
	machine_cache = h;
}

/*
 * MachineLookup
 *		The definition of a machine, or NULL if there is no such machine.
 */
const MachineDef *
MachineLookup(const char *name)
{
	if (strlen(name) >= NAMEDATALEN)
		return NULL;
	if (machine_cache == NULL)
		MachineCacheLoad();
	return hash_search(machine_cache, name, HASH_FIND, NULL);
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
