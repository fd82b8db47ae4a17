/*
 * orders.c
 *		Creating orders: order_ext.create_order().
 *
 * Owns: validating a create request, the order's money (line totals,
 * discount allocation by largest remainder, payable total, all
 * overflow-checked), the request fingerprint, and the idempotent insert
 * (same order_id + same request returns the existing order and writes
 * nothing; same order_id + other request is OE004).
 */
#include "postgres.h"

#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "common/cryptohash.h"
#include "common/int.h"
#include "common/sha2.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/uuid.h"

#include "archive.h"
#include "events.h"
#include "jsonin.h"
#include "machine.h"
#include "order_ext.h"
#include "stock.h"
#include "timers.h"

#define MAX_LINES		1000
#define MAX_DISCOUNTS	100
#define MAX_NAME		200

/* One parsed order line. */
typedef struct OrderLine
{
	char	   *sku;
	int32		qty;
	int64		unit_price;
	int64		total;			/* qty * unit_price */
	int64		discount_alloc; /* line-level discounts + share of order-level */
	bool		has_merchant;
	int64		merchant_id;
	bool		has_warehouse;
	int64		warehouse_id;
} OrderLine;

/* One parsed discount. */
typedef struct OrderDiscount
{
	char	   *kind;
	char	   *code;			/* NULL if none */
	int64		amount;
	int32		line;			/* 0: order-level */
} OrderDiscount;

/* A whole parsed create request. */
typedef struct CreateRequest
{
	int64		order_id;
	int64		buyer_id;
	const MachineDef *machine;
	char	   *currency;
	int64		shipping_fee;
	Jsonb	   *attrs;
	int			nlines;
	OrderLine  *lines;
	int			ndiscounts;
	OrderDiscount *discounts;
	int64		item_total;
	int64		discount_total;
	int64		payable_total;
	pg_uuid_t	fingerprint;
	char		month[NAMEDATALEN];	/* "_pYYYY_MM" of the order's partitions, or "" */
} CreateRequest;

static SPIPlanPtr insert_order_plan = NULL;
static SPIPlanPtr insert_order_plain_plan = NULL;
static SPIPlanPtr select_order_plan = NULL;
static SPIPlanPtr select_archived_plan = NULL;
static Oid	orders_relid = InvalidOid;

PG_FUNCTION_INFO_V1(create_order);

/* order_ext.orders' oid (cached) */
static Oid
OrdersRelid(void)
{
	if (!OidIsValid(OrderRelid(&orders_relid, "orders")))
		elog(ERROR, "order_ext.orders does not exist");
	return orders_relid;
}

static void
Overflow(const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_OE_AMOUNT_INVALID),
			 errmsg("%s overflows", what),
			 errdetail("Amounts are bigint minor units; this order's %s does not fit.", what)));
}

/*
 * ParseItems
 *		items: [{"sku":..,"qty":..,"unit_price":..[,"merchant_id":..][,"warehouse_id":..]}, ...]
 */
