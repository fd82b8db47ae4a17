/*
 * jsonin.c
 *		Reading request JSON (items, discounts, refund lines ...): typed
 *		access to fields with errors that name the field.
 *
 * Owns: the rules for what a well-formed field is.  Shape errors raise
 * 22023 naming the field (e.g. "items[1].qty"); money that is negative or
 * does not fit a bigint raises OE007.
 */
#include "postgres.h"

#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#include "jsonin.h"
#include "order_ext.h"

static const char *
JsonTypeName(JsonbValue *v)
{
	switch (v->type)
	{
		case jbvNull:
			return "null";
		case jbvString:
			return "a string";
		case jbvNumeric:
			return "a number";
		case jbvBool:
			return "a boolean";
		case jbvBinary:
			return JsonContainerIsArray(v->val.binary.data) ? "an array" : "an object";
		default:
			return "an unexpected value";
	}
}

/*
 * JsonArgArray
 *		The top-level array of a jsonb argument, or an error naming it.
 */
JsonbContainer *
JsonArgArray(Jsonb *jb, const char *field)
{
	if (!JB_ROOT_IS_ARRAY(jb) || JB_ROOT_IS_SCALAR(jb))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a JSON array", field)));
	return &jb->root;
}

/*
 * JsonArgObject
 *		The top-level object of a jsonb argument, or an error naming it.
 */
JsonbContainer *
JsonArgObject(Jsonb *jb, const char *field)
{
	if (!JB_ROOT_IS_OBJECT(jb))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a JSON object", field)));
	return &jb->root;
}

/*
 * JsonArrayObject
 *		Element i of an array, which must be an object.
 */
JsonbContainer *
JsonArrayObject(JsonbContainer *array, int i, const char *field)
{
	JsonbValue *v = getIthJsonbValueFromContainer(array, i);

	if (v == NULL || v->type != jbvBinary || !JsonContainerIsObject(v->val.binary.data))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s[%d] must be a JSON object", field, i),
				 errdetail("Got %s.", v ? JsonTypeName(v) : "nothing")));
	return v->val.binary.data;
}

/*
 * JsonCheckKeys
 *		Refuse keys other than the allowed ones (a typo in an optional key
 *		would otherwise be ignored silently).
 */
void
JsonCheckKeys(JsonbContainer *obj, const char *const *allowed, int nallowed,
			  const char *field, int i)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	int			depth = 0;

	it = JsonbIteratorInit(obj);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_BEGIN_OBJECT || tok == WJB_BEGIN_ARRAY)
			depth++;
		else if (tok == WJB_END_OBJECT || tok == WJB_END_ARRAY)
			depth--;
		else if (tok == WJB_KEY && depth == 1)
		{
			int			k;
			bool		known = false;

			for (k = 0; k < nallowed; k++)
				if (strlen(allowed[k]) == (size_t) v.val.string.len &&
					memcmp(allowed[k], v.val.string.val, v.val.string.len) == 0)
				{
					known = true;
					break;
				}
			if (!known)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("%s[%d] has an unknown field \"%.*s\"", field, i,
								pg_mbcliplen(v.val.string.val, v.val.string.len, 64),
								v.val.string.val)));
		}
	}
}

/*
 * JsonGet
 *		Look up key in obj; false if absent or JSON null.
 */
bool
JsonGet(JsonbContainer *obj, const char *key, JsonbValue *out)
{
	if (getKeyJsonValueFromContainer(obj, key, strlen(key), out) == NULL)
		return false;
	return out->type != jbvNull;
}

/*
 * NumericToInt64Exact
 *		Convert an integral numeric to int64; false if it has a fraction.
 *		*overflow is set when it is integral but does not fit.
 */
static bool
NumericToInt64Exact(Numeric n, int64 *out, bool *overflow)
{
	char	   *s = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(n)));
	char	   *p = s;
	bool		neg = false;
	uint64		acc = 0;

	*overflow = false;
	if (*p == '-')
	{
		neg = true;
		p++;
	}
	if (!isdigit((unsigned char) *p))
		return false;
	for (; isdigit((unsigned char) *p); p++)
	{
		if (acc > (PG_UINT64_MAX - 9) / 10)
			*overflow = true;
		else
			acc = acc * 10 + (*p - '0');
	}
	if (*p == '.')
		for (p++; *p == '0'; p++)
			;
	if (*p != '\0')
		return false;
	if (*overflow || acc > (uint64) PG_INT64_MAX + (neg ? 1 : 0))
	{
		*overflow = true;
		return true;
	}
	*out = neg ? (int64) (0 - acc) : (int64) acc;
	return true;
}

/*
 * JsonFieldInt
 *		An integer field; 22023 naming the field if it is not an integer
 *		(or out of [min, max]).
 */
int64
JsonFieldInt(JsonbValue *v, const char *field, int i, const char *key,
			 int64 min, int64 max)
{
	int64		r = 0;
	bool		overflow;

	if (v->type != jbvNumeric || !NumericToInt64Exact(v->val.numeric, &r, &overflow))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s[%d].%s must be an integer", field, i, key),
				 errdetail("Got %s.", JsonTypeName(v))));
	if ((overflow || r < min) && min == 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s[%d].%s must be a positive integer", field, i, key),
				 errdetail("Got %s.", overflow ? "a number too large" : psprintf(INT64_FORMAT, r))));
	if (overflow || r < min || r > max)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s[%d].%s must be between " INT64_FORMAT " and " INT64_FORMAT,
						field, i, key, min, max)));
	return r;
}

/*
 * JsonFieldMoney
 *		An amount in minor units: integer (else 22023), not negative and
 *		within bigint (else OE007).
 */
int64
JsonFieldMoney(JsonbValue *v, const char *field, int i, const char *key)
{
	int64		r = 0;
	bool		overflow;

	if (v->type != jbvNumeric || !NumericToInt64Exact(v->val.numeric, &r, &overflow))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s[%d].%s must be an integer amount in minor units", field, i, key),
				 errdetail("Got %s.", v->type == jbvNumeric ? "a fraction" : JsonTypeName(v))));
	if (overflow)
		ereport(ERROR,
				(errcode(ERRCODE_OE_AMOUNT_INVALID),
				 errmsg("%s[%d].%s is too large", field, i, key),
				 errdetail("Amounts must fit in a bigint.")));
	if (r < 0)
		ereport(ERROR,
				(errcode(ERRCODE_OE_AMOUNT_INVALID),
				 errmsg("%s[%d].%s must not be negative", field, i, key),
				 errdetail("Got " INT64_FORMAT ".", r)));
	return r;
}

/*
 * JsonFieldString
 *		A non-empty string field of at most maxlen bytes, palloc'd.
 */
char *
JsonFieldString(JsonbValue *v, const char *field, int i, const char *key, int maxlen)
{
	if (v->type != jbvString)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s[%d].%s must be a string", field, i, key),
				 errdetail("Got %s.", JsonTypeName(v))));
	if (v->val.string.len == 0 || v->val.string.len > maxlen)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s[%d].%s must be 1 to %d bytes long", field, i, key, maxlen)));
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/*
 * JsonMissing
 *		Report a required field that is absent.
 */
void
JsonMissing(const char *field, int i, const char *key)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s[%d].%s is required", field, i, key)));
}
