/*
 * stock.h
 *		Stock reservations, deduction policies and purchase limits (stock.c).
 */
#ifndef ORDER_EXT_STOCK_H
#define ORDER_EXT_STOCK_H

#include "postgres.h"

/* One order line as stock sees it. */
typedef struct StockLine
{
	const char *sku;
	int64		qty;
} StockLine;

/* create_order, for a new order: reserve on_create SKUs, count purchase limits. */
extern void StockOnCreate(int64 order_id, int64 buyer_id, int nlines, const StockLine *lines);

/* Transition effects (machine.h OE_EFFECT_STOCK_*), on a locked order. */
extern void StockReserveOrder(int64 order_id, bool count_again);
extern void StockCommitOrder(int64 order_id);
extern void StockReleaseOrder(int64 order_id, bool counted);
/* whether any SKU has a purchase limit (then holdings are kept) */
extern bool StockLimited(void);

/*
 * Units of order lines go back (refund by lines, or an after-sale return).
 * With buckets, per SKU, releases that many units of the order's held
 * reservation while it still holds one (not shipped yet); otherwise, with
 * restock, gives them back to on_hand.  With holdings, they stop counting
 * against the buyer's purchase limit (without: they stopped when the order's
 * stock was released, or they are a return not refunded yet).  No-op
 * for a SKU without a stock row.  Rows are locked by SKU, stock
 * before holdings, whatever the order of the lines, so it cannot deadlock
 * with create_order, ship or cancel.
 */
extern void StockReturnLines(int64 order_id, int nlines, const StockLine *lines, bool buckets,
							 bool restock, bool holdings);

/* Lock the stock rows an order holds reservations in, in the common order. */
extern uint64 StockLockOrder(int64 order_id);
extern bool StockNoWait(bool on);

/*
 * split_order: move qty units of sku's held reservation (and the buyer's
 * purchase-limit holding) from one order to another.
 */
extern void StockTransfer(int64 from_order_id, int64 to_order_id, const char *sku, int64 qty);

#endif
