/*
 * aftersale.h
 *		After-sales requests (aftersale.c).
 */
#ifndef ORDER_EXT_AFTERSALE_H
#define ORDER_EXT_AFTERSALE_H

#include "utils/jsonb.h"

extern bool AfterSaleTimerFire(int64 order_id, int64 id, const char *status, int32 version,
							   const char *event, Jsonb *payload);

#endif
