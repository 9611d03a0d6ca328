/* Fuzz target: the bridge's signal intake (bridge/sigcheck.c).
 *
 * Every input is tried both ways a signal arrives:
 *   - as a line of a signal file (sigcheck_line), the whole input;
 *   - as an AMQP delivery (sigcheck_message): the routing key is the input
 *     up to its first newline, the body everything after it (no newline:
 *     the whole input is the key and the body is empty).
 * The size limit is 4 KiB so the oversize path (and its bounded reading to
 * find whom to answer) is within the fuzzer's reach.
 *
 * Beyond "no crash, no leak, no undefined behaviour", the result must hold
 * together: a verdict in range, every text field terminated, an accepted
 * signal's document a msgpack map the controller's decoder takes with the
 * same type and correlationId, a refused one with a reason and no document. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_check.h"
#include "ph/doc.h"
#include "ph/record.h"
#include "sigcheck.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_result(enum sigcheck_verdict v, const struct sigcheck_result *r)
{
    FUZZ_CHECK((unsigned)v < SIG_VERDICT_COUNT_);
    FUZZ_CHECK(r->verdict == v);
    FUZZ_CHECK_TERMINATED(r->reason);
    FUZZ_CHECK_TERMINATED(r->rk);
    FUZZ_CHECK_TERMINATED(r->prefix);
    FUZZ_CHECK_TERMINATED(r->type);
    FUZZ_CHECK_TERMINATED(r->cid);
    FUZZ_CHECK_TERMINATED(r->answer.type);
    FUZZ_CHECK_TERMINATED(r->answer.cid);
    FUZZ_CHECK_TERMINATED(r->answer.ikey);
    FUZZ_CHECK_TERMINATED(r->answer.role);
    FUZZ_CHECK_TERMINATED(r->answer.instance);
    if (v != SIG_OK) {
        FUZZ_CHECK(r->reason[0] != '\0');
        FUZZ_CHECK(r->doc.size == 0);
        if (r->answer.ok) FUZZ_CHECK(r->answer.cid[0] != '\0' && r->answer.type[0] != '\0');
        return;
    }
    FUZZ_CHECK(r->reason[0] == '\0' && !r->answer.ok);
    FUZZ_CHECK(r->type[0] != '\0' && r->cid[0] != '\0');
    /* What the controller will do with it: decode with the default limits. */
    msgpack_zone zone;
    msgpack_zone_init(&zone, 4096);
    msgpack_object o;
    char err[160];
    FUZZ_CHECK(ph_mp_decode((const uint8_t *)r->doc.data, r->doc.size, true, &zone, &o, err,
                            sizeof err) == PH_OK);
    char type[CONTRACT_TYPE_MAX];
    FUZZ_CHECK(ph_mp_str(ph_mp_map_get(&o, PH_DOC_TYPE), type, sizeof type));
    FUZZ_CHECK(strcmp(type, r->type) == 0);
    const msgpack_object *data = ph_mp_map_get(&o, PH_DOC_DATA);
    FUZZ_CHECK(data != NULL && data->type == MSGPACK_OBJECT_MAP);
    msgpack_zone_destroy(&zone);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const struct sigcheck_cfg cfg = {.swarm = "demo", .max_bytes = 4096};
    struct sigcheck_result r;
    sigcheck_result_init(&r);

    const char *s = (const char *)data;
    enum sigcheck_verdict v = sigcheck_line(&cfg, s, size, size, &r);
    check_result(v, &r);

    const uint8_t *nl = memchr(data, '\n', size);
    size_t rklen = nl != NULL ? (size_t)(nl - data) : size;
    const char *body = nl != NULL ? (const char *)nl + 1 : s + size;
    size_t len = nl != NULL ? size - rklen - 1 : 0;
    v = sigcheck_message(&cfg, s, rklen, body, len, &r);
    check_result(v, &r);

    sigcheck_result_free(&r);
    return 0;
}