static void
ParseItems(CreateRequest *req, Jsonb *items)
{
	static const char *const keys[] = {"sku", "qty", "unit_price", "merchant_id", "warehouse_id"};
	JsonbContainer *arr = JsonArgArray(items, "items");
	int			n = JsonContainerSize(arr);
	int			i;

	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("items must contain at least one line")));
	if (n > MAX_LINES)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("items has %d lines; at most %d are allowed", n, MAX_LINES)));

	req->nlines = n;
	req->lines = palloc0(sizeof(OrderLine) * n);
	req->item_total = 0;
	for (i = 0; i < n; i++)
	{
		JsonbContainer *obj = JsonArrayObject(arr, i, "items");
		OrderLine  *l = &req->lines[i];
		JsonbValue	v;

		JsonCheckKeys(obj, keys, lengthof(keys), "items", i);
		if (!JsonGet(obj, "sku", &v))
			JsonMissing("items", i, "sku");
		l->sku = JsonFieldString(&v, "items", i, "sku", MAX_NAME);
		if (!JsonGet(obj, "qty", &v))
			JsonMissing("items", i, "qty");
		l->qty = (int32) JsonFieldInt(&v, "items", i, "qty", 1, PG_INT32_MAX);
		if (!JsonGet(obj, "unit_price", &v))
			JsonMissing("items", i, "unit_price");
		l->unit_price = JsonFieldMoney(&v, "items", i, "unit_price");
		if (JsonGet(obj, "merchant_id", &v))
		{
			l->has_merchant = true;
			l->merchant_id = JsonFieldInt(&v, "items", i, "merchant_id", PG_INT64_MIN, PG_INT64_MAX);
		}
		if (JsonGet(obj, "warehouse_id", &v))
		{
			l->has_warehouse = true;
			l->warehouse_id = JsonFieldInt(&v, "items", i, "warehouse_id", PG_INT64_MIN, PG_INT64_MAX);
		}
		if (pg_mul_s64_overflow(l->unit_price, l->qty, &l->total))
			ereport(ERROR,
					(errcode(ERRCODE_OE_AMOUNT_INVALID),
					 errmsg("items[%d]: qty times unit_price overflows", i),
					 errdetail("qty %d times unit_price " INT64_FORMAT " does not fit in a bigint.",
							   l->qty, l->unit_price)));
		if (pg_add_s64_overflow(req->item_total, l->total, &req->item_total))
			Overflow("item_total");
	}
}

/*
 * ParseDiscounts
 *		discounts: [{"kind":..,"code":..,"amount":..[,"line":n]}, ...]
 */
static void
ParseDiscounts(CreateRequest *req, Jsonb *discounts)
{
	static const char *const keys[] = {"kind", "code", "amount", "line"};
	JsonbContainer *arr = JsonArgArray(discounts, "discounts");
	int			n = JsonContainerSize(arr);
	int			i;

	if (n > MAX_DISCOUNTS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("discounts has %d entries; at most %d are allowed", n, MAX_DISCOUNTS)));
	req->ndiscounts = n;
	req->discounts = palloc0(sizeof(OrderDiscount) * Max(n, 1));
	for (i = 0; i < n; i++)
	{
		JsonbContainer *obj = JsonArrayObject(arr, i, "discounts");
		OrderDiscount *d = &req->discounts[i];
		JsonbValue	v;

		JsonCheckKeys(obj, keys, lengthof(keys), "discounts", i);
		if (!JsonGet(obj, "kind", &v))
			JsonMissing("discounts", i, "kind");
		d->kind = JsonFieldString(&v, "discounts", i, "kind", MAX_NAME);
		if (JsonGet(obj, "code", &v))
			d->code = JsonFieldString(&v, "discounts", i, "code", MAX_NAME);
		if (!JsonGet(obj, "amount", &v))
			JsonMissing("discounts", i, "amount");
		d->amount = JsonFieldMoney(&v, "discounts", i, "amount");
		if (JsonGet(obj, "line", &v))
			d->line = (int32) JsonFieldInt(&v, "discounts", i, "line", 1, req->nlines);
	}
}

/*
 * AllocateDiscounts
 *		Line-level discounts go to their line; the order-level total is
 *		spread over the lines in proportion to what is left of each line,
 *		rounding down, and the units left over go one each to the lines with
 *		the largest remainders (ties: lower line_no).  So the shares add up
 *		to the order-level total exactly and no line's share exceeds what is
 *		left of it.
 */
