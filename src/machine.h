/*
 * machine.h
 *		Cached state machine definitions (machine.c).
 */
#ifndef ORDER_EXT_MACHINE_H
#define ORDER_EXT_MACHINE_H

typedef struct MachineDef
{
	char		name[NAMEDATALEN];	/* hash key */
	char	   *initial_status;
} MachineDef;

extern const MachineDef *MachineLookup(const char *name);

#endif
