/* ph-test-amqp: a small rabbitmq-c client for the AMQP tests.
 *
 *   ph-test-amqp pub URL_FILE            publish lines "ROUTING_KEY<TAB>BODY" from
 *                                        stdin to ph.control (persistent, JSON
 *                                        content type, confirmed)
 *   ph-test-amqp capture URL_FILE QUEUE OUT
 *                                        declare QUEUE (durable) bound to signal.# and
 *                                        event.# on ph.control, append every
 *                                        message to OUT as a JSON line
 *                                        {"routingKey", "envelope"} (or
 *                                        {"routingKey", "raw"} when the body is
 *                                        not JSON); prints "ready" on stdout
 *                                        once consuming; stops on SIGTERM
 *   ph-test-amqp depth URL_FILE QUEUE    print "<ready> <consumers>" of QUEUE
 *   ph-test-amqp declare URL_FILE QUEUE [DLX]
 *                                        declare QUEUE (durable; "" for a
 *                                        server-named one) with DLX as its
 *                                        dead-letter exchange when given;
 *                                        prints "declared NAME"
 *   ph-test-amqp bind URL_FILE KEY [WAIT_S]
 *                                        declare a server-named exclusive queue
 *                                        and bind it to ph.control with KEY;
 *                                        prints "bound KEY". With WAIT_S, then
 *                                        consume it and print "got ROUTING_KEY"
 *                                        for the first message (exit 1 when
 *                                        none comes within WAIT_S seconds)
 *   ph-test-amqp consume|get|purge|delete URL_FILE QUEUE
 *                                        declare QUEUE passively, then start a
 *                                        consumer on it (and cancel it at
 *                                        once: nothing is taken), basic.get
 *                                        (the message is requeued), purge or
 *                                        delete it; prints "OP QUEUE: ok"
 *
 * The URL is read from a file, like the bridge does. Every command exits 1
 * when the broker refuses an operation, after printing the refusal as
 * "ph-test-amqp: OPERATION: CODE TEXT" on stderr (e.g. "queue.bind: 403
 * ACCESS_REFUSED - ..."), so a test can tell a refusal from other errors.
 * The exchange is declared passively first: a user without configure
 * permission on ph.control (ph-observer) can use it once it exists. */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <jansson.h>

#define EXCHANGE "ph.control"

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
    (void)sig;
    stop = 1;
}

/* Prints why R is not a normal reply; false when it is one. */
static bool report_reply(const char *what, amqp_rpc_reply_t r)
{
    if (r.reply_type == AMQP_RESPONSE_NORMAL) return false;
    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION)
        fprintf(stderr, "ph-test-amqp: %s: %s\n", what, amqp_error_string2(r.library_error));
    else if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
             r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
        amqp_channel_close_t *m = r.reply.decoded;
        fprintf(stderr, "ph-test-amqp: %s: %u %.*s\n", what, m->reply_code, (int)m->reply_text.len,
                (char *)m->reply_text.bytes);
    } else if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
               r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
        amqp_connection_close_t *m = r.reply.decoded;
        fprintf(stderr, "ph-test-amqp: %s: connection closed: %u %.*s\n", what, m->reply_code,
                (int)m->reply_text.len, (char *)m->reply_text.bytes);
    } else
        fprintf(stderr, "ph-test-amqp: %s failed (reply type %d)\n", what, r.reply_type);
    return true;
}

static void die_reply(const char *what, amqp_rpc_reply_t r)
{
    if (report_reply(what, r)) exit(1);
}

/* A channel.close or connection.close frame: the broker refused something
 * sent without a reply of its own (basic.publish). Prints it. */
static bool frame_refusal(const char *what, const amqp_frame_t *f)
{
    if (f->frame_type != AMQP_FRAME_METHOD ||
        (f->payload.method.id != AMQP_CHANNEL_CLOSE_METHOD &&
         f->payload.method.id != AMQP_CONNECTION_CLOSE_METHOD))
        return false;
    amqp_rpc_reply_t r = {.reply_type = AMQP_RESPONSE_SERVER_EXCEPTION, .reply = f->payload.method};
    return report_reply(what, r);
}

/* ph.control: passively first, so that a user who may not configure it can
 * use it; declared (durable topic) when it does not exist yet. */
