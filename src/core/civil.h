/*
 * civil.h: proleptic Gregorian dates <-> days since 1970-01-01 (internal).
 *
 * The one calendar routine of the library (Howard Hinnant's days_from_civil
 * and civil_from_days, on 400-year eras starting 0000-03-01): no locale, no
 * libc time zone. Retry-After's HTTP-dates and the normalizer's timestamps
 * both use it.
 */
#ifndef CBEV_CIVIL_H
#define CBEV_CIVIL_H

#include <stdint.h>

/* Days since 1970-01-01 of year y, month m (1-12), day d (1-31). */
int64_t cbev__days_from_civil(int64_t y, int m, int d);
/* The date of day `days` since 1970-01-01 (negative: before). */
void cbev__civil_from_days(int64_t days, int64_t *y, unsigned *m, unsigned *d);

#endif
