/*
 * dump.c
 *		What pg_dump / pg_restore need beyond pg_extension_config_dump: the
 *		triggers that bring users' changes to the configuration rows
 *		order_ext ships through a dump and restore (README "Dump and
 *		restore"; the tables and the registration are in src/sql/98_dump.sql).
 *
 * Owns: order_ext.config_defaults (every shipped configuration row as
 * installed, by table and primary key) and order_ext.config_removed
 * (tombstones of shipped rows users deleted).  The configuration tables are
 * dumped whole, and the new database's CREATE EXTENSION has made the
 * shipped rows already, so:
 *
 *	config_insert			BEFORE INSERT on a configuration table: a row whose
 *							key matches a shipped row that is still as shipped
 *							replaces that row in place (no duplicate, and a
 *							user's change to a shipped row comes back);
 *	config_delete			AFTER DELETE OR UPDATE: deleting or re-keying a
 *							shipped row leaves a tombstone;
 *	config_removed_apply	AFTER INSERT on config_removed: a restored
 *							tombstone deletes the shipped row again.
 *
 * The triggers are SECURITY DEFINER (an admin writing a machine table has no
 * rights on the bookkeeping tables) and act only on order_ext's own tables.
 * Configuration writes are rare and the tables small: the SQL is built per
 * table (identifiers quoted) and not kept.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "order_ext.h"

PG_FUNCTION_INFO_V1(config_insert);
PG_FUNCTION_INFO_V1(config_delete);
PG_FUNCTION_INFO_V1(config_removed_apply);

/*
 * ConfigTrigger
 *		The trigger data of a row trigger on a table of schema order_ext;
 *		anything else is refused.
 */
static TriggerData *
ConfigTrigger(FunctionCallInfo fcinfo, const char *name)
{
	TriggerData *td = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_FOR_ROW(td->tg_event))
		elog(ERROR, "%s must be called as a row trigger", name);
	if (RelationGetNamespace(td->tg_relation) != get_namespace_oid("order_ext", false))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("%s is only a trigger of order_ext's tables", name),
				 errdetail("It was fired for table %s.",
						   RelationGetRelationName(td->tg_relation))));
	return td;
}

/*
 * RowDatum
 *		A trigger tuple as a composite datum of the table's row type.
 */
static Datum
RowDatum(TriggerData *td, HeapTuple tup)
{
	return heap_copy_tuple_as_datum(tup, RelationGetDescr(td->tg_relation));
}

/*
 * config_insert
 *		BEFORE INSERT FOR EACH ROW on a configuration table that ships rows.
 */