static void ensure_exchange(amqp_connection_state_t c)
{
    amqp_exchange_declare(c, 1, amqp_cstring_bytes(EXCHANGE), amqp_cstring_bytes("topic"), 1, 0, 0,
                          0, amqp_empty_table);
    amqp_rpc_reply_t r = amqp_get_rpc_reply(c);
    if (r.reply_type == AMQP_RESPONSE_NORMAL) return;
    if (r.reply_type != AMQP_RESPONSE_SERVER_EXCEPTION || r.reply.id != AMQP_CHANNEL_CLOSE_METHOD ||
        ((amqp_channel_close_t *)r.reply.decoded)->reply_code != AMQP_NOT_FOUND)
        die_reply("exchange.declare (passive)", r);
    amqp_channel_close_ok_t close_ok = {0};
    if (amqp_send_method(c, 1, AMQP_CHANNEL_CLOSE_OK_METHOD, &close_ok) != AMQP_STATUS_OK) {
        fprintf(stderr, "ph-test-amqp: channel.close-ok failed\n");
        exit(1);
    }
    amqp_channel_open(c, 1);
    die_reply("channel.open", amqp_get_rpc_reply(c));
    amqp_exchange_declare(c, 1, amqp_cstring_bytes(EXCHANGE), amqp_cstring_bytes("topic"), 0, 1, 0,
                          0, amqp_empty_table);
    die_reply("exchange.declare", amqp_get_rpc_reply(c));
}

static amqp_connection_state_t connect_url(const char *url_file)
{
    static char url[2048];
    FILE *f = fopen(url_file, "r");
    if (f == NULL || fgets(url, sizeof url, f) == NULL) {
        fprintf(stderr, "ph-test-amqp: cannot read %s\n", url_file);
        exit(1);
    }
    fclose(f);
    url[strcspn(url, "\r\n")] = '\0';
    struct amqp_connection_info ci;
    amqp_default_connection_info(&ci);
    if (amqp_parse_url(url, &ci) != AMQP_STATUS_OK) {
        fprintf(stderr, "ph-test-amqp: bad URL in %s\n", url_file);
        exit(1);
    }
    amqp_connection_state_t c = amqp_new_connection();
    amqp_socket_t *s = amqp_tcp_socket_new(c);
    struct timeval tv = {5, 0};
    int rc = amqp_socket_open_noblock(s, ci.host, ci.port, &tv);
    if (rc != AMQP_STATUS_OK) {
        fprintf(stderr, "ph-test-amqp: connect %s:%d: %s\n", ci.host, ci.port,
                amqp_error_string2(rc));
        exit(1);
    }
    die_reply("login", amqp_login(c, ci.vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, ci.user,
                                  ci.password));
    amqp_channel_open(c, 1);
    die_reply("channel.open", amqp_get_rpc_reply(c));
    ensure_exchange(c);
    return c;
}

