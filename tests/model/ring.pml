/* The SPSC status ring (include/ph/ring.h, shm/ring.c) as a Promela model.
 *
 * One producer (a worker: ph_ring_claim + body + ph_ring_publish) and one
 * consumer (the controller: ph_ring_drain / ph_ring_commit), sharing a data
 * area of CAP units plus the two positions `tail` and `head`. A unit stands
 * for 8 bytes (PH_RING_ALIGN); a record is one header unit and 0..2 body
 * units, so records of 2 and 3 units reach the end of the data area at
 * every offset and padding records of 1 and 2 units occur.
 *
 * Memory: every unit is written and read in its own step, so a reader can
 * meet a body half-written. The release store of `tail` (P4) is the only
 * thing that makes units visible to the consumer, which reads no unit
 * beyond the tail it acquired (C1); the release store of `head` (C5) is the
 * only thing that hands units back. Spin explores all interleavings of
 * these steps, which is what the release/acquire pairs allow for the
 * units they order; the mutants below are what weaker orders (or another
 * order of the steps) would allow.
 *
 * A header unit holds type, length and the record's sequence number (the
 * `flags` field of a real header; the model uses it to tell records apart):
 * every body unit of record s holds s, so a body that mixes two records is
 * a torn read. The consumer validates headers as the C code does; the
 * model's producer is honest, so any validation failure is a defect too.
 *
 * The producer can stop for good before any step (killed, or stopped and
 * never resumed: the ring cannot tell them apart). The consumer can be
 * replaced once (controller restart: a new consumer attaches at `head`).
 *
 * Properties (tests/model/run checks each; see README.md):
 *   no_torn     no accepted record has a unit of another record
 *   no_dup      no record accepted twice (also across a consumer restart,
 *               for records whose space was handed back)
 *   no_loss     records accepted in order without gaps, and every
 *               published record accepted by the end
 *   no_corrupt  an honest producer never makes the consumer reject the ring
 *   no_block    (invalid end states) the consumer never waits for the
 *               producer, dead or alive
 *
 * Mutants, one -D each; tests/model/run requires each to fail:
 *   MUT_PUBLISH_EARLY  tail published before the body is written (what a
 *                      relaxed tail store would allow)        -> no_torn
 *   MUT_HEAD_EARLY     head handed back before the records are copied
 *                      (a relaxed head store, or commit first)  -> no_torn
 *   MUT_NO_SPACE_CHECK producer writes without looking at head -> no_loss
 *   MUT_COMMIT_SHORT   head stored one record short            -> no_dup
 *   MUT_NO_PAD         the producer skips to the start of the data area
 *                      without writing a padding record     -> no_corrupt
 *   MUT_WAIT_WRITER    consumer waits for a write in progress to
 *                      finish (a "busy" flag design)           -> no_block
 */

#ifndef CAP
#define CAP 4 /* data units (power of two) */
#endif
#define MAXREC (CAP / 2) /* largest record, header included: capacity / 2 */
#ifndef NREC
#define NREC 4 /* records the producer tries to write (< 8: 3-bit seq) */
#endif

#define PAD 0
#define DATA 1
/* Header unit: type (bit 6), seq (bits 3-5), len in units (bits 0-2). */
#define HDR(t, s, l) ((t) * 64 + (s) * 8 + (l))
#define H_LEN(h) ((h) % 8)
#define H_SEQ(h) (((h) / 8) % 8)
#define H_TYPE(h) (((h) / 64) % 2)

/* -DONLY=<n> checks one property alone (tests/model/run does, so that a
 * mutant is seen to break the property it is meant to); 0 checks all. */
#ifndef ONLY
#define ONLY 0
#endif
#define P_TORN 1
#define P_DUP 2
#define P_LOST 3
#define P_CORRUPT 4
#if ONLY == 0 || ONLY == P_TORN
#define FAIL_TORN torn = true; assert(!torn)
#else
#define FAIL_TORN torn = true
#endif
#if ONLY == 0 || ONLY == P_DUP
#define FAIL_DUP read_twice = true; assert(!read_twice)
#else
#define FAIL_DUP read_twice = true
#endif
#if ONLY == 0 || ONLY == P_LOST
#define FAIL_LOST lost = true; assert(!lost)
#else
#define FAIL_LOST lost = true
#endif
#if ONLY == 0 || ONLY == P_CORRUPT
#define FAIL_CORRUPT corrupt = true; assert(!corrupt)
#else
#define FAIL_CORRUPT corrupt = true
#endif

byte mem[CAP]; /* the data area */
byte tail;     /* ph_ring_desc.tail: producer-written, release */
byte head;     /* ph_ring_desc.head: consumer-written, release */

/* Ghost state: what happened, for the properties only. */
byte published;     /* sequence number of the last record published */
byte handed_back;   /* seq of the last record before the head the consumer stored */
bool quiet;         /* the producer will never take another step */
bool torn, read_twice, lost, corrupt;
#ifdef MUT_WAIT_WRITER
bool writing; /* the mutant's "record in progress" flag */
#endif


