/* Worker slots (include/ph/shm.h, shm/slot.c) and the controller's scan
 * (actors/swarm-controller/ctl.c) as a Promela model.
 *
 * Two workers claim slots of one segment for the same (role, instance)
 * pair, as two copies of one worker started at once would; a controller
 * scans the slots (tracks, drains, expires, frees) and a tool reads slot
 * identities (phctl shm-dump). Each worker, once ACTIVE, writes one status
 * record into its slot's ring and detaches.
 *
 * State word: state (FREE, CLAIMING, ACTIVE, DETACHED, JOINING), claim
 * counter and pid, one byte here, changed only by compare-and-swap (an
 * atomic block that compares the whole word). The identity is two words,
 * pid and start time, each written in its own step, read under the seqlock
 * of ph_slot_identity_read(). The status ring is reduced to what ownership
 * needs: a one-record cell, its tail and head.
 *
 * A process is (pid, start time); `alive[p]` is what ph_proc_alive() says
 * of the identity the slot names. Each worker may be killed (alive becomes
 * false, it takes no further step) or stopped for good (alive stays true:
 * SIGSTOP, or a claimer descheduled for as long as one likes) before any
 * step; every interleaving also covers a worker that is merely slow.
 * Memory: the orders in shm/slot.c are release/acquire on the state word
 * and seq_cst for the JOINING CAS and the duplicate scan; Spin's
 * interleavings are sequentially consistent, which is what seq_cst gives
 * the scan. MUT_SB_ANNOUNCE shows what acquire/release alone would allow
 * there (the store-buffer reordering of the claim-index announcement after
 * the scan's loads).
 *
 * Properties (assertions; -DONLY=<n> checks one):
 *   1 one_holder   never two live processes hold the pair ACTIVE at once
 *   2 identity     an identity read that succeeds is one claim's identity
 *   3 no_foreign   a worker never writes into a slot it no longer owns, and
 *                  the controller never drains a record from another
 *                  process than the owner it tracks (a paused or dead
 *                  producer cannot corrupt the next owner)
 *   4 dead_freed   once every worker is done, dead or stopped, no slot is
 *                  held by a dead process (expiry by process identity)
 *   plus invalid end states: nobody waits for ever on another process.
 *
 * Mutants (tests/model/run requires each to fail its property):
 *   MUT_SB_ANNOUNCE      scan before the announcement is visible  -> 1
 *   MUT_NO_WAIT          a JOINING claim in a higher slot is not
 *                        waited for                               -> 1
 *   MUT_NO_SEQLOCK       identity read without the second load    -> 2
 *   MUT_AGE_EXPIRY       the controller frees claims and owners that
 *                        are slow, not gone                       -> 3
 *   MUT_NO_CLAIM_EXPIRY  CLAIMING/JOINING never expired           -> 4
 *   MUT_RAISE_AFTER_CLAIM  slot_high_water raised after the claim CAS
 *                        (shm/slot.c did so before this model found
 *                        that a claimer killed between the two leaves a
 *                        slot no scan reaches)                    -> 4
 */

#define NSLOT 2
#define NW 2 /* workers: pids 1..NW */
#ifndef KILLABLE
#define KILLABLE 1
#endif

#define FREE 0
#define CLAIMING 1
#define ACTIVE 2
#define DETACHED 3
#define JOINING 4
/* The state word: state (bits 0-2), claim counter mod 8 (bits 3-5), pid (6-7). */
#define WORD(st, sq, p) ((st) + ((sq) % 8) * 8 + (p) * 64)
#define W_ST(w) ((w) % 8)
#define W_SEQ(w) (((w) / 8) % 8)
#define W_PID(w) ((w) / 64)
#define START(p) (10 + (p)) /* each worker's /proc start time */

#ifndef ONLY
#define ONLY 0
#endif
#if ONLY == 0 || ONLY == 1
#define CHECK_ONE_HOLDER assert(!two_holders)
#else
#define CHECK_ONE_HOLDER skip
#endif
#if ONLY == 0 || ONLY == 2
#define CHECK_IDENTITY assert(!mixed_identity)
#else
#define CHECK_IDENTITY skip
#endif
#if ONLY == 0 || ONLY == 3
#define CHECK_FOREIGN assert(!foreign_write)
#else
#define CHECK_FOREIGN skip
#endif
#if ONLY == 0 || ONLY == 4
#define CHECK_DEAD_FREED assert(!dead_held)
#else
#define CHECK_DEAD_FREED skip
#endif

