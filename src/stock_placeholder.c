/*
 * stock_placeholder.c
 *		placeholder until stock.c lands; delete at merge.
 *
 * The money module (refunds, after-sale returns, split_order) calls the
 * stock interface of stock.h; until the stock module is merged these do
 * nothing.
 */
#include "postgres.h"

#include "stock.h"

void
StockReturnUnits(int64 order_id, const char *sku, int64 qty, bool restock)
{
	(void) order_id;
	(void) sku;
	(void) qty;
	(void) restock;
}

void
StockTransfer(int64 from_order_id, int64 to_order_id, const char *sku, int64 qty)
{
	(void) from_order_id;
	(void) to_order_id;
	(void) sku;
	(void) qty;
}
