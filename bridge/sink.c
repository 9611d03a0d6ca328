/* Sink selection by spec string (sink.h). */
#include "sink.h"

#include <stdio.h>
#include <string.h>

int sink_open(const char *spec, const struct sink_cfg *cfg, struct sink **out, char *err,
              size_t errlen)
{
    *out = NULL;
    if (spec == NULL || spec[0] == '\0') {
        snprintf(err, errlen, "no sink: give --sink file:PATH or set PH_SINK");
        return PH_ERR_INVAL;
    }
    if (strncmp(spec, "file:", 5) == 0) {
        if (spec[5] == '\0') {
            snprintf(err, errlen, "sink 'file:' needs a path (file:PATH)");
            return PH_ERR_INVAL;
        }
        return sink_file_open(spec + 5, out, err, errlen);
    }
    if (strcmp(spec, "amqp") == 0) return sink_amqp_open(cfg, out, err, errlen);
    if (strncmp(spec, "amqp:", 5) == 0) {
        /* A URL here would put credentials on the command line. */
        snprintf(err, errlen,
                 "sink 'amqp' takes no argument: the URL comes from PH_AMQP_URL or "
                 "--amqp-url-file, never from the command line");
        return PH_ERR_INVAL;
    }
    snprintf(err, errlen, "unknown sink '%.40s': expected file:PATH or amqp", spec);
    return PH_ERR_INVAL;
}