byte word[NSLOT];     /* ph_slot.state */
byte cidx[NSLOT];     /* the claim index: pair hash per slot, never cleared */
#define PAIR 1        /* the workers' (role, instance) hash */
byte hw;              /* slot_high_water */
byte id_pid[NSLOT];   /* identity words */
byte id_start[NSLOT];
byte rec[NSLOT];      /* status ring: one record cell, holding its writer's pid */
byte rtail[NSLOT], rhead[NSLOT];
bool alive[NW + 1];
byte kill[NW + 1];    /* 0 runs, 1 killed, 2 stopped for good */
byte done;            /* workers that will take no further step */

bool two_holders, mixed_identity, foreign_write, dead_held;

/* ph_slot_identity_read(): w1 (acquire), identity words (relaxed),
 * acquire fence, w2; ok when w1 == w2 and the slot is not FREE. A CLAIMING
 * slot yields only the pid in its word. Checks property 2 on success. */
inline identity_read(i, ok, w1, rpid, rstart)
{
    w1 = word[i];
    if
    :: W_ST(w1) == FREE -> ok = false
    :: W_ST(w1) == CLAIMING -> ok = true; rpid = W_PID(w1); rstart = 0
    :: else ->
        rpid = id_pid[i];
        rstart = id_start[i];
#ifdef MUT_NO_SEQLOCK
        ok = true;
#else
        ok = (word[i] == w1);
#endif
        if
        :: ok && (rpid != W_PID(w1) || rstart != START(rpid)) ->
            mixed_identity = true;
            CHECK_IDENTITY
        :: else
        fi
    fi
}

/* The pair is held ACTIVE by two live processes. */
#define HOLDERS_TWO (W_ST(word[0]) == ACTIVE && W_ST(word[1]) == ACTIVE && \
                     alive[W_PID(word[0])] && alive[W_PID(word[1])])

