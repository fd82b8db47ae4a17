/*
 * requests.c
 *		Idempotency for any request (the seed's dedup table and tokens):
 *		claim_request() / complete_request(), issue_token() / consume_token(),
 *		and prune_requests(), which drops expired keys and tokens.
 *
 * Owns: order_ext.requests and order_ext.tokens.
 *
 * A claim is a plain INSERT of the key into order_ext.requests in the
 * caller's transaction, so the dedup row lives and dies with the work: a
 * second transaction claiming the same key waits on the unique index until
 * the first ends, then either sees the committed (completed) row or, if the
 * first rolled back, inserts the key itself.  Whether a row is "held by this
 * transaction" is its xmin being one of ours.  Keys are kept for
 * order_ext.request_ttl after they were claimed; an expired key is free
 * again and is pruned.
 *
 * Tokens are stored as their SHA-256 only (reading the table gives nothing
 * to consume), and consumed with DELETE ... RETURNING: the row lock makes
 * the delete happen exactly once whatever the concurrency.
 */
#include "postgres.h"

#include "common/string.h"

#include "access/transam.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/string.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "order_ext.h"

#define MAX_KEY_BYTES	500
#define TOKEN_BYTES		16			/* 128 random bits, 32 hex digits */

static SPIPlanPtr claim_insert_plan = NULL;
static SPIPlanPtr claim_read_plan = NULL;
static SPIPlanPtr claim_expire_plan = NULL;
static SPIPlanPtr complete_read_plan = NULL;
static SPIPlanPtr complete_update_plan = NULL;
static SPIPlanPtr token_insert_plan = NULL;
static SPIPlanPtr token_consume_plan = NULL;
static SPIPlanPtr prune_plan = NULL;

PG_FUNCTION_INFO_V1(claim_request);
PG_FUNCTION_INFO_V1(complete_request);
PG_FUNCTION_INFO_V1(issue_token);
PG_FUNCTION_INFO_V1(consume_token);
PG_FUNCTION_INFO_V1(prune_requests);

/*
 * RequestKeyArg
 *		The key argument, checked: not NULL, 1 to MAX_KEY_BYTES bytes.
 */
static text *
RequestKeyArg(FunctionCallInfo fcinfo, int argno)
{
	text	   *key;
	int			len;

	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("key must not be NULL")));
	key = PG_GETARG_TEXT_PP(argno);
	len = VARSIZE_ANY_EXHDR(key);
	if (len == 0 || len > MAX_KEY_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("key must be 1 to %d bytes long", MAX_KEY_BYTES),
				 errdetail("Got %d bytes.", len)));
	return key;
}

/*
 * RequestCutoff
 *		Keys claimed before this time have expired (order_ext.request_ttl).
 */
static TimestampTz
RequestCutoff(void)
{
	return GetCurrentTimestamp() - (int64) oe_request_ttl_s * USECS_PER_SEC;
}

/*
 * claim_request(key, fingerprint) -> jsonb
 *		NULL: the key is new and now held by this transaction.  Otherwise the
 *		response the key was completed with.  OE004 if the key was claimed
 *		with another fingerprint.
 */