Datum
config_insert(PG_FUNCTION_ARGS)
{
	TriggerData *td = ConfigTrigger(fcinfo, "config_insert");
	Relation	rel = td->tg_relation;
	TupleDesc	desc = RelationGetDescr(rel);
	Oid			argtypes[3] = {OIDOID, rel->rd_rel->reltype, TEXTOID};
	Datum		values[3];
	const char *table = RelationGetRelationName(rel);
	bool		replaced = false;
	bool		isnull;
	Datum		key;
	Datum		shipped;

	if (!TRIGGER_FIRED_BEFORE(td->tg_event) || !TRIGGER_FIRED_BY_INSERT(td->tg_event))
		elog(ERROR, "config_insert must be a BEFORE INSERT trigger");
	values[0] = ObjectIdGetDatum(RelationGetRelid(rel));
	values[1] = RowDatum(td, td->tg_trigtuple);
	values[2] = CStringGetTextDatum(table);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT k.key, d.row"
							  " FROM (SELECT order_ext.config_key($1, to_jsonb($2)) AS key) k"
							  " LEFT JOIN order_ext.config_defaults d ON d.tbl = $3 AND d.key = k.key",
							  3, argtypes, values, NULL, true, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "could not read the shipped rows of order_ext.%s", table);
	key = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull)
		elog(ERROR, "order_ext.%s has no primary key", table);
	shipped = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);

	if (!isnull)
	{
		/* the shipped row, if still as shipped, becomes the new one */
		StringInfoData sql;
		StringInfoData cols;
		StringInfoData vals;
		Oid			uargtypes[2] = {rel->rd_rel->reltype, JSONBOID};
		Datum		uvalues[2];
		int			i;

		initStringInfo(&cols);
		initStringInfo(&vals);
		for (i = 0; i < desc->natts; i++)
		{
			Form_pg_attribute att = TupleDescAttr(desc, i);
			const char *col;

			if (att->attisdropped)
				continue;
			col = quote_identifier(NameStr(att->attname));
			appendStringInfo(&cols, "%s%s", cols.len ? ", " : "", col);
			appendStringInfo(&vals, "%s($1).%s", vals.len ? ", " : "", col);
		}
		initStringInfo(&sql);
		appendStringInfo(&sql, "UPDATE order_ext.%s t SET (%s) = ROW(%s) WHERE to_jsonb(t) = $2",
						 quote_identifier(table), cols.data, vals.data);
		uvalues[0] = values[1];
		uvalues[1] = shipped;
		if (SPI_execute_with_args(sql.data, 2, uargtypes, uvalues, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not replace a shipped row of order_ext.%s", table);
		replaced = (SPI_processed > 0);
	}
	if (!replaced)
	{
		/* a key users deleted comes back: no tombstone any more */
		Oid			dargtypes[2] = {TEXTOID, JSONBOID};
		Datum		dvalues[2];

		dvalues[0] = values[2];
		dvalues[1] = key;
		if (SPI_execute_with_args("DELETE FROM order_ext.config_removed WHERE tbl = $1 AND key = $2",
								  2, dargtypes, dvalues, NULL, false, 0) != SPI_OK_DELETE)
			elog(ERROR, "could not update order_ext.config_removed");
	}
	SPI_finish();
	if (replaced)
		return PointerGetDatum(NULL);
	return PointerGetDatum(td->tg_trigtuple);
}

/*
 * config_delete
 *		AFTER DELETE OR UPDATE FOR EACH ROW on a configuration table that
 *		ships rows: a shipped key that goes away leaves a tombstone.
 */
Datum
config_delete(PG_FUNCTION_ARGS)
{
	TriggerData *td = ConfigTrigger(fcinfo, "config_delete");
	Relation	rel = td->tg_relation;
	Oid			argtypes[4] = {OIDOID, rel->rd_rel->reltype, TEXTOID, rel->rd_rel->reltype};
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};

	if (!TRIGGER_FIRED_AFTER(td->tg_event) ||
		!(TRIGGER_FIRED_BY_DELETE(td->tg_event) || TRIGGER_FIRED_BY_UPDATE(td->tg_event)))
		elog(ERROR, "config_delete must be an AFTER DELETE OR UPDATE trigger");
	values[0] = ObjectIdGetDatum(RelationGetRelid(rel));
	values[1] = RowDatum(td, td->tg_trigtuple);
	values[2] = CStringGetTextDatum(RelationGetRelationName(rel));
	if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
		values[3] = RowDatum(td, td->tg_newtuple);
	else
	{
		values[3] = (Datum) 0;
		nulls[3] = 'n';
	}

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("INSERT INTO order_ext.config_removed (tbl, key)"
							  " SELECT d.tbl, d.key FROM order_ext.config_defaults d"
							  " WHERE d.tbl = $3 AND d.key = order_ext.config_key($1, to_jsonb($2))"
							  " AND ($4 IS NULL OR d.key IS DISTINCT FROM order_ext.config_key($1, to_jsonb($4)))"
							  " ON CONFLICT DO NOTHING",
							  4, argtypes, values, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not update order_ext.config_removed");
	SPI_finish();
	return PointerGetDatum(NULL);
}

/*
 * config_removed_apply
 *		AFTER INSERT FOR EACH ROW on order_ext.config_removed: delete the
 *		shipped row a (restored) tombstone names, if it is still as shipped.
 */
Datum
config_removed_apply(PG_FUNCTION_ARGS)
{
	TriggerData *td = ConfigTrigger(fcinfo, "config_removed_apply");
	Relation	rel = td->tg_relation;
	TupleDesc	desc = RelationGetDescr(rel);
	Oid			argtypes[2] = {TEXTOID, JSONBOID};
	Datum		values[2];
	bool		isnull;
	char	   *table;

	if (strcmp(RelationGetRelationName(rel), "config_removed") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("config_removed_apply is only a trigger of order_ext.config_removed")));
	if (!TRIGGER_FIRED_AFTER(td->tg_event) || !TRIGGER_FIRED_BY_INSERT(td->tg_event))
		elog(ERROR, "config_removed_apply must be an AFTER INSERT trigger");
	values[0] = heap_getattr(td->tg_trigtuple, SPI_fnumber(desc, "tbl"), desc, &isnull);
	if (isnull)
		elog(ERROR, "order_ext.config_removed.tbl is NULL");
	values[1] = heap_getattr(td->tg_trigtuple, SPI_fnumber(desc, "key"), desc, &isnull);
	if (isnull)
		elog(ERROR, "order_ext.config_removed.key is NULL");
	table = TextDatumGetCString(values[0]);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT d.row FROM order_ext.config_defaults d WHERE d.tbl = $1 AND d.key = $2",
							  2, argtypes, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read order_ext.config_defaults");
	if (SPI_processed == 1)
	{
		Oid			dargtypes[1] = {JSONBOID};
		Datum		dvalues[1];
		char	   *sql;

		dvalues[0] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		sql = psprintf("DELETE FROM order_ext.%s t WHERE to_jsonb(t) = $1", quote_identifier(table));
		if (SPI_execute_with_args(sql, 1, dargtypes, dvalues, NULL, false, 0) != SPI_OK_DELETE)
			elog(ERROR, "could not delete a shipped row of order_ext.%s", table);
	}
	SPI_finish();
	return PointerGetDatum(NULL);
}
