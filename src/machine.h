/*
 * machine.h
 *		Cached state machine definitions (machine.c).
 */
#ifndef ORDER_EXT_MACHINE_H
#define ORDER_EXT_MACHINE_H

#include "utils/jsonb.h"
#include "utils/timestamp.h"

#define OE_NAME_LEN 64

/* The actor of transitions only order_ext's own C code may fire (split). */
#define OE_ACTOR_INTERNAL "internal"			/* names are at most 63 bytes (table CHECKs) */

/* The event split_order fires on the parent (its machine names the status). */
#define OE_EVENT_SPLIT "split"

/*
 * The event refund() fires when an order is refunded in full; OrderFire
 * refuses it on an order that is not (OE001), whoever names it.
 */
#define OE_EVENT_CLOSE "close"

/* Effects: the fixed vocabulary of what a transition does. */
#define OE_EFFECT_STAMP_PAID		(1 << 0)
#define OE_EFFECT_STAMP_SHIPPED		(1 << 1)
#define OE_EFFECT_STAMP_RECEIVED	(1 << 2)
#define OE_EFFECT_STAMP_COMPLETED	(1 << 3)
#define OE_EFFECT_STAMP_CLOSED		(1 << 4)
#define OE_EFFECT_MERGE_ATTRS		(1 << 5)
#define OE_EFFECT_STOCK_RESERVE		(1 << 6)	/* reserve what is not reserved yet (pay) */
#define OE_EFFECT_STOCK_COMMIT		(1 << 7)	/* reservations leave the warehouse (ship) */
#define OE_EFFECT_STOCK_RELEASE		(1 << 8)	/* reservations and limits go back (cancel) */

typedef struct TimeoutDef
{
	Interval	after;
	char		event[OE_NAME_LEN];
	struct TimeoutDef *next;
} TimeoutDef;

typedef struct MachineDef
{
	char		name[OE_NAME_LEN];	/* hash key */
	char		initial_status[OE_NAME_LEN];
	int			nterminal;
	char	  **terminal;
	/*
	 * Some transition with stock:release leads to a status that is not
	 * terminal, or some transition leaves a terminal status: an order's
	 * units may have been released other than by the transition that
	 * entered its status (purchase limits read its timeline then: fire.c,
	 * UnitsCounted).
	 */
	bool		stock_reopens;
} MachineDef;

typedef struct TransitionDef
{
	char		key[3 * OE_NAME_LEN];	/* machine \0 from \0 event: hash key */
	char		to_status[OE_NAME_LEN];
	int			nactors;
	char	  **actors;
	uint32		effects;
	Jsonb	   *requires;		/* NULL: no guard */
	int			count;			/* > 1: the machine defines this pair twice */
} TransitionDef;

/* The machine every after-sales request runs on (aftersale.c). */
#define AFTER_SALE_MACHINE	"after_sale"
/* refund ids of after-sales refunds: this, then the request id (refund() refuses it) */
#define AFTER_SALE_REFUND_PREFIX "after_sale:"

extern const MachineDef *MachineLookup(const char *name);
extern const TransitionDef *TransitionLookup(const char *machine, const char *from,
											 const char *event);
extern const TimeoutDef *TimeoutsLookup(const char *machine, const char *status);
extern bool MachineIsTerminal(const MachineDef *m, const char *status);
extern bool TransitionAllowsActor(const TransitionDef *t, const char *actor);

#endif
