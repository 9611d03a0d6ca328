/* The fuzz harnesses' shared-memory objects: one private name per process,
 * "ph.pht-fuzz-<pid>" (segment) and "ph.pht-fuzz-<pid>.bridge" (channel),
 * written from an input and removed again within the same input. A run
 * that crashes leaves one behind: tests/fuzz/run removes it by the pid. */
#ifndef PH_FUZZ_SHM_H
#define PH_FUZZ_SHM_H

#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ph/common.h"

/* "pht-fuzz-<pid>": the swarm id both harnesses open. */
static inline void fuzz_swarm_id(char id[PH_ID_MAX])
{
    snprintf(id, PH_ID_MAX, "pht-fuzz-%ld", (long)getpid());
}

/* Writes `size` bytes as the object /dev/shm`name`, with the swarm id put
 * in at `id_at` (when the input reaches that far) so the header can name
 * this process's swarm; everything else is the input's. false on a system
 * error (reported: a harness that cannot write its object tests nothing). */
static inline bool fuzz_shm_write(const char *name, const uint8_t *data, size_t size, size_t id_at,
                                  const char *id)
{
    int fd = shm_open(name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        perror("fuzz: shm_open");
        return false;
    }
    size_t off = 0;
    bool ok = true;
    while (ok && off < size) {
        ssize_t n = write(fd, data + off, size - off);
        ok = n > 0;
        off += ok ? (size_t)n : 0;
    }
    if (ok && size >= id_at + PH_ID_MAX) {
        char field[PH_ID_MAX] = {0};
        snprintf(field, sizeof field, "%s", id);
        ok = pwrite(fd, field, sizeof field, (off_t)id_at) == (ssize_t)sizeof field;
    }
    if (!ok) perror("fuzz: write");
    close(fd);
    return ok;
}

#endif
