/*
 * events.h
 *		Order timeline and outbox writes (events.c).
 */
#ifndef ORDER_EXT_EVENTS_H
#define ORDER_EXT_EVENTS_H

extern void OrderEventAppend(int64 order_id, int32 version, const char *event,
							 const char *from_status, const char *to_status,
							 const char *actor, Datum payload);

#endif