proctype worker(byte me)
{
    byte i = 0, k = 0, w, seq, j, ow, rw, rpid, rstart, mine, t;
    bool ok;
    {
        /* ph_slot_claim(): the first FREE slot whose CAS succeeds, searched
         * from the segment's claim hint (any slot: a hint shared by claimers). */
        if
        :: i = 0
        :: i = 1
        fi;
        do
        :: k < NSLOT ->
            w = word[i];
            if
            :: W_ST(w) == FREE ->
                seq = W_SEQ(w) + 1;
#ifndef MUT_RAISE_AFTER_CLAIM
S1_raise_high_water: /* before the CAS: a claimer dying right after it
                      * must leave a slot the controller's scan reaches */
                atomic { if :: hw < i + 1 -> hw = i + 1 :: else fi };
#endif
S2_claim_cas:
                atomic {
                    if
                    :: word[i] == w -> word[i] = WORD(CLAIMING, seq, me); ok = true
                    :: else -> ok = false
                    fi
                };
                if
                :: ok -> w = 0; break
                :: else
                fi
            :: else
            fi;
            atomic { i = (i + 1) % NSLOT; k++; w = 0 }
        :: else -> goto out /* PH_ERR_FULL */
        od;
        k = 0;
        mine = i;
#ifdef MUT_RAISE_AFTER_CLAIM
        atomic { if :: hw < mine + 1 -> hw = mine + 1 :: else fi };
#endif
S3_write_identity:
        atomic {
            if /* a live claimer writing a slot it lost */
            :: word[mine] != WORD(CLAIMING, seq, me) -> foreign_write = true; CHECK_FOREIGN
            :: else
            fi;
            id_pid[mine] = me
        };
        id_start[mine] = START(me);
S4_reset_rings:
        atomic { rtail[mine] = 0; rhead[mine] = 0 };
S5_join_cas:
        atomic {
            if
            :: word[mine] == WORD(CLAIMING, seq, me) -> word[mine] = WORD(JOINING, seq, me); ok = true
            :: else -> ok = false
            fi
        };
        if
        :: !ok -> goto out /* the controller freed it: C tries another slot */
        :: else
        fi;
#ifndef MUT_SB_ANNOUNCE
S5_announce: /* the pair's hash into the claim index (seq_cst) */
        cidx[mine] = PAIR;
#endif
S6_dup_scan: /* check_duplicates(): slots announcing our pair only */
        j = 0;
        do
        :: j >= hw -> break
        :: j < hw && j == mine -> j++
        :: j < hw && j != mine && cidx[j] != PAIR -> j++
        :: j < hw && j != mine && cidx[j] == PAIR ->
            ow = word[j];
            if
            :: W_ST(ow) != ACTIVE && W_ST(ow) != JOINING -> atomic { j++; ow = 0 }
            :: else ->
                identity_read(j, ok, rw, rpid, rstart);
                if
                :: !ok || rw != ow -> /* changed while read: look again */
                    atomic { ow = 0; rw = 0; rpid = 0; rstart = 0; ok = false }
                :: else ->
                    if
                    :: !(alive[rpid] && rstart == START(rpid)) -> /* not live */
                        atomic { j++; ow = 0; rw = 0; rpid = 0; rstart = 0; ok = false }
                    :: else ->
                        if
                        :: W_ST(ow) == ACTIVE || j < mine -> goto lose /* PH_ERR_BUSY */
                        :: else ->
#ifdef MUT_NO_WAIT
                            atomic { j++; ow = 0; rw = 0; rpid = 0; rstart = 0; ok = false }
#else
                            /* JOINING above us: wait for it to resolve, or
                             * give up after 2 s (PH_ERR_BUSY). */
                            if
                            :: word[j] != ow ->
                                atomic { ow = 0; rw = 0; rpid = 0; rstart = 0; ok = false }
                            :: true -> goto lose
                            fi
#endif
                        fi
                    fi
                fi
            fi
        od;
        j = 0;
#ifdef MUT_SB_ANNOUNCE
        /* The announcement becomes visible only after the scan's loads. */
        cidx[mine] = PAIR;
#endif
S8_active_cas:
        atomic {
            if
            :: word[mine] == WORD(JOINING, seq, me) ->
                word[mine] = WORD(ACTIVE, seq, me);
                ok = true;
                if
                :: HOLDERS_TWO -> two_holders = true; CHECK_ONE_HOLDER
                :: else
                fi
            :: else -> ok = false
            fi
        };
        if
        :: !ok -> goto out
        :: else
        fi;
        /* One status record: ph_worker_publish_status(). */
P1_reserve:
        if
        :: rtail[mine] == rhead[mine] -> /* room (the producer's own tail; head acquired) */
P3_write_body:
            atomic {
                if
                :: word[mine] != WORD(ACTIVE, seq, me) -> foreign_write = true; CHECK_FOREIGN
                :: else
                fi;
                rec[mine] = me
            };
P4_publish_tail:
            rtail[mine] = rtail[mine] + 1
        :: else /* full: dropped */
        fi;
S9_detach: /* from the exact word the claim returned */
        atomic { if :: word[mine] == WORD(ACTIVE, seq, me) -> word[mine] = WORD(DETACHED, seq, me) :: else fi };
        goto out;
lose:
S7_lose_free:
        atomic { if :: word[mine] == WORD(JOINING, seq, me) -> word[mine] = WORD(FREE, seq, 0) :: else fi };
out:
        skip
    } unless { kill[me] != 0 };
    atomic {
        if
        :: kill[me] != 2 -> alive[me] = false /* killed, or exited */
        :: else
        fi;
        done++;
        i = 0; k = 0; w = 0; seq = 0; j = 0; ow = 0; rw = 0; rpid = 0; rstart = 0; mine = 0; t = 0;
        ok = false
    };
    if
    :: kill[me] == 2 ->
end_stopped:
        false /* alive, never runs again */
    :: else
    fi
}

/* ph_slot_free(): CAS from `expect` to FREE, claim counter kept. */
inline slot_free(i, expect)
{
    atomic { if :: word[i] == expect -> word[i] = WORD(FREE, W_SEQ(expect), 0) :: else fi }
}