static void
AllocateDiscounts(CreateRequest *req)
{
	int64		order_level = 0;
	int64		rest_total = 0;
	int64		left;
	int64	   *rem;
	int			i;

	req->discount_total = 0;
	for (i = 0; i < req->ndiscounts; i++)
	{
		OrderDiscount *d = &req->discounts[i];

		if (pg_add_s64_overflow(req->discount_total, d->amount, &req->discount_total))
			Overflow("discount_total");
		if (d->line > 0)
		{
			OrderLine  *l = &req->lines[d->line - 1];

			if (pg_add_s64_overflow(l->discount_alloc, d->amount, &l->discount_alloc) ||
				l->discount_alloc > l->total)
				ereport(ERROR,
						(errcode(ERRCODE_OE_AMOUNT_INVALID),
						 errmsg("discounts[%d] exceeds the total of line %d", i, d->line),
						 errdetail("Line %d totals " INT64_FORMAT "; its discounts add up to more.",
								   d->line, l->total)));
		}
		else
			order_level += d->amount;
	}

	for (i = 0; i < req->nlines; i++)
		rest_total += req->lines[i].total - req->lines[i].discount_alloc;
	if (order_level > rest_total)
		ereport(ERROR,
				(errcode(ERRCODE_OE_AMOUNT_INVALID),
				 errmsg("order-level discounts exceed the items' total"),
				 errdetail("Order-level discounts add up to " INT64_FORMAT
						   "; the lines total " INT64_FORMAT " after line discounts.",
						   order_level, rest_total)));
	if (order_level == 0)
		return;

	rem = palloc(sizeof(int64) * req->nlines);
	left = order_level;
	for (i = 0; i < req->nlines; i++)
	{
		int128		num = (int128) order_level * (req->lines[i].total - req->lines[i].discount_alloc);
		int64		share = (int64) (num / rest_total);

		rem[i] = (int64) (num % rest_total);
		req->lines[i].discount_alloc += share;
		left -= share;
	}
	/* left < nlines: hand out one unit each by largest remainder */
	while (left > 0)
	{
		int			best = -1;

		for (i = 0; i < req->nlines; i++)
			if (rem[i] > 0 && (best < 0 || rem[i] > rem[best]))
				best = i;
		Assert(best >= 0);
		req->lines[best].discount_alloc++;
		rem[best] = 0;
		left--;
	}
	pfree(rem);
}

/*
 * AddFingerprintString
 *		Length-prefixed, so that no two different requests serialise alike.
 */
static void
AddFingerprintString(StringInfo buf, const char *s)
{
	if (s == NULL)
		appendStringInfoString(buf, "-1:");
	else
		appendStringInfo(buf, "%zu:%s", strlen(s), s);
}

/*
 * JsonbCanonical
 *		A serialisation in which equal jsonb values read alike: jsonb already
 *		orders and deduplicates keys; numbers are normalised (2.0 is 2), and
 *		strings are length-prefixed.
 */
static void
JsonbCanonical(StringInfo buf, Jsonb *jb)
{
	JsonbIterator *it = JsonbIteratorInit(&jb->root);
	JsonbValue	v;
	JsonbIteratorToken tok;

	while ((tok = JsonbIteratorNext(&it, &v, false)) != WJB_DONE)
	{
		switch (tok)
		{
			case WJB_BEGIN_OBJECT:
				appendStringInfoChar(buf, '{');
				break;
			case WJB_END_OBJECT:
				appendStringInfoChar(buf, '}');
				break;
			case WJB_BEGIN_ARRAY:
				appendStringInfoChar(buf, v.val.array.rawScalar ? '<' : '[');
				break;
			case WJB_END_ARRAY:
				appendStringInfoChar(buf, ']');
				break;
			case WJB_KEY:
			case WJB_VALUE:
			case WJB_ELEM:
				appendStringInfoChar(buf, tok == WJB_KEY ? 'k' : 'v');
				switch (v.type)
				{
					case jbvString:
						appendStringInfo(buf, "s%d:", v.val.string.len);
						appendBinaryStringInfo(buf, v.val.string.val, v.val.string.len);
						break;
					case jbvNumeric:
						appendStringInfo(buf, "n%s;", numeric_normalize(v.val.numeric));
						break;
					case jbvBool:
						appendStringInfoChar(buf, v.val.boolean ? 't' : 'f');
						break;
					case jbvNull:
						appendStringInfoChar(buf, 'z');
						break;
					default:
						elog(ERROR, "unexpected jsonb value type %d", (int) v.type);
				}
				break;
			default:
				break;
		}
	}
}

/*
 * Fingerprint
 *		SHA-256 (first 16 bytes, as a uuid) of the parsed request, so that
 *		the same request in other JSON spelling (key order, 2 vs 2.0) matches.
 */