Datum
claim_request(PG_FUNCTION_ARGS)
{
	Oid			argtypes[3] = {TEXTOID, TEXTOID, TIMESTAMPTZOID};
	Datum		values[3];
	char		nulls[3] = {' ', ' ', ' '};
	text	   *key = RequestKeyArg(fcinfo, 0);
	Datum		result = (Datum) 0;
	bool		held = false;
	int			attempt;

	values[0] = PointerGetDatum(key);
	values[1] = PG_ARGISNULL(1) ? (Datum) 0 : PG_GETARG_DATUM(1);
	nulls[1] = PG_ARGISNULL(1) ? 'n' : ' ';
	values[2] = TimestampTzGetDatum(RequestCutoff());

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	for (attempt = 0;; attempt++)
	{
		HeapTuple	tup;
		TupleDesc	desc;
		bool		isnull;
		bool		same;

		/* waits for a transaction holding the same key, then goes on */
		if (SPI_execute_plan(OrderPlan(&claim_insert_plan,
									   "INSERT INTO order_ext.requests (key, fingerprint, created_at)"
									   " VALUES ($1, $2, clock_timestamp()) ON CONFLICT (key) DO NOTHING",
									   2, argtypes),
							 values, nulls, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not claim request key");
		if (SPI_processed == 1)
		{
			held = true;
			break;
		}

		/* the key exists: read it with a snapshot that sees the winner */
		if (SPI_execute_plan(OrderPlan(&claim_read_plan,
									   "SELECT fingerprint IS NOT DISTINCT FROM $2, completed, response,"
									   " xmin, created_at < $3 FROM order_ext.requests WHERE key = $1",
									   3, argtypes),
							 values, nulls, false, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not read request key");
		if (SPI_processed == 0)
		{
			/* pruned between the two statements: claim it again */
			if (attempt >= 3)
				elog(ERROR, "request key conflicts but cannot be read");
			continue;
		}
		tup = SPI_tuptable->vals[0];
		desc = SPI_tuptable->tupdesc;

		if (TransactionIdIsCurrentTransactionId(DatumGetTransactionId(SPI_getbinval(tup, desc, 4, &isnull))))
		{
			/* claimed earlier in this very transaction */
			same = DatumGetBool(SPI_getbinval(tup, desc, 1, &isnull));
			if (same && !DatumGetBool(SPI_getbinval(tup, desc, 2, &isnull)))
			{
				held = true;
				break;
			}
		}
		else if (DatumGetBool(SPI_getbinval(tup, desc, 5, &isnull)))
		{
			/* expired but not pruned yet: free again */
			if (SPI_execute_plan(OrderPlan(&claim_expire_plan,
										   "DELETE FROM order_ext.requests WHERE key = $1 AND created_at < $3",
										   3, argtypes),
								 values, nulls, false, 0) != SPI_OK_DELETE)
				elog(ERROR, "could not drop expired request key");
			if (attempt >= 3)
				elog(ERROR, "expired request key cannot be claimed");
			continue;
		}

		if (!DatumGetBool(SPI_getbinval(tup, desc, 1, &isnull)))
			ereport(ERROR,
					(errcode(ERRCODE_OE_REQUEST_MISMATCH),
					 errmsg("request key \"%s\" was claimed with a different fingerprint",
							text_to_cstring(key)),
					 errdetail("The same key was sent with another request."),
					 errhint("Use a new key for a new request.")));
		if (!DatumGetBool(SPI_getbinval(tup, desc, 2, &isnull)))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("request key \"%s\" was claimed but never completed",
							text_to_cstring(key)),
					 errdetail("The transaction that claimed it committed without calling order_ext.complete_request()."),
					 errhint("The key stays taken until order_ext.request_ttl has passed.")));
		result = SPI_getbinval(tup, desc, 3, &isnull);
		result = SPI_datumTransfer(result, false, -1);
		break;
	}
	SPI_finish();
	if (held)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(result);
}

/*
 * complete_request(key, response)
 *		Store the response of a key this transaction holds.
 */
Datum
complete_request(PG_FUNCTION_ARGS)
{
	Oid			argtypes[2] = {TEXTOID, JSONBOID};
	Datum		values[2];
	text	   *key = RequestKeyArg(fcinfo, 0);
	HeapTuple	tup;
	bool		isnull;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("response must not be NULL"),
				 errhint("Store 'null'::jsonb for a request that has no response.")));
	values[0] = PointerGetDatum(key);
	values[1] = PG_GETARG_DATUM(1);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_plan(OrderPlan(&complete_read_plan,
								   "SELECT xmin, completed FROM order_ext.requests WHERE key = $1 FOR UPDATE",
								   1, argtypes),
						 values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read request key");
	if (SPI_processed == 0 ||
		!TransactionIdIsCurrentTransactionId(DatumGetTransactionId(SPI_getbinval(SPI_tuptable->vals[0],
																				 SPI_tuptable->tupdesc, 1,
																				 &isnull))))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("request key \"%s\" is not held by this transaction", text_to_cstring(key)),
				 errhint("Call order_ext.claim_request(key) first, in the same transaction.")));
	tup = SPI_tuptable->vals[0];
	if (DatumGetBool(SPI_getbinval(tup, SPI_tuptable->tupdesc, 2, &isnull)))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("request key \"%s\" is already completed", text_to_cstring(key))));
	if (SPI_execute_plan(OrderPlan(&complete_update_plan,
								   "UPDATE order_ext.requests SET response = $2, completed = true,"
								   " completed_at = now() WHERE key = $1",
								   2, argtypes),
						 values, NULL, false, 0) != SPI_OK_UPDATE || SPI_processed != 1)
		elog(ERROR, "could not complete request key");
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * issue_token(ttl) -> text
 *		A new random token, valid for ttl; only its hash is stored.
 */
