/* Controller adoption of a segment (shm/segment.c: ph_segment_create,
 * adopt, take_claim, ph_segment_release_controller) as a Promela model.
 *
 * Process 1 creates the segment: it stores its claim word, then publishes
 * `magic`. Processes 2 and 3 start as controllers of the same swarm at any
 * moment and adopt: they wait for magic (a worker or controller meeting an
 * uninitialised segment retries), look at the claim, and take it with one
 * compare-and-swap when it is empty (a clean exit) or names a process that
 * is gone. A controller may exit cleanly (gives the claim up, if still its
 * own), be killed, or stop for good (alive: SIGSTOP), each at any moment.
 * A claim word names a process by pid and start time; here by its number,
 * `alive[p]` standing for claim_alive().
 *
 * Property (assertion, checked when a controller takes the claim):
 *   one_controller  never two live processes that each took the claim and
 *                   have not given it up
 *   plus invalid end states.
 *
 * Mutants (tests/model/run requires each to fail one_controller):
 *   MUT_NO_CAS       load, check, then a plain store of the claim
 *   MUT_AGE          a controller silent for long (stopped) is taken over
 *                    as if it were gone
 */

#define NC 3

byte claim;        /* controller_claim: the holder, 0 none */
bool magic;        /* published by the creator after its claim */
bool alive[NC + 1];
bool holds[NC + 1]; /* ghost: took the claim, has not given it up */
byte gen;           /* generation, bumped by each adopter after its claim */
bool two_controllers;

#define LIVE_HOLDERS ((holds[1] && alive[1]) + (holds[2] && alive[2]) + (holds[3] && alive[3]))

/* What a controller does once it holds the claim: runs, then exits
 * cleanly, dies, or stops for good. */
inline run_then_leave(me)
{
    if
    :: skip /* runs on (to the end of the model) */
    :: true -> /* clean exit: ph_segment_release_controller() */
A4_release_claim:
        atomic {
            if
            :: claim == me -> claim = 0
            :: else
            fi;
            holds[me] = false;
            alive[me] = false
        }
    :: alive[me] = false /* killed */
    :: goto stopped
    fi;
    goto out;
stopped:
end_stopped:
    false
}

active proctype creator()
{
    alive[1] = true;
A0_create_claim:
    claim = 1; /* relaxed: published by magic */
    holds[1] = true;
    magic = true; /* release */
    run_then_leave(1);
out:
    skip
}

proctype adopter(byte me)
{
    byte cur;
    bool ok;
    magic; /* open: retries until the header is published */
A1_load_claim:
    cur = claim; /* acquire */
    do
    :: true ->
A2_rival_check: /* rival(): a live controller other than us */
        if
        :: cur != 0 && cur != me && alive[cur] ->
#ifdef MUT_AGE
            if
            :: goto busy
            :: skip /* its heartbeat is old: taken for gone */
            fi
#else
            goto busy
#endif
        :: else
        fi;
A3_claim_cas:
#ifdef MUT_NO_CAS
        claim = me;
        ok = true;
#else
        atomic {
            if
            :: claim == cur -> claim = me; ok = true
            :: else -> cur = claim; ok = false
            fi
        };
#endif
        if
        :: ok ->
            atomic {
                holds[me] = true;
                if
                :: LIVE_HOLDERS > 1 -> two_controllers = true; assert(!two_controllers)
                :: else
                fi
            };
            break
        :: else
        fi
    od;
A5_generation:
    gen++; /* only the claim's winner */
    run_then_leave(me);
busy:
out:
    skip
}

init
{
    atomic {
        alive[2] = true;
        alive[3] = true;
        run adopter(2);
        run adopter(3)
    }
}