static void
Fingerprint(CreateRequest *req)
{
	StringInfoData buf;
	pg_cryptohash_ctx *ctx;
	uint8		digest[PG_SHA256_DIGEST_LENGTH];
	int			i;

	initStringInfo(&buf);
	appendStringInfo(&buf, "v1|" INT64_FORMAT "|%s|%s|" INT64_FORMAT "|",
					 req->buyer_id, req->machine->name, req->currency, req->shipping_fee);
	for (i = 0; i < req->nlines; i++)
	{
		OrderLine  *l = &req->lines[i];

		AddFingerprintString(&buf, l->sku);
		appendStringInfo(&buf, "|%d|" INT64_FORMAT "|", l->qty, l->unit_price);
		if (l->has_merchant)
			appendStringInfo(&buf, "m" INT64_FORMAT, l->merchant_id);
		if (l->has_warehouse)
			appendStringInfo(&buf, "w" INT64_FORMAT, l->warehouse_id);
		appendStringInfoChar(&buf, ';');
	}
	appendStringInfoChar(&buf, '|');
	for (i = 0; i < req->ndiscounts; i++)
	{
		OrderDiscount *d = &req->discounts[i];

		AddFingerprintString(&buf, d->kind);
		AddFingerprintString(&buf, d->code);
		appendStringInfo(&buf, "|" INT64_FORMAT "|%d;", d->amount, d->line);
	}
	appendStringInfoChar(&buf, '|');
	JsonbCanonical(&buf, req->attrs);

	ctx = pg_cryptohash_create(PG_SHA256);
	if (ctx == NULL ||
		pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, (uint8 *) buf.data, buf.len) < 0 ||
		pg_cryptohash_final(ctx, digest, sizeof(digest)) < 0)
		elog(ERROR, "could not compute the request fingerprint");
	pg_cryptohash_free(ctx);
	memcpy(req->fingerprint.data, digest, UUID_LEN);
	pfree(buf.data);
}

/*
 * ArgNotNull
 *		create_order is not STRICT, so that a NULL argument is an error that
 *		names the argument rather than a silent NULL result.
 */
static void
ArgNotNull(FunctionCallInfo fcinfo, int argno, const char *name)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be NULL", name)));
}

/*
 * ParseRequest
 *		Validate every argument and compute the order's money.
 */
static void
ParseRequest(FunctionCallInfo fcinfo, CreateRequest *req)
{
	static const char *const argnames[] = {
		"order_id", "buyer_id", "items", "machine", "discounts", "shipping_fee", "attrs", "currency"
	};
	char	   *machine;
	int			i;

	for (i = 0; i < (int) lengthof(argnames); i++)
		ArgNotNull(fcinfo, i, argnames[i]);

	req->order_id = PG_GETARG_INT64(0);
	if (req->order_id <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("order_id must be positive"),
				 errhint("Get one from order_ext.new_order_id().")));
	OrderIdClaim(req->order_id);
	req->buyer_id = PG_GETARG_INT64(1);

	machine = NameTextArg(fcinfo, 3);
	req->machine = MachineLookup(machine);
	if (req->machine == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("machine \"%s\" does not exist", machine),
				 errhint("Machines are rows of order_ext.machines.")));
	if (strcmp(machine, AFTER_SALE_MACHINE) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("machine \"%s\" is for after-sale requests, not orders", machine),
				 errhint("Open a request with order_ext.open_after_sale().")));

	req->shipping_fee = PG_GETARG_INT64(5);
	if (req->shipping_fee < 0)
		ereport(ERROR,
				(errcode(ERRCODE_OE_AMOUNT_INVALID),
				 errmsg("shipping_fee must not be negative"),
				 errdetail("Got " INT64_FORMAT ".", req->shipping_fee)));

	req->attrs = PG_GETARG_JSONB_P(6);
	(void) JsonArgObject(req->attrs, "attrs");

	req->currency = NameTextArg(fcinfo, 7);
	if (strlen(req->currency) != 3 ||
		!isupper((unsigned char) req->currency[0]) ||
		!isupper((unsigned char) req->currency[1]) ||
		!isupper((unsigned char) req->currency[2]))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("currency must be a three-letter ISO 4217 code such as CNY"),
				 errdetail("Got \"%s\".", req->currency)));

	ParseItems(req, PG_GETARG_JSONB_P(2));
	ParseDiscounts(req, PG_GETARG_JSONB_P(4));
	AllocateDiscounts(req);

	/* discount_total <= item_total now, so payable >= shipping_fee >= 0 */
	if (pg_add_s64_overflow(req->item_total - req->discount_total, req->shipping_fee,
							&req->payable_total))
		Overflow("payable_total");

	Fingerprint(req);
}