active proctype producer()
{
    byte pt = 0; /* ph_ring_producer.tail: next write position */
    byte hc = 0; /* head_cache */
    byte seq = 0, n = 0, rlen, off, to_end, total, at, k;
    {
        do
        :: n < NREC ->
            n++;
            if
            :: rlen = 1
            :: rlen = 2
#if CAP > 4
            :: rlen = 3
#endif
            fi;
P1_reserve:
            off = pt % CAP;
            to_end = CAP - off;
            total = (rlen <= to_end -> rlen : rlen + to_end);
#ifndef MUT_NO_SPACE_CHECK
            if
            :: CAP - (pt - hc) < total ->
P1_load_head:
                hc = head; /* acquire */
                if
                :: CAP - (pt - hc) < total -> goto dropped /* overflow: counted, not published */
                :: else
                fi
            :: else
            fi;
#endif
#ifdef MUT_WAIT_WRITER
            writing = true;
#endif
            if
            :: rlen > to_end ->
P2_write_pad:
#ifndef MUT_NO_PAD
                mem[off] = HDR(PAD, 0, to_end);
#endif
                pt = pt + to_end
            :: else
            fi;
            at = pt % CAP;
            seq++;
P2_write_header:
            mem[at] = HDR(DATA, seq, rlen);
            pt = pt + rlen;
#ifdef MUT_PUBLISH_EARLY
            atomic { tail = pt; published = seq };
#endif
            k = 1;
P3_write_body:
            do
            :: k < rlen -> mem[at + k] = seq; k++
            :: else -> break
            od;
#ifndef MUT_PUBLISH_EARLY
P4_publish_tail:
            atomic { tail = pt; published = seq }; /* release */
#endif
#ifdef MUT_WAIT_WRITER
            writing = false;
#endif
dropped:
            skip
        :: else -> break
        od
    } unless { quiet };
    quiet = true
}

/* The producer may stop for good before any of its steps. */
active proctype stopper()
{
    if
    :: skip
    :: quiet = true
    fi
}

/* One call of drain() in shm/ring.c, with commit (ph_ring_drain) or an
 * early stop after any record (max_records). Used once: labels are unique. */
inline drain()
{
    fin = quiet;
C1_load_tail:
    t = tail; /* acquire */
    if
    :: t == ch ->
#ifdef MUT_WAIT_WRITER
        (!writing || t != tail);
#endif
        skip /* nothing to read: return 0 */
    :: else ->
        if
        :: t - ch > CAP -> FAIL_CORRUPT
        :: else
        fi;
#ifdef MUT_HEAD_EARLY
        head = t; /* handed back before it is read */
#endif
        do
        :: ch != t ->
            off = ch % CAP;
            to_end = CAP - off;
C2_read_header:
            h = mem[off];
C3_check_bounds:
            if
            :: H_LEN(h) < 1 || H_LEN(h) > t - ch || H_LEN(h) > to_end -> FAIL_CORRUPT; break
            :: H_TYPE(h) == PAD && H_LEN(h) != to_end -> FAIL_CORRUPT; break
            :: H_TYPE(h) == DATA && H_LEN(h) > MAXREC -> FAIL_CORRUPT; break
            :: else
            fi;
            if
            :: H_TYPE(h) == PAD -> ch = ch + H_LEN(h)
            :: else ->
                k = 1;
C4_read_body:
                do
                :: k < H_LEN(h) ->
                    if
                    :: mem[off + k] != H_SEQ(h) -> FAIL_TORN
                    :: else
                    fi;
                    k++
                :: else -> break
                od;
                /* Accepted: the handler sees it now. */
                if
                :: H_SEQ(h) <= last -> FAIL_DUP
                :: H_SEQ(h) > last + 1 -> FAIL_LOST
                :: else
                fi;
                last = H_SEQ(h);
                prev = ch;
                ch = ch + H_LEN(h);
                if
                :: skip
                :: break /* max_records reached */
                fi
            fi
        :: else -> break
        od;
C5_store_head:
#ifdef MUT_COMMIT_SHORT
        atomic { head = prev; handed_back = last } /* one record short */
#else
#ifndef MUT_HEAD_EARLY
        atomic { head = ch; handed_back = last } /* release */
#else
        handed_back = last
#endif
#endif
    fi
}

active proctype consumer()
{
    byte ch = 0;   /* ph_ring_consumer.head */
    byte last = 0; /* seq of the last record this consumer accepted */
    byte prev = 0; /* position of that record */
    byte t, h, off, to_end, k;
    bool restarted = false;
    bool fin; /* the producer was already quiet when this drain began */
    do
    :: true ->
        drain();
        if
        :: fin && ch == tail -> break
        :: else
        fi
    :: !restarted ->
        /* Controller restart: a new consumer attaches where the old one
         * handed back (ph_ring_consumer_init reads head). */
        restarted = true;
C0_attach:
        atomic { ch = head; last = handed_back }
    od;
    /* Everything the producer published has been accepted. */
    if
    :: last != published -> FAIL_LOST
    :: else
    fi
}
