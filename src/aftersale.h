/*
 * aftersale.h
 *		After-sales requests (aftersale.c).
 */
#ifndef ORDER_EXT_AFTERSALE_H
#define ORDER_EXT_AFTERSALE_H

#include "utils/jsonb.h"

#include "fire.h"
#include "money.h"

extern bool AfterSaleTimerFire(int64 order_id, int64 id, const char *status, int32 version,
							   const char *event, Jsonb *payload);
extern int	AfterSaleClaimedUnits(int64 order_id, int64 except_id, UnitLine **out);
extern bool AfterSaleUnderWay(int64 order_id);

#endif