/*
 * ExistingOrder
 *		The existing order with this id (live, or archived if 'archived') if
 *		it was created by the same request; OE004 if by another; (Datum) 0
 *		if there is none.
 */
static Datum
ExistingOrder(CreateRequest *req, bool archived)
{
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1];
	SPIPlanPtr	plan;
	bool		isnull;
	Datum		hash;
	int			ret;

	if (archived)
		plan = OrderPlan(&select_archived_plan,
						 "SELECT pg_catalog.jsonb_populate_record(NULL::order_ext.orders, pg_catalog.to_jsonb(h)),"
						 " h.request_hash FROM order_ext.orders_history h WHERE h.order_id = $1",
						 1, argtypes);
	else
		plan = OrderPlan(&select_order_plan,
						 "SELECT o, o.request_hash FROM order_ext.orders o WHERE o.order_id = $1",
						 1, argtypes);
	values[0] = Int64GetDatum(req->order_id);
	ret = SPI_execute_plan(plan, values, NULL, false, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read order: %s", SPI_result_code_string(ret));
	if (SPI_processed == 0)
		return (Datum) 0;
	hash = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
	if (isnull || memcmp(DatumGetUUIDP(hash)->data, req->fingerprint.data, UUID_LEN) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OE_REQUEST_MISMATCH),
				 errmsg("order " INT64_FORMAT " already exists with a different request",
						req->order_id),
				 errdetail("The same order_id was sent with other buyer, items, discounts, shipping fee, attrs, machine or currency."),
				 errhint("Get a new id from order_ext.new_order_id() for a new order.")));
	return SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
}

/*
 * The statement of InsertOrder, in parts: the order row first; every other
 * row only if the order row is new (IF_NEW).  The discounts part is left
 * out when there are none.
 */
#define INSERT_ORDER_HEAD \
	"WITH o AS (" \
	" INSERT INTO order_ext.orders AS o" \
	" (order_id, machine, status, version, buyer_id, currency, item_total," \
	"  discount_total, shipping_fee, payable_total, attrs, request_hash," \
	"  created_at, updated_at)" \
	" VALUES ($1, $2, $3, 1, $4, $5, $6, $7, $8, $9, $10, $11, now(), now())" \
	" ON CONFLICT (order_id) DO NOTHING RETURNING o AS ord), " \
	"i AS (" \
	" INSERT INTO order_ext.order_items" \
	" (order_id, line_no, sku, qty, unit_price, discount_alloc, merchant_id, warehouse_id)" \
	" SELECT $1, n, s, q, p, a, m, w" \
	" FROM unnest($12, $13, $14, $15, $16, $17) WITH ORDINALITY AS u(s, q, p, a, m, w, n)" \
	" WHERE " IF_NEW "), "
#define INSERT_ORDER_DISCOUNTS \
	"d AS (" \
	" INSERT INTO order_ext.order_discounts (order_id, seq, kind, code, amount, line_no)" \
	" SELECT $1, n, k, c, a, l" \
	" FROM unnest($18, $19, $20, $21) WITH ORDINALITY AS u(k, c, a, l, n)" \
	" WHERE " IF_NEW "), "
#define INSERT_ORDER_TAIL \
	OE_EVENT_CTES(IF_NEW, "$1", "1", "'create'", "NULL::text", "$3", "'buyer'", "$22") ", " \
	OE_TIMERS_CTE(IF_NEW, "$1", "'order'", "$1", "$3", "1", "$23", "$24") \
	" SELECT ord FROM o"

/*
 * The plans of the months orders were created in lately: the same
 * statement as InsertOrder's, writing the month's partitions directly
 * rather than through the parents, which saves finding the partition of
 * each row (tuple routing) on every call.
 */
typedef struct MonthPlans
{
	char		month[NAMEDATALEN];	/* "_pYYYY_MM"; "" if unused */
	SPIPlanPtr	plan[2];		/* without, with discounts */
} MonthPlans;

