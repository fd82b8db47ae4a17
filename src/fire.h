/*
 * fire.h
 *		The state machine engine (fire.c).
 */
#ifndef ORDER_EXT_FIRE_H
#define ORDER_EXT_FIRE_H

#include "machine.h"
#include "stock.h"

/*
 * What refunds and returns need of a locked order beyond OrderState, read
 * once (OrderFactsOf) and kept until the order moves (OrderFire).
 */
typedef struct OrderFacts
{
	bool		valid;
	bool		paid;			/* paid_at set */
	bool		shipped;		/* shipped_at set */
	int64		shipping_fee;
	bool		entered;		/* its status was entered by a transition, not at creation */
	char		entered_from[OE_NAME_LEN];	/* that transition's from status */
	char		entered_by[OE_NAME_LEN];	/* and event ("create" at creation) */
} OrderFacts;

/* What fire() reads of a locked order. */
typedef struct OrderState
{
	int64		order_id;
	char		machine[OE_NAME_LEN];
	char		status[OE_NAME_LEN];
	int32		version;
	int32		status_version;
	Jsonb	   *attrs;
	int64		payable_total;
	int64		paid_total;
	int64		refunded_total;
	int64		paid_delta;		/* paid_total change made with the next transition (record_payment: +payment; split_order: -paid_total) */
	bool		archived;		/* in the history tables (ArchivedOrderLock) */
	OrderFacts	facts;			/* OrderFactsOf */
} OrderState;

extern bool OrderLock(int64 order_id, OrderState *st);
extern bool ArchivedOrderLock(int64 order_id, OrderState *st);
extern void OrderLockLive(int64 order_id, OrderState *st, const char *what);
extern const OrderFacts *OrderFactsOf(OrderState *st);
extern void OrderReturnUnits(OrderState *st, int nlines, const StockLine *lines,
							 bool buckets, bool restock, bool holdings);
extern void OrderNotFound(int64 order_id);
extern void RefuseInternalActor(const char *what, int64 id, int32 version, bool has_expected,
								int32 expected, const char *event, const char *actor);
extern void CheckVersion(const char *what, int64 id, int32 current, bool has_expected,
						 int32 expected);
extern const TransitionDef *TransitionCheck(const char *what, int64 id, const char *machine,
											const char *status, const char *event,
											const char *actor, Jsonb *attrs);
extern Datum OrderFire(OrderState *st, const char *event, bool has_expected, int32 expected,
					   const char *actor, Jsonb *payload);

#endif