static void close_conn(amqp_connection_state_t c)
{
    amqp_channel_close(c, 1, AMQP_REPLY_SUCCESS);
    amqp_connection_close(c, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(c);
}

static int cmd_pub(const char *url_file)
{
    amqp_connection_state_t c = connect_url(url_file);
    amqp_confirm_select(c, 1);
    die_reply("confirm.select", amqp_get_rpc_reply(c));
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    unsigned sent = 0, acked = 0;
    while ((n = getline(&line, &cap, stdin)) > 0) {
        if (line[n - 1] == '\n') line[--n] = '\0';
        char *tab = strchr(line, '\t');
        if (tab == NULL) continue;
        *tab = '\0';
        amqp_basic_properties_t p;
        memset(&p, 0, sizeof p);
        p._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
        p.content_type = amqp_cstring_bytes("application/json");
        p.delivery_mode = 2;
        amqp_bytes_t body = {.len = (size_t)(line + n - (tab + 1)), .bytes = tab + 1};
        int rc = amqp_basic_publish(c, 1, amqp_cstring_bytes(EXCHANGE), amqp_cstring_bytes(line),
                                    0, 0, &p, body);
        if (rc != AMQP_STATUS_OK) {
            fprintf(stderr, "ph-test-amqp: publish: %s\n", amqp_error_string2(rc));
            return 1;
        }
        sent++;
    }
    free(line);
    /* Confirms may come out of order and mix single and multiple acks (a
     * single ack of tag 5 before a multiple ack up to 4): count each tag
     * once, not a running total. */
    unsigned char *confirmed = calloc((size_t)sent + 1, 1);
    if (confirmed == NULL) {
        fprintf(stderr, "ph-test-amqp: out of memory\n");
        return 1;
    }
    while (acked < sent) {
        amqp_frame_t f;
        struct timeval tv = {10, 0};
        int rc = amqp_simple_wait_frame_noblock(c, &f, &tv);
        if (rc != AMQP_STATUS_OK) {
            fprintf(stderr, "ph-test-amqp: waiting for confirms (%u of %u): %s\n", acked, sent,
                    amqp_error_string2(rc));
            free(confirmed);
            return 1;
        }
        if (frame_refusal("basic.publish", &f)) {
            free(confirmed);
            return 1;
        }
        if (f.frame_type == AMQP_FRAME_METHOD && f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
            amqp_basic_ack_t *a = f.payload.method.decoded;
            const uint64_t tag = a->delivery_tag > sent ? sent : a->delivery_tag;
            for (uint64_t t = a->multiple ? 1 : tag; t <= tag; t++) {
                if (t >= 1 && !confirmed[t]) {
                    confirmed[t] = 1;
                    acked++;
                }
            }
        } else if (f.frame_type == AMQP_FRAME_METHOD &&
                   f.payload.method.id == AMQP_BASIC_NACK_METHOD) {
            fprintf(stderr, "ph-test-amqp: the broker nacked a message\n");
            free(confirmed);
            return 1;
        }
    }
    free(confirmed);
    close_conn(c);
    printf("published %u\n", sent);
    return 0;
}

static int cmd_capture(const char *url_file, const char *queue, const char *out)
{
    amqp_connection_state_t c = connect_url(url_file);
    amqp_bytes_t q = amqp_cstring_bytes(queue);
    /* Durable: it survives a broker restart and records what is published
     * before the next capture consumer starts. */
    amqp_queue_declare(c, 1, q, 0, 1, 0, 0, amqp_empty_table);
    die_reply("queue.declare", amqp_get_rpc_reply(c));
    const char *keys[] = {"signal.#", "event.#"};
    for (int i = 0; i < 2; i++) {
        amqp_queue_bind(c, 1, q, amqp_cstring_bytes(EXCHANGE), amqp_cstring_bytes(keys[i]),
                        amqp_empty_table);
        die_reply("queue.bind", amqp_get_rpc_reply(c));
    }
    amqp_basic_consume(c, 1, q, amqp_empty_bytes, 0, 1, 0, amqp_empty_table);
    die_reply("basic.consume", amqp_get_rpc_reply(c));
    FILE *f = fopen(out, "a");
    if (f == NULL) {
        perror(out);
        return 1;
    }
    signal(SIGTERM, on_term);
    signal(SIGINT, on_term);
    printf("ready\n");
    fflush(stdout);
    unsigned n = 0;
    while (!stop) {
        amqp_envelope_t env;
        struct timeval tv = {0, 200000};
        amqp_maybe_release_buffers(c);
        amqp_rpc_reply_t r = amqp_consume_message(c, &env, &tv, 0);
        if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
            r.library_error == AMQP_STATUS_TIMEOUT)
            continue;
        die_reply("consume", r);
        json_t *line = json_object();
        json_object_set_new(line, "routingKey", json_stringn(env.routing_key.bytes,
                                                             env.routing_key.len));
        json_error_t je;
        json_t *body = json_loadb(env.message.body.bytes, env.message.body.len,
                                  JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
        if (body != NULL)
            json_object_set_new(line, "envelope", body);
        else
            json_object_set_new(line, "raw", json_stringn(env.message.body.bytes,
                                                          env.message.body.len));
        if (line != NULL && json_object_get(line, "routingKey") != NULL) {
            json_dumpf(line, f, JSON_COMPACT | JSON_PRESERVE_ORDER);
            fputc('\n', f);
            fflush(f);
        }
        json_decref(line);
        amqp_destroy_envelope(&env);
        n++;
    }
    fclose(f);
    close_conn(c);
    fprintf(stderr, "ph-test-amqp: captured %u messages\n", n);
    return 0;
}

static int cmd_depth(const char *url_file, const char *queue)
{
    amqp_connection_state_t c = connect_url(url_file);
    amqp_queue_declare_ok_t *ok =
        amqp_queue_declare(c, 1, amqp_cstring_bytes(queue), 1, 0, 0, 0, amqp_empty_table);
    die_reply("queue.declare (passive)", amqp_get_rpc_reply(c));
    printf("%u %u\n", ok->message_count, ok->consumer_count);
    close_conn(c);
    return 0;
}

static int cmd_declare(const char *url_file, const char *queue, const char *dlx)
{
    amqp_connection_state_t c = connect_url(url_file);
    amqp_table_entry_t e = {.key = amqp_cstring_bytes("x-dead-letter-exchange"),
                            .value = {.kind = AMQP_FIELD_KIND_UTF8}};
    amqp_table_t args = amqp_empty_table;
    if (dlx != NULL) {
        e.value.value.bytes = amqp_cstring_bytes(dlx);
        args = (amqp_table_t){.num_entries = 1, .entries = &e};
    }
    amqp_queue_declare_ok_t *ok =
        amqp_queue_declare(c, 1, amqp_cstring_bytes(queue), 0, 1, 0, 0, args);
    die_reply("queue.declare", amqp_get_rpc_reply(c));
    printf("declared %.*s\n", (int)ok->queue.len, (char *)ok->queue.bytes);
    close_conn(c);
    return 0;
}

static int cmd_bind(const char *url_file, const char *key, const char *wait_arg)
{
    amqp_connection_state_t c = connect_url(url_file);
    amqp_queue_declare_ok_t *ok =
        amqp_queue_declare(c, 1, amqp_empty_bytes, 0, 0, 1, 1, amqp_empty_table);
    die_reply("queue.declare", amqp_get_rpc_reply(c));
    amqp_bytes_t q = amqp_bytes_malloc_dup(ok->queue);
    amqp_queue_bind(c, 1, q, amqp_cstring_bytes(EXCHANGE), amqp_cstring_bytes(key),
                    amqp_empty_table);
    die_reply("queue.bind", amqp_get_rpc_reply(c));
    printf("bound %s\n", key);
    fflush(stdout);
    int rc = 0;
    if (wait_arg != NULL) {
        amqp_basic_consume(c, 1, q, amqp_empty_bytes, 0, 1, 1, amqp_empty_table);
        die_reply("basic.consume", amqp_get_rpc_reply(c));
        amqp_envelope_t env;
        struct timeval tv = {atoi(wait_arg), 0};
        amqp_rpc_reply_t r = amqp_consume_message(c, &env, &tv, 0);
        if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
            r.library_error == AMQP_STATUS_TIMEOUT) {
            fprintf(stderr, "ph-test-amqp: no message within %s s\n", wait_arg);
            rc = 1;
        } else {
            die_reply("consume", r);
            printf("got %.*s\n", (int)env.routing_key.len, (char *)env.routing_key.bytes);
            amqp_destroy_envelope(&env);
        }
    }
    amqp_bytes_free(q);
    close_conn(c);
    return rc;
}