#define MONTH_PLANS 4
static MonthPlans month_plans[MONTH_PLANS];
static int	month_plans_next = 0;

/* s with every "from" replaced by "to" (palloc'd) */
static char *
ReplaceAll(const char *s, const char *from, const char *to)
{
	StringInfoData buf;
	const char *p;
	size_t		len = strlen(from);

	initStringInfo(&buf);
	while ((p = strstr(s, from)) != NULL)
	{
		appendBinaryStringInfo(&buf, s, p - s);
		appendStringInfoString(&buf, to);
		s = p + len;
	}
	appendStringInfoString(&buf, s);
	return buf.data;
}

/*
 * MonthPlan
 *		The insert plan for orders of a month whose partitions all exist;
 *		NULL (use the parents) otherwise.
 */
static SPIPlanPtr
MonthPlan(const char *month, bool discounts, Oid *argtypes)
{
	static const char *const parts[] = {"order_items", "order_events", "order_discounts"};
	MonthPlans *e = NULL;
	int			i;

	OrderRefuseReplica();		/* as OrderPlan */
	if (month[0] == '\0')
		return NULL;
	for (i = 0; i < MONTH_PLANS && e == NULL; i++)
		if (strcmp(month_plans[i].month, month) == 0)
			e = &month_plans[i];
	if (e == NULL)
	{
		/*
		 * The other tables' partitions of the month are looked up once, when
		 * the month's entry is made: the caller has just found the orders
		 * partition, and the five tables' months are made and archived
		 * together.
		 */
		Oid			nsp = get_namespace_oid("order_ext", false);

		for (i = 0; i < (int) lengthof(parts); i++)
			if (!OidIsValid(get_relname_relid(psprintf("%s%s", parts[i], month), nsp)))
				return NULL;
		e = &month_plans[month_plans_next];
		month_plans_next = (month_plans_next + 1) % MONTH_PLANS;
		for (i = 0; i < 2; i++)
			if (e->plan[i] != NULL)
			{
				SPI_freeplan(e->plan[i]);
				e->plan[i] = NULL;
			}
		strlcpy(e->month, month, sizeof(e->month));
	}
	if (e->plan[discounts] == NULL)
	{
#define IF_NEW "EXISTS (SELECT 1 FROM o)"
		char	   *sql = discounts ? INSERT_ORDER_HEAD INSERT_ORDER_DISCOUNTS INSERT_ORDER_TAIL
			: INSERT_ORDER_HEAD INSERT_ORDER_TAIL;
#undef IF_NEW

		sql = ReplaceAll(sql, "INTO order_ext.orders AS o",
						 psprintf("INTO order_ext.orders%s AS o", month));
		for (i = 0; i < (int) lengthof(parts); i++)
			sql = ReplaceAll(sql, psprintf("INTO order_ext.%s ", parts[i]),
							 psprintf("INTO order_ext.%s%s ", parts[i], month));
		(void) OrderPlan(&e->plan[discounts], sql, 24, argtypes);
	}
	return e->plan[discounts];
}

/*
 * InsertOrder
 *		The whole new order in one statement: the order row (INSERT ... ON
 *		CONFLICT DO NOTHING) and, only if it was new, its items, discounts,
 *		the 'create' event with its outbox row, and the timers of the
 *		initial status.  Returns the new row as a composite datum, or
 *		(Datum) 0 if the order_id exists already (and then nothing was
 *		written).
 */