active proctype controller()
{
    byte i, w, rw, rpid, rstart, t, dep, last = 0;
    byte tw[NSLOT];   /* tracked word, 0: not tracked */
    byte tpid[NSLOT]; /* tracked owner */
    byte ch[NSLOT];   /* consumer head */
    bool ok;
    do
    :: true ->
        /* ctl_scan() with ctl_check_liveness(). The last two scans start
         * after every worker is done; after them, property 4. */
        atomic { /* a whole scan is one step (README: abstractions) */
        if :: done == NW -> last++ :: else fi;
        i = 0;
        do
        :: i >= hw || i >= NSLOT -> break
        :: i < hw && i < NSLOT ->
            /* One slot's visit is one step (see README: the controller's
             * own identity reads are atomic here; the reader process races
             * the seqlock instead). */
K1_scan_load:
            atomic {
            w = word[i]; /* acquire */
            dep = 0;     /* 1: the owner left, 2: the owner is gone */
            if
            :: tw[i] != 0 && w != tw[i] ->
                if
                :: W_ST(w) == DETACHED && W_SEQ(w) == W_SEQ(tw[i]) && W_PID(w) == W_PID(tw[i]) -> dep = 1
                :: else -> dep = 2
                fi
            :: tw[i] != 0 && w == tw[i] && !alive[tpid[i]] -> dep = 2 /* ctl_owner_died() */
            :: tw[i] != 0 && w == tw[i] && alive[tpid[i]] ->
#ifdef MUT_AGE_EXPIRY
                if
                :: skip
                :: dep = 2 /* silent too long: taken for dead */
                fi
#else
                skip
#endif
            :: tw[i] == 0 && W_ST(w) == ACTIVE ->
K2_track:
                identity_read(i, ok, rw, rpid, rstart);
                if
                :: ok && rw == w -> tw[i] = w; tpid[i] = rpid; ch[i] = rhead[i]
                :: else /* changed: next scan */
                fi
            :: tw[i] == 0 && (W_ST(w) == CLAIMING || W_ST(w) == JOINING) ->
K4_expire_claim: /* watch_claim(): by process identity, never by age */
#ifndef MUT_NO_CLAIM_EXPIRY
                if
                :: !alive[W_PID(w)] -> slot_free(i, w)
#ifdef MUT_AGE_EXPIRY
                :: alive[W_PID(w)] -> slot_free(i, w)
#endif
                :: else
                fi
#else
                skip
#endif
            :: tw[i] == 0 && W_ST(w) == DETACHED ->
K6_free_detached:
                slot_free(i, w)
            :: tw[i] == 0 && W_ST(w) == FREE -> skip
            fi;
            if
            :: tw[i] != 0 ->
K3_drain: /* drain(): what was published since our head, the owner's only */
                t = rtail[i]; /* acquire */
                if
                :: t != ch[i] ->
                    if
                    :: rec[i] != tpid[i] -> foreign_write = true; CHECK_FOREIGN
                    :: else
                    fi;
                    ch[i] = t;
                    rhead[i] = t /* release */
                :: else
                fi;
                if
                :: dep != 0 ->
K5_depart_free: /* depart(): its DETACHED word, or, gone, either word */
                    if
                    :: dep == 1 -> slot_free(i, w)
                    :: else ->
                        slot_free(i, tw[i]);
                        slot_free(i, WORD(DETACHED, W_SEQ(tw[i]), W_PID(tw[i])))
                    fi;
                    tw[i] = 0
                :: else
                fi
            :: else
            fi;
            i++;
            w = 0; t = 0; dep = 0; rw = 0; rpid = 0; rstart = 0; ok = false
            }
        od;
        i = 0
        };
        if
        :: last >= 2 -> break
        :: else
        fi
    od;
    /* Every slot still held names a live process. */
    i = 0;
    do
    :: i < NSLOT ->
        if
        :: W_ST(word[i]) != FREE && !alive[W_PID(word[i])] -> dead_held = true; CHECK_DEAD_FREED
        :: else
        fi;
        i++
    :: else -> break
    od
}

/* A tool reading identities (phctl shm-dump) while all this goes on.
 * -DNOREADER leaves it out (for checks that do not need it: fewer states). */
#ifndef NOREADER
active
#endif
proctype reader()
{
    byte i = 0, rw, rpid, rstart; /* slot 0: where claims follow each other */
    bool ok;
R1_identity_read: /* once, at any moment: Spin tries them all */
    identity_read(i, ok, rw, rpid, rstart)
}

init
{
    byte p = 1;
    atomic {
        do
        :: p <= NW ->
            alive[p] = true;
            run worker(p);
            p++
        :: else -> break
        od
    };
    /* The first KILLABLE workers may each be killed or stopped at any
     * moment (or never). One is enough to cover either slot and either
     * role in a race (workers are alike but for their pid); -DKILLABLE=2
     * checks more, at about 60 times the states. */
    p = 1;
    do
    :: p <= KILLABLE ->
        if
        :: skip
        :: kill[p] = 1
        :: kill[p] = 2
        fi;
        p++
    :: else -> break
    od;
    p = 0
}
