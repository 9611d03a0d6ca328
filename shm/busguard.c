/* SIGBUS guard for shared mappings (ph/busguard.h). */
#include "ph/busguard.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* The watch table. The handler runs on the thread that made the access,
 * interrupting it, so plain program order plus a signal fence is enough
 * between the owner's updates and the handler's reads; relaxed atomics keep
 * each word whole. */
static _Atomic uintptr_t g_lo[PH_BUSGUARD_SLOTS], g_hi[PH_BUSGUARD_SLOTS];
static _Atomic int g_prot[PH_BUSGUARD_SLOTS];
static _Atomic unsigned g_faulted;
static uintptr_t g_page = 4096;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    const uintptr_t at = (uintptr_t)si->si_addr;
    for (unsigned i = 0; i < PH_BUSGUARD_SLOTS; i++) {
        const uintptr_t lo = atomic_load_explicit(&g_lo[i], memory_order_relaxed);
        const uintptr_t hi = atomic_load_explicit(&g_hi[i], memory_order_relaxed);
        if (lo == 0 || at < lo || at >= hi) continue;
        /* From the faulting page to the end of the mapping: everything past
         * the object's new end faults, and it is a suffix. mmap is a plain
         * system call here; the retried access then finds zeros. */
        const uintptr_t page = at & ~(g_page - 1);
        void *r = mmap((void *)page, hi - page, atomic_load_explicit(&g_prot[i], memory_order_relaxed),
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        if (r == MAP_FAILED) break;
        atomic_fetch_or_explicit(&g_faulted, 1u << i, memory_order_relaxed);
        return;
    }
    /* Not ours, or not repairable: the default action, as with no handler. */
    signal(sig, SIG_DFL);
    raise(sig);
}

int ph_busguard_install(void)
{
    const long page = sysconf(_SC_PAGESIZE);
    if (page > 0) g_page = (uintptr_t)page;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    return sigaction(SIGBUS, &sa, NULL) == 0 ? 0 : -errno;
}

void ph_busguard_watch(unsigned slot, void *base, size_t size, int prot)
{
    if (slot >= PH_BUSGUARD_SLOTS) return;
    /* Closed first, so a handler never sees the new start with the old end. */
    atomic_store_explicit(&g_lo[slot], 0, memory_order_relaxed);
    atomic_signal_fence(memory_order_seq_cst);
    if (base == NULL) return;
    atomic_store_explicit(&g_hi[slot], (uintptr_t)base + size, memory_order_relaxed);
    atomic_store_explicit(&g_prot[slot], prot, memory_order_relaxed);
    atomic_signal_fence(memory_order_seq_cst);
    atomic_store_explicit(&g_lo[slot], (uintptr_t)base, memory_order_relaxed);
    /* The table is complete before any later access of ours can fault. */
    atomic_signal_fence(memory_order_seq_cst);
}

unsigned ph_busguard_take(void)
{
    return atomic_exchange_explicit(&g_faulted, 0, memory_order_relaxed);
}

int ph_busguard_remap(void *base, size_t size, int fd, int prot)
{
    void *r = mmap(base, size, prot, MAP_SHARED | MAP_FIXED, fd, 0);
    return r == MAP_FAILED ? -errno : 0;
}
