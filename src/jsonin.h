/*
 * jsonin.h
 *		Typed, field-naming access to request JSON (jsonin.c).
 */
#ifndef ORDER_EXT_JSONIN_H
#define ORDER_EXT_JSONIN_H

#include "utils/jsonb.h"

extern JsonbContainer *JsonArgArray(Jsonb *jb, const char *field);
extern JsonbContainer *JsonArgObject(Jsonb *jb, const char *field);
extern JsonbContainer *JsonArrayObject(JsonbContainer *array, int i, const char *field);
extern void JsonCheckKeys(JsonbContainer *obj, const char *const *allowed, int nallowed,
						  const char *field, int i);
extern bool JsonGet(JsonbContainer *obj, const char *key, JsonbValue *out);
extern int64 JsonFieldInt(JsonbValue *v, const char *field, int i, const char *key,
						  int64 min, int64 max);
extern int64 JsonFieldMoney(JsonbValue *v, const char *field, int i, const char *key);
extern char *JsonFieldString(JsonbValue *v, const char *field, int i, const char *key,
							 int maxlen);
extern void JsonMissing(const char *field, int i, const char *key);

#endif
