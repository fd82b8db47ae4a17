/*
 * stock.h
 *		What money needs from stock (src/stock.c provides it).
 */
#ifndef ORDER_EXT_STOCK_H
#define ORDER_EXT_STOCK_H

#include "postgres.h"

/* src/stock.h */
/* Units of an order line go back (refund by lines, or an after-sale return).
 * Releases that many units of the order's held reservation of sku while it
 * still holds one (not shipped yet); otherwise, with restock, gives them back
 * to on_hand. Either way they stop counting against the buyer's purchase
 * limit. No-op for a SKU without a stock row. */
extern void StockReturnUnits(int64 order_id, const char *sku, int64 qty, bool restock);
/* split_order: move qty units of sku's held reservation (and the buyer's
 * purchase-limit holding) from one order to another. */
extern void StockTransfer(int64 from_order_id, int64 to_order_id, const char *sku, int64 qty);

#endif
