/*
 * money.h
 *		Payments and refunds (money.c), shared with after-sales and split.
 */
#ifndef ORDER_EXT_MONEY_H
#define ORDER_EXT_MONEY_H

#include "fire.h"

/* Units of one order line: refund lines, after-sale lines. */
typedef struct UnitLine
{
	int32		line_no;
	int32		qty;
} UnitLine;

/* How a refund treats stock (see stock.h). */
typedef enum RefundStock
{
	REFUND_RETURN_UNITS,		/* StockReturnLines(..., restock) */
	REFUND_STOCK_DONE			/* the units went back to stock already (after-sale
								 * return): only the buyer's holdings drop */
} RefundStock;

extern int	ParseUnitLines(Jsonb *lines, const char *field, UnitLine **out);
extern Jsonb *UnitLinesObjects(const UnitLine *lines, int nlines);
extern int64 UnitsRefundAmount(int64 net, int32 qty, int32 from, int32 to);
extern Datum RefundApply(OrderState *st, const char *refund_id, const UnitLine *lines, int nlines,
						 bool has_amount, int64 amount, bool restock, RefundStock stock,
						 int64 after_sale_id, const char *actor);
extern int64 RefundQuoteUnits(OrderState *st, const UnitLine *lines, int nlines);
extern void ClaimsCovered(OrderState *st, const UnitLine *now, int nnow, const UnitLine *claim,
						  int nclaim, int64 this_total, int64 except_id, const char *what);
extern int64 NewOrderId(void);
extern Datum new_order_id(PG_FUNCTION_ARGS);	/* ids.c */
extern Jsonb *JsonbFromString(const char *s);
extern void JsonAppendKeyString(StringInfo buf, const char *key, const char *value, bool first);
extern char *ArgIdText(FunctionCallInfo fcinfo, int argno, const char *name);

#endif
