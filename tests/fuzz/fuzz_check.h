/* Invariant checks shared by the fuzz harnesses: a broken invariant is a
 * finding, reported like a crash (abort), with the place and what broke. */
#ifndef PH_FUZZ_CHECK_H
#define PH_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* A fixed-size text field must hold its NUL inside the field. */
#define FUZZ_CHECK_TERMINATED(field) FUZZ_CHECK(memchr((field), '\0', sizeof(field)) != NULL)

#endif