Datum
issue_token(PG_FUNCTION_ARGS)
{
	Oid			argtypes[2] = {TEXTOID, INTERVALOID};
	Datum		values[2];
	uint8		raw[TOKEN_BYTES];
	char		hex[TOKEN_BYTES * 2 + 1];
	Interval   *ttl;
	int			i;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("ttl must not be NULL")));
	ttl = PG_GETARG_INTERVAL_P(0);
	if (IntervalCmpMonths(ttl, 0) <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("ttl must be positive"),
				 errdetail("Got %s.", DatumGetCString(DirectFunctionCall1(interval_out,
																		  IntervalPGetDatum(ttl))))));
	/* a token's expiry must be a time (an absurd ttl overflowed inside the INSERT) */
	if (IntervalCmpMonths(ttl, 100 * MONTHS_PER_YEAR) > 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("ttl must be at most 100 years"),
				 errdetail("Got %s.", DatumGetCString(DirectFunctionCall1(interval_out,
																		  IntervalPGetDatum(ttl))))));
	if (!pg_strong_random(raw, sizeof(raw)))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a random token")));
	for (i = 0; i < TOKEN_BYTES; i++)
		snprintf(hex + 2 * i, 3, "%02x", raw[i]);

	values[0] = CStringGetTextDatum(hex);
	values[1] = IntervalPGetDatum(ttl);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_plan(OrderPlan(&token_insert_plan,
								   "INSERT INTO order_ext.tokens (token_hash, expires_at)"
								   " VALUES (sha256(convert_to($1, 'UTF8')), clock_timestamp() + $2)",
								   2, argtypes),
						 values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not store token");
	SPI_finish();
	PG_RETURN_TEXT_P(cstring_to_text(hex));
}

/*
 * consume_token(token) -> boolean
 *		True exactly once for an issued, unexpired token; false otherwise.
 */
Datum
consume_token(PG_FUNCTION_ARGS)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	bool		ok = false;
	bool		isnull;

	if (PG_ARGISNULL(0))
		PG_RETURN_BOOL(false);
	values[0] = PG_GETARG_DATUM(0);
	/*
	 * Tokens are hex (issue_token): any other byte cannot be one, and in a
	 * SQL_ASCII database it need not even convert to UTF8 for the hash.
	 */
	if (!pg_is_ascii(text_to_cstring(DatumGetTextPP(values[0]))))
		PG_RETURN_BOOL(false);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_plan(OrderPlan(&token_consume_plan,
								   "DELETE FROM order_ext.tokens WHERE token_hash = sha256(convert_to($1, 'UTF8'))"
								   " RETURNING expires_at > clock_timestamp()",
								   1, argtypes),
						 values, NULL, false, 0) != SPI_OK_DELETE_RETURNING)
		elog(ERROR, "could not consume token");
	if (SPI_processed == 1)
		ok = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	PG_RETURN_BOOL(ok);
}

/*
 * prune_requests() -> bigint
 *		Drop request keys older than order_ext.request_ttl and expired
 *		tokens; returns how many rows went.  Keys held by transactions still
 *		running are not visible here and stay.
 */
Datum
prune_requests(PG_FUNCTION_ARGS)
{
	Oid			argtypes[1] = {TIMESTAMPTZOID};
	Datum		values[1];
	bool		isnull;
	int64		n;

	values[0] = TimestampTzGetDatum(RequestCutoff());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_plan(OrderPlan(&prune_plan,
								   "WITH r AS (DELETE FROM order_ext.requests WHERE created_at < $1 RETURNING 1),"
								   " t AS (DELETE FROM order_ext.tokens WHERE expires_at <= now() RETURNING 1)"
								   " SELECT (SELECT count(*) FROM r) + (SELECT count(*) FROM t)",
								   1, argtypes),
						 values, NULL, false, 0) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not prune request keys");
	n = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	PG_RETURN_INT64(n);
}
