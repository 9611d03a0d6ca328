/* ph-test-shm: fault injection into a swarm's shared memory, for tests.
 * It writes where a hostile or broken process could, through the real
 * layout (ph/channel.h, ph/shm.h), so tests need no hard-coded offsets.
 *
 *   ph-test-shm chan-out-tail SWARM VALUE   the out ring's tail (controller side)
 *   ph-test-shm chan-in-head SWARM VALUE    the in ring's head (controller side)
 *   ph-test-shm chan-out-head SWARM VALUE   the out ring's head (bridge side)
 *   ph-test-shm cmd-tail SWARM SLOT VALUE   a worker slot's command ring tail
 *   ph-test-shm layout-version SWARM VALUE  the segment header's layout version
 *                                           (the segment is opened as it is,
 *                                           whatever version it says)
 *
 * Exit 0 when written, 1 with a message otherwise. */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ph/channel.h"
#include "ph/shm.h"

static int usage(void)
{
    fprintf(stderr, "usage: ph-test-shm chan-out-tail|chan-in-head|chan-out-head SWARM VALUE\n"
                    "       ph-test-shm cmd-tail SWARM SLOT VALUE\n"
                    "       ph-test-shm layout-version SWARM VALUE\n");
    return 2;
}

static uint64_t num(const char *s)
{
    char *end;
    uint64_t v = strtoull(s, &end, 0);
    if (*end != '\0') {
        fprintf(stderr, "ph-test-shm: '%s' is not a number\n", s);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    if (argc < 4) return usage();
    char err[512];
    if (strcmp(argv[1], "chan-out-tail") == 0 || strcmp(argv[1], "chan-in-head") == 0 ||
        strcmp(argv[1], "chan-out-head") == 0) {
        struct ph_channel ch;
        if (ph_channel_open(&ch, argv[2], true, err, sizeof err) != PH_OK) {
            fprintf(stderr, "ph-test-shm: %s\n", err);
            return 1;
        }
        _Atomic uint64_t *p = strcmp(argv[1], "chan-out-tail") == 0  ? &ch.hdr->out.tail
                              : strcmp(argv[1], "chan-out-head") == 0 ? &ch.hdr->out.head
                                                                      : &ch.hdr->in.head;
        atomic_store_explicit(p, num(argv[3]), memory_order_release);
        ph_channel_close(&ch);
        return 0;
    }
    if (strcmp(argv[1], "cmd-tail") == 0 && argc == 5) {
        struct ph_segment seg;
        if (ph_segment_open(&seg, argv[2], true, err, sizeof err) != PH_OK) {
            fprintf(stderr, "ph-test-shm: %s\n", err);
            return 1;
        }
        uint64_t slot = num(argv[3]);
        if (slot >= seg.slots) {
            fprintf(stderr, "ph-test-shm: slot %" PRIu64 " beyond %u\n", slot, seg.slots);
            return 1;
        }
        atomic_store_explicit(&ph_segment_slot(&seg, (uint32_t)slot)->command.tail, num(argv[4]),
                              memory_order_release);
        ph_segment_close(&seg);
        return 0;
    }
    if (strcmp(argv[1], "layout-version") == 0 && argc == 4) {
        /* Not through ph_segment_open: it refuses the versions this tool
         * writes. Only the header's first page is mapped. */
        uint64_t v = num(argv[3]);
        char path[128];
        snprintf(path, sizeof path, "/ph.%s", argv[2]);
        int fd = shm_open(path, O_RDWR, 0);
        if (fd < 0) {
            perror("ph-test-shm: shm_open");
            return 1;
        }
        struct ph_shm_header *h =
            mmap(NULL, PH_SHM_HEADER_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        close(fd);
        if (h == MAP_FAILED) {
            perror("ph-test-shm: mmap");
            return 1;
        }
        h->layout_version = (uint32_t)v;
        munmap(h, PH_SHM_HEADER_SIZE);
        return 0;
    }
    return usage();
}