/* consume, get, purge or delete an existing QUEUE. A consumer is cancelled
 * and a message got is left unacknowledged: both go back to the queue when
 * the channel closes. */
static int cmd_queue_op(const char *op, const char *url_file, const char *queue)
{
    amqp_connection_state_t c = connect_url(url_file);
    amqp_bytes_t q = amqp_cstring_bytes(queue);
    amqp_queue_declare(c, 1, q, 1, 0, 0, 0, amqp_empty_table);
    die_reply("queue.declare (passive)", amqp_get_rpc_reply(c));
    if (strcmp(op, "consume") == 0) {
        amqp_basic_consume_ok_t *ok =
            amqp_basic_consume(c, 1, q, amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
        die_reply("basic.consume", amqp_get_rpc_reply(c));
        amqp_basic_cancel(c, 1, ok->consumer_tag);
        die_reply("basic.cancel", amqp_get_rpc_reply(c));
    } else if (strcmp(op, "get") == 0) {
        die_reply("basic.get", amqp_basic_get(c, 1, q, 0));
    } else if (strcmp(op, "purge") == 0) {
        amqp_queue_purge(c, 1, q);
        die_reply("queue.purge", amqp_get_rpc_reply(c));
    } else {
        amqp_queue_delete(c, 1, q, 0, 0);
        die_reply("queue.delete", amqp_get_rpc_reply(c));
    }
    printf("%s %s: ok\n", op, queue);
    close_conn(c);
    return 0;
}

static bool is_queue_op(const char *op)
{
    return strcmp(op, "consume") == 0 || strcmp(op, "get") == 0 || strcmp(op, "purge") == 0 ||
           strcmp(op, "delete") == 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "pub") == 0) return cmd_pub(argv[2]);
    if (argc == 5 && strcmp(argv[1], "capture") == 0) return cmd_capture(argv[2], argv[3], argv[4]);
    if (argc == 4 && strcmp(argv[1], "depth") == 0) return cmd_depth(argv[2], argv[3]);
    if ((argc == 4 || argc == 5) && strcmp(argv[1], "declare") == 0)
        return cmd_declare(argv[2], argv[3], argc == 5 ? argv[4] : NULL);
    if ((argc == 4 || argc == 5) && strcmp(argv[1], "bind") == 0)
        return cmd_bind(argv[2], argv[3], argc == 5 ? argv[4] : NULL);
    if (argc == 4 && is_queue_op(argv[1])) return cmd_queue_op(argv[1], argv[2], argv[3]);
    fprintf(stderr, "usage: ph-test-amqp pub URL_FILE < lines | capture URL_FILE QUEUE OUT | "
                    "depth URL_FILE QUEUE | declare URL_FILE QUEUE [DLX] | "
                    "bind URL_FILE KEY [WAIT_S] | consume|get|purge|delete URL_FILE QUEUE\n");
    return 2;
}
