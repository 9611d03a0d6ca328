/* Surviving shared memory that shrinks under us.
 *
 * Another process can truncate a shared-memory object we have mapped; every
 * access beyond its new end then raises SIGBUS, which kills the process by
 * default. The guard watches a few mappings: a SIGBUS inside one of them is
 * answered, inside the handler, by mapping private zero pages over the part
 * of the mapping from the faulting page to its end (a truncation always cuts
 * a suffix), and the faulting access is retried there. The code that was
 * running goes on undisturbed (reading zeros, writing into pages no one
 * else sees) and nothing is left half-done by a jump out of it. At a safe
 * point the owner asks which mappings faulted (ph_busguard_take), restores
 * the object's size and puts the shared pages back (ph_busguard_remap).
 *
 * A SIGBUS outside the watched mappings takes the default action, as if no
 * handler were installed. One guard per process; the watch table is written
 * only by the thread that also makes the accesses (SIGBUS on a memory access
 * is delivered to the faulting thread, synchronously). */
#ifndef PH_BUSGUARD_H
#define PH_BUSGUARD_H

#include <stddef.h>
#include <stdint.h>

#define PH_BUSGUARD_SLOTS 4

/* Installs the SIGBUS handler. 0, or -errno. */
int ph_busguard_install(void);
/* Watches [base, base + size) as mapping `slot` (< PH_BUSGUARD_SLOTS), with
 * the protection zero pages get there (PROT_READ, or PROT_READ|PROT_WRITE).
 * base NULL stops watching the slot. Call it whenever the mapping changes,
 * before the new one is touched. */
void ph_busguard_watch(unsigned slot, void *base, size_t size, int prot);
/* The slots that faulted since the last call, as a bit mask (bit = slot),
 * and clears them. */
unsigned ph_busguard_take(void);
/* Maps `size` bytes of `fd` from offset 0 at `base` again (MAP_SHARED,
 * MAP_FIXED: addresses held elsewhere stay valid), replacing the zero pages
 * the guard put there. The object must be at least `size` bytes long again.
 * 0, or -errno. */
int ph_busguard_remap(void *base, size_t size, int fd, int prot);

#endif
