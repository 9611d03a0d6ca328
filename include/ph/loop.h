/* The event loop of the project's processes (controller, bridge,
 * orchestrator): one io_uring, no busy-waiting, no threads.
 *
 * A process asks for completions: a timeout (its tick), a poll of an fd (a
 * pidfd that becomes readable when a worker dies, a socket with data), a
 * read or a write (a followed file, the journal), and the signals it wants
 * as events (SIGTERM, SIGINT: read from a signalfd). Each request names a
 * callback, a context and a caller's tag; ph_loop_run() calls it with the
 * result (bytes, or a negative errno: -ETIME for a timeout that expired,
 * -ECANCELED for a cancelled request).
 *
 * A request has an id (never 0) that stays unique for the loop's life
 * (slot and generation), so ph_loop_cancel() of a request that already
 * completed cancels nothing else, and a late completion is never mistaken
 * for a newer request. Requests are kept by the loop: callers keep no
 * per-request memory, and a completion about something the caller has
 * forgotten is recognised by its tag. */
#ifndef PH_LOOP_H
#define PH_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct ph_loop;

typedef void (*ph_loop_fn)(void *ctx, uint64_t tag, int res);

/* A loop with room for `entries` submissions per round (a power of two;
 * more in flight is fine: submissions are flushed when the queue fills). */
struct ph_loop *ph_loop_new(unsigned entries, char *err, size_t errlen);
void ph_loop_free(struct ph_loop *l);

/* Completes after `ms` milliseconds with -ETIME. */
uint64_t ph_loop_timeout(struct ph_loop *l, uint32_t ms, ph_loop_fn fn, void *ctx, uint64_t tag);
/* Completes once `fd` has one of `events` (poll(2) bits), with the events. */
uint64_t ph_loop_poll(struct ph_loop *l, int fd, unsigned events, ph_loop_fn fn, void *ctx,
                      uint64_t tag);
/* read(2) / write(2) of `len` bytes at `offset` (-1: the file position).
 * The buffer must stay valid until the completion. */
uint64_t ph_loop_read(struct ph_loop *l, int fd, void *buf, unsigned len, uint64_t offset,
                      ph_loop_fn fn, void *ctx, uint64_t tag);
uint64_t ph_loop_write(struct ph_loop *l, int fd, const void *buf, unsigned len, uint64_t offset,
                       ph_loop_fn fn, void *ctx, uint64_t tag);
/* Cancels a request (its callback then gets -ECANCELED, or its result if it
 * had completed already). Unknown or finished ids are ignored. */
void ph_loop_cancel(struct ph_loop *l, uint64_t id);

/* Blocks the signals and delivers each as a call of fn(ctx, 0, signo), for
 * as long as the loop runs. 0, or -1 with a message. */
int ph_loop_signals(struct ph_loop *l, const int *signos, int n, ph_loop_fn fn, void *ctx,
                    char *err, size_t errlen);

/* Submits what waits, waits for at least one completion and dispatches all
 * that are there. Returns the number dispatched, or a negative errno. */
int ph_loop_once(struct ph_loop *l);
/* ph_loop_once() until ph_loop_stop(); 0, or a negative errno. */
int ph_loop_run(struct ph_loop *l);
void ph_loop_stop(struct ph_loop *l);
bool ph_loop_stopped(const struct ph_loop *l);
/* Requests in flight (for tests and leak checks). */
size_t ph_loop_pending(const struct ph_loop *l);

#ifdef __cplusplus
}
#endif
#endif
