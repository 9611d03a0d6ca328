/* Secret redaction in libph (issue item 20): which configuration keys name
 * a secret (ph_key_is_secret, by the words of the key rather than a list of
 * whole names), how credentials are stripped from URL-shaped values
 * (ph_url_strip_credentials), and that both are applied where a config is
 * written out (ph_json_pack with drop_secrets, ph_json_strip_url_credentials).
 *
 * Before item 20, "dbPass", "auth" and "amqp://u:p4ss@h/" all went out as
 * they were: every test here failed on that code. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ph/common.h"
#include "ph/mpjson.h"
#include "ph/record.h"
#include "through_msgpack.h"

/* ---- key names ---------------------------------------------------------- */

static void item20_key_is_secret_for_secret_words_in_any_spelling(void **state)
{
    (void)state;
    const char *yes[] = {
        /* pass / pwd words, and ALLCAPS concatenations */
        "dbPass", "db_pass", "DB-PASS", "pass", "Pass", "dbPassword", "DB_PASSWORD", "DBPASSWORD",
        "passwd", "smtpPassword2", "passphrase", "passcode", "pwd", "dbPwd", "PWD_FILE",
        /* auth words */
        "auth", "Auth", "AUTH", "authToken", "X-Auth", "proxy_auth", "authn", "authzPolicy",
        "authenticationHeader", "Authorization", "oauth", "OAuthToken", "oauth2ClientId",
        /* secret, token, credential, cookie, jwt, bearer */
        "clientSecret", "webhook.secret", "SECRETS", "token", "refresh_token", "sessionToken",
        "session-token", "credentials", "awsCreds", "cookie", "setCookie", "jwt", "bearer",
        /* keys */
        "key", "apiKey", "api_key", "API-KEY", "X-API-KEY", "APIKey", "APIKEY", "X_APIKEY",
        "tls.key", "signingKey", "secretKey", "privateKey", "private.key", "privateKeyPem",
        "accessKeyId", "hmac_key", "encryptionKey", "AWS_SECRET_ACCESS_KEY", "key2",
        /* a session id is a bearer credential */
        "sessionId", "session_id", "JSESSIONID"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        if (!ph_key_is_secret(yes[i])) fail_msg("'%s' not detected as a secret", yes[i]);
}

static void item20_key_is_secret_lets_ordinary_words_through(void **state)
{
    (void)state;
    const char *no[] = {
        /* words that merely contain a secret word */
        "keyspace", "monkey", "hotkey", "bypassCache", "bypass", "compass", "author", "authority",
        "authorName", "passengers", "passive", "passthrough", "passes",
        /* "key" that describes a key, or names an identifier */
        "keyCount", "keyId", "keyFile", "key_path", "routingKey", "routing_key", "idempotencyKey",
        "partitionKey", "publicKey", "primary_key", "cacheKey",
        /* the ordinary config of this project */
        "host", "user", "username", "ratePerSec", "maxRatePerSec", "datasetSize", "errorRatio",
        "backpressure", "enabled", "inQueue", "outQueue", "url", "id", "session", "", "api"};
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        if (ph_key_is_secret(no[i])) fail_msg("'%s' taken for a secret", no[i]);
    assert_false(ph_key_is_secret(NULL));
}

static void item20_key_is_secret_reads_long_keys_to_the_end(void **state)
{
    (void)state;
    /* Longer than the 255 letters ph_key_is_secret lower-cases at once. */
    char key[400];
    memset(key, 'X', 300);
    strcpy(key + 300, "DBPASSWORD");
    assert_true(ph_key_is_secret(key));
    strcpy(key + 300, "_API_KEY");
    assert_true(ph_key_is_secret(key));
    strcpy(key + 300, "MONKEY");
    assert_false(ph_key_is_secret(key));
}

/* ---- URL credentials ---------------------------------------------------- */

static char *strip(const char *in, size_t *count)
{
    size_t len = strlen(in);
    size_t n = ph_url_strip_credentials(in, len, NULL, 0, count);
    char *out = malloc(n + 1);
    assert_non_null(out);
    size_t again = 0;
    assert_int_equal(ph_url_strip_credentials(in, len, out, n + 1, &again), n);
    assert_int_equal(again, *count);
    out[n] = '\0';
    return out;
}

static void item20_url_strip_masks_password_and_lone_userinfo(void **state)
{
    (void)state;
    static const struct {
        const char *in, *want;
        size_t count;
    } cases[] = {
        {"amqp://u:p4ss@h/", "amqp://u:***@h/", 1},
        {"amqp://ph:s3cret@127.0.0.1:5672/%2f", "amqp://ph:***@127.0.0.1:5672/%2f", 1},
        {"https://ghp_t0k3n@github.com/org/repo.git", "https://***@github.com/org/repo.git", 1},
        {"postgres://app:pa@ss#w?rd@db:5432/x", "postgres://app:***@db:5432/x", 1},
        {"redis://:onlypass@cache", "redis://:***@cache", 1},
        {"amqp://u:pa/ss@h:5672/vh", "amqp://u:***@h:5672/vh", 1},
        {"x://u:#/a@b@c/d", "x://u:***@c/d", 1}, /* '/' and '@' in the password */
        {"mongodb://u:p@h1,h2/db?replicaSet=r", "mongodb://u:***@h1,h2/db?replicaSet=r", 1},
        {"primary amqp://a:x@h1 backup amqp://b:y@h2",
         "primary amqp://a:***@h1 backup amqp://b:***@h2", 2},
        {"\"https://u:pw@h\"", "\"https://u:***@h\"", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t count = 99;
        char *got = strip(cases[i].in, &count);
        if (strcmp(got, cases[i].want) != 0 || count != cases[i].count)
            fail_msg("case %zu: got '%s' (%zu stripped), want '%s' (%zu)", i, got, count,
                     cases[i].want, cases[i].count);
        /* The bridge strips again what the worker SDK stripped: a no-op. */
        char *again = strip(got, &count);
        if (strcmp(again, got) != 0 || count != 0)
            fail_msg("case %zu: stripping '%s' again gave '%s'", i, got, again);
        free(again);
        free(got);
    }
}

static void item20_url_strip_leaves_text_without_credentials_unchanged(void **state)
{
    (void)state;
    const char *same[] = {"",
                          "plain text",
                          "http://host:8080/path",
                          "https://medium.com/@someone",
                          "mailto:someone@example.com",
                          "amqp://guest:@h/",
                          "amqp://u:***@h/", /* already stripped: stripping twice is a no-op */
                          "http://[::1]:80/x@y",
                          "://",
                          "a://"};
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
        size_t count = 99;
        char *got = strip(same[i], &count);
        if (strcmp(got, same[i]) != 0 || count != 0)
            fail_msg("'%s' changed to '%s' (%zu stripped)", same[i], got, count);
        free(got);
    }
}

static void item20_url_strip_writes_at_most_cap_and_handles_nul_bytes(void **state)
{
    (void)state;
    const char in[] = "x\0amqp://u:secret@h";
    size_t len = sizeof in - 1, count = 0;
    char out[64];
    memset(out, '#', sizeof out);
    size_t n = ph_url_strip_credentials(in, len, out, 6, &count);
    assert_int_equal(n, len - strlen("secret") + 3);
    assert_int_equal(count, 1);
    assert_memory_equal(out, "x\0amqp", 6);
    assert_int_equal(out[6], '#');
    assert_int_equal(ph_url_strip_credentials(in, len, out, sizeof out, NULL), n);
    assert_memory_equal(out, "x\0amqp://u:***@h", n);
}

/* ---- where configs are written out ------------------------------------- */

/* A worker config as item 20 reported it leaking. */
static const char *const LEAKY_CONFIG =
    "{\"ratePerSec\": 5, \"dbPass\": \"hunter2\", \"auth\": \"Basic dTpw\","
    " \"url\": \"amqp://u:p4ss@h/\", \"X-API-KEY\": \"k3y\","
    " \"targets\": [\"https://tok3n@api.example/\", {\"sessionId\": \"s1d\", \"port\": 1}],"
    " \"routingKey\": \"ph.work\"}";
static const char *const SECRET_VALUES[] = {"hunter2", "dTpw", "p4ss", "k3y", "tok3n", "s1d"};

static void assert_no_secret_value(const json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
    assert_non_null(s);
    for (size_t i = 0; i < sizeof SECRET_VALUES / sizeof SECRET_VALUES[0]; i++)
        if (strstr(s, SECRET_VALUES[i]) != NULL)
            fail_msg("secret value '%s' still in %s", SECRET_VALUES[i], s);
    free(s);
}

static void item20_json_pack_drops_secret_keys_and_url_credentials(void **state)
{
    (void)state;
    json_error_t je;
    json_t *in = json_loads(LEAKY_CONFIG, 0, &je);
    assert_non_null(in);
    json_t *out = through_msgpack(in, true);
    assert_no_secret_value(out);
    json_t *want = json_loads("{\"ratePerSec\": 5, \"url\": \"amqp://u:***@h/\","
                              " \"targets\": [\"https://***@api.example/\", {\"port\": 1}],"
                              " \"routingKey\": \"ph.work\"}",
                              0, &je);
    assert_non_null(want);
    if (!json_equal(out, want)) {
        char *s = json_dumps(out, JSON_SORT_KEYS);
        fail_msg("config not redacted as expected: %s", s);
    }
    /* Without drop_secrets (command patches for a worker) nothing changes. */
    json_t *all = through_msgpack(in, false);
    assert_true(json_equal(all, in));
    json_decref(all);
    json_decref(want);
    json_decref(out);
    json_decref(in);
}

static void item20_json_strip_url_credentials_reaches_every_string(void **state)
{
    (void)state;
    json_t *v =
        json_pack("{s:s,s:[s,s,{s:s}],s:i,s:s}", "url", "amqp://u:p4ss@h/", "list",
                  "https://tok3n@x/", "plain", "deep", "ws://a:k3y@b", "n", 1, "ok", "http://h/");
    assert_int_equal(ph_json_strip_url_credentials(v), 3);
    assert_no_secret_value(v);
    assert_string_equal(json_string_value(json_object_get(v, "url")), "amqp://u:***@h/");
    json_t *list = json_object_get(v, "list");
    assert_string_equal(json_string_value(json_array_get(list, 0)), "https://***@x/");
    assert_string_equal(json_string_value(json_array_get(list, 1)), "plain");
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 2), "deep")),
                        "ws://a:***@b");
    assert_string_equal(json_string_value(json_object_get(v, "ok")), "http://h/");
    assert_int_equal(ph_json_strip_url_credentials(v), 0); /* a second pass finds nothing */
    json_decref(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(item20_key_is_secret_for_secret_words_in_any_spelling),
        cmocka_unit_test(item20_key_is_secret_lets_ordinary_words_through),
        cmocka_unit_test(item20_key_is_secret_reads_long_keys_to_the_end),
        cmocka_unit_test(item20_url_strip_masks_password_and_lone_userinfo),
        cmocka_unit_test(item20_url_strip_leaves_text_without_credentials_unchanged),
        cmocka_unit_test(item20_url_strip_writes_at_most_cap_and_handles_nul_bytes),
        cmocka_unit_test(item20_json_pack_drops_secret_keys_and_url_credentials),
        cmocka_unit_test(item20_json_strip_url_credentials_reaches_every_string),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