static Datum
InsertOrder(CreateRequest *req)
{
	Oid			argtypes[24] = {INT8OID, TEXTOID, TEXTOID, INT8OID, TEXTOID, INT8OID,
		INT8OID, INT8OID, INT8OID, JSONBOID, UUIDOID,
		TEXTARRAYOID, INT4ARRAYOID, INT8ARRAYOID, INT8ARRAYOID, INT8ARRAYOID, INT8ARRAYOID,
		TEXTARRAYOID, TEXTARRAYOID, INT8ARRAYOID, INT4ARRAYOID,
	JSONBOID, TEXTARRAYOID, INTERVALARRAYOID};
	Datum		values[24];
	Datum	   *sku = palloc(sizeof(Datum) * req->nlines);
	Datum	   *qty = palloc(sizeof(Datum) * req->nlines);
	Datum	   *price = palloc(sizeof(Datum) * req->nlines);
	Datum	   *alloc = palloc(sizeof(Datum) * req->nlines);
	Datum	   *merchant = palloc(sizeof(Datum) * req->nlines);
	Datum	   *warehouse = palloc(sizeof(Datum) * req->nlines);
	bool	   *merchant_null = palloc(sizeof(bool) * req->nlines);
	bool	   *warehouse_null = palloc(sizeof(bool) * req->nlines);
	int			nd = req->ndiscounts;
	Datum	   *dkind = palloc(sizeof(Datum) * Max(nd, 1));
	Datum	   *dcode = palloc(sizeof(Datum) * Max(nd, 1));
	bool	   *dcode_null = palloc(sizeof(bool) * Max(nd, 1));
	Datum	   *damount = palloc(sizeof(Datum) * Max(nd, 1));
	Datum	   *dline = palloc(sizeof(Datum) * Max(nd, 1));
	bool	   *dline_null = palloc(sizeof(bool) * Max(nd, 1));
	int			dims[1];
	int			lbs[1] = {1};
	SPIPlanPtr	plan;
	bool		isnull;
	int			ret;
	int			i;

	for (i = 0; i < req->nlines; i++)
	{
		OrderLine  *l = &req->lines[i];

		sku[i] = CStringGetTextDatum(l->sku);
		qty[i] = Int32GetDatum(l->qty);
		price[i] = Int64GetDatum(l->unit_price);
		alloc[i] = Int64GetDatum(l->discount_alloc);
		merchant[i] = Int64GetDatum(l->merchant_id);
		merchant_null[i] = !l->has_merchant;
		warehouse[i] = Int64GetDatum(l->warehouse_id);
		warehouse_null[i] = !l->has_warehouse;
	}
	for (i = 0; i < nd; i++)
	{
		OrderDiscount *d = &req->discounts[i];

		dkind[i] = CStringGetTextDatum(d->kind);
		dcode[i] = d->code ? CStringGetTextDatum(d->code) : (Datum) 0;
		dcode_null[i] = (d->code == NULL);
		damount[i] = Int64GetDatum(d->amount);
		dline[i] = Int32GetDatum(d->line);
		dline_null[i] = (d->line == 0);
	}

	values[0] = Int64GetDatum(req->order_id);
	values[1] = CStringGetTextDatum(req->machine->name);
	values[2] = CStringGetTextDatum(req->machine->initial_status);
	values[3] = Int64GetDatum(req->buyer_id);
	values[4] = CStringGetTextDatum(req->currency);
	values[5] = Int64GetDatum(req->item_total);
	values[6] = Int64GetDatum(req->discount_total);
	values[7] = Int64GetDatum(req->shipping_fee);
	values[8] = Int64GetDatum(req->payable_total);
	values[9] = JsonbPGetDatum(req->attrs);
	values[10] = UUIDPGetDatum(&req->fingerprint);
	dims[0] = req->nlines;
	values[11] = PointerGetDatum(construct_array(sku, req->nlines, TEXTOID, -1, false, TYPALIGN_INT));
	values[12] = PointerGetDatum(construct_array(qty, req->nlines, INT4OID, 4, true, TYPALIGN_INT));
	values[13] = PointerGetDatum(construct_array(price, req->nlines, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[14] = PointerGetDatum(construct_array(alloc, req->nlines, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[15] = PointerGetDatum(construct_md_array(merchant, merchant_null, 1, dims, lbs, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[16] = PointerGetDatum(construct_md_array(warehouse, warehouse_null, 1, dims, lbs, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	dims[0] = nd;
	values[17] = PointerGetDatum(construct_md_array(dkind, NULL, 1, dims, lbs, TEXTOID, -1, false, TYPALIGN_INT));
	values[18] = PointerGetDatum(construct_md_array(dcode, dcode_null, 1, dims, lbs, TEXTOID, -1, false, TYPALIGN_INT));
	values[19] = PointerGetDatum(construct_md_array(damount, NULL, 1, dims, lbs, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[20] = PointerGetDatum(construct_md_array(dline, dline_null, 1, dims, lbs, INT4OID, 4, true, TYPALIGN_INT));
	values[21] = EmptyJsonb();
	TimersArrays(req->machine->name, req->machine->initial_status, &values[22], &values[23]);

#define IF_NEW "EXISTS (SELECT 1 FROM o)"
	/* without discounts, a plan without their (empty) INSERT */
	plan = MonthPlan(req->month, nd > 0, argtypes);
	if (plan == NULL && nd > 0)
		plan = OrderPlan(&insert_order_plan,
						 INSERT_ORDER_HEAD INSERT_ORDER_DISCOUNTS INSERT_ORDER_TAIL, 24, argtypes);
	else if (plan == NULL)
		plan = OrderPlan(&insert_order_plain_plan,
						 INSERT_ORDER_HEAD INSERT_ORDER_TAIL, 24, argtypes);
#undef IF_NEW
	ret = SPI_execute_plan(plan, values, NULL, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not insert order: %s", SPI_result_code_string(ret));
	if (SPI_processed == 0)
		return (Datum) 0;
	return SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
}

/*
 * ReserveStock
 *		A new order reserves its on_create SKUs and counts against purchase
 *		limits (stock.c; OE003 / OE005 undo everything with the statement).
 *		After the order rows, so a stock row stays locked only for the rest
 *		of the transaction.
 */
static void
ReserveStock(CreateRequest *req)
{
	StockLine  *lines = palloc(sizeof(StockLine) * req->nlines);
	int			i;

	for (i = 0; i < req->nlines; i++)
	{
		lines[i].sku = req->lines[i].sku;
		lines[i].qty = req->lines[i].qty;
	}
	StockOnCreate(req->order_id, req->buyer_id, req->nlines, lines);
}

/*
 * create_order(order_id, buyer_id, items, machine, discounts, shipping_fee,
 *				attrs, currency) -> order_ext.orders
 *		Create an order idempotently; see API.md.
 */
Datum
create_order(PG_FUNCTION_ARGS)
{
	CreateRequest req;
	Datum		row;
	Relation	rel;
	int			attempt;

	memset(&req, 0, sizeof(req));
	ParseRequest(fcinfo, &req);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	/*
	 * An archived order keeps its id: the same request returns it (as
	 * archived, unchanged), another is OE004.  Only ids of months that
	 * history has a partition for can be archived (a relcache lookup).
	 */
	row = ArchiveCovers(req.order_id) ? ExistingOrder(&req, true) : (Datum) 0;

	if (row == (Datum) 0)
	{
		/* a clear error naming create_partitions, not the executor's */
		Oid			part;
		char	   *name;

		rel = table_open(OrdersRelid(), RowExclusiveLock);
		part = OrderPartitionCheck(rel, req.order_id);
		table_close(rel, NoLock);
		/* its month's partitions are written directly (MonthPlan) */
		name = get_rel_name(part);
		if (name != NULL && strncmp(name, "orders_p", 8) == 0 && strlen(name) < NAMEDATALEN)
			strlcpy(req.month, name + 6, sizeof(req.month));
	}

	for (attempt = 0; row == (Datum) 0; attempt++)
	{
		row = InsertOrder(&req);
		if (row != (Datum) 0)
		{
			/* archived between the check above and the insert: refuse */
			if (ArchiveCovers(req.order_id) && ExistingOrder(&req, true) != (Datum) 0)
				ereport(ERROR,
						(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
						 errmsg("order " INT64_FORMAT " was archived while it was being created again",
								req.order_id),
						 errhint("Retry: the archived order is then returned.")));
			ReserveStock(&req);
			OrderNotify(req.order_id);
			break;
		}
		/* the id exists: same request returns it, another is OE004 */
		row = ExistingOrder(&req, false);
		if (row == (Datum) 0 && ArchiveCovers(req.order_id))
			row = ExistingOrder(&req, true);	/* archived meanwhile */
		if (row != (Datum) 0)
			break;
		if (attempt >= 2)
			elog(ERROR, "order " INT64_FORMAT " conflicts but cannot be read", req.order_id);
	}

	row = SPI_datumTransfer(row, false, -1);
	SPI_finish();
	PG_RETURN_DATUM(row);
}
