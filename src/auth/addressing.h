/*
 * postd -t for addressing: the aliases file (syntax, loops, targets that
 * are nobody, expansions over alias_max_expansions) and the role
 * addresses (postmaster_address unset, or pointing at nobody).
 */
#ifndef POSTD_ADDRESSING_H
#define POSTD_ADDRESSING_H

#include <stdio.h>

#include "config/config.h"

/* Prints each problem as "postd: error: ..." and each warning as
 * "postd: warning: ..." to out. Returns the number of errors. */
unsigned addressing_check(const struct config *cfg, FILE *out);

#endif
