/*
 * events.h
 *		Order timeline and outbox writes (events.c).
 */
#ifndef ORDER_EXT_EVENTS_H
#define ORDER_EXT_EVENTS_H

#include "nodes/parsenodes.h"

/*
 * The SQL that writes one event row and its outbox row, as two CTEs named
 * ev and evx, for statements that write other rows too (create_order);
 * nothing is written unless the SQL condition COND holds.  The arguments
 * are SQL expressions (usually $n parameters).  This and OrderEventAppend
 * are the only writers of order_events and outbox rows for events.
 */
#define OE_EVENT_CTES(COND, ORDER_ID, VERSION, EVENT, FROM, TO, ACTOR, PAYLOAD) \
	OE_EVENT_CTES_IN("order_ext.order_events", COND, ORDER_ID, VERSION, EVENT, FROM, TO, ACTOR, PAYLOAD)
/* the same into another timeline table (TABLE: order_ext.order_events{h}) */
#define OE_EVENT_CTES_IN(TABLE, COND, ORDER_ID, VERSION, EVENT, FROM, TO, ACTOR, PAYLOAD) \
	"ev AS (INSERT INTO " TABLE \
	" (order_id, version, event, from_status, to_status, actor, payload, created_at)" \
	" SELECT " ORDER_ID ", " VERSION ", " EVENT ", " FROM ", " TO ", " ACTOR ", " PAYLOAD ", now()" \
	" WHERE " COND \
	" RETURNING order_id, version, event, payload, created_at)," \
	" evx AS (INSERT INTO order_ext.outbox (order_id, version, event, payload, created_at)" \
	" SELECT order_id, version, event, payload, created_at FROM ev)"

extern void OrderEventAppend(int64 order_id, int32 version, const char *event,
							 const char *from_status, const char *to_status,
							 const char *actor, Datum payload);
extern void OrderEventAppendIn(bool archived, int64 order_id, int32 version, const char *event,
							   const char *from_status, const char *to_status,
							   const char *actor, Datum payload);
extern void OutboxNotice(int64 order_id, int32 version, const char *event, Datum payload);
extern void OrderNotify(int64 order_id);
extern void EventsInit(void);
extern void EventsBeforeListen(ListenStmt *stmt);
extern Datum EmptyJsonb(void);

#endif
