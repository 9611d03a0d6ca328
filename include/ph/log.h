/* One log line format for every process:
 *   2026-11-27T02:40:00.123Z ph-swarm-controller[demo] info: message
 * Lines go to stderr (the supervisor collects them per process). Never log a
 * secret: configs are logged only after secret keys are removed. */
#ifndef PH_LOG_H
#define PH_LOG_H

#ifdef __cplusplus
extern "C" {
#endif

enum ph_log_level { PH_LOG_DEBUG = 0, PH_LOG_INFO = 1, PH_LOG_WARN = 2, PH_LOG_ERROR = 3 };

/* Sets the program name and subject shown in brackets; both are copied. */
void ph_log_init(const char *prog, const char *subject);
/* Lines below this level are dropped (default info; PH_LOG_LEVEL=debug|info|warn|error). */
void ph_log_set_level(enum ph_log_level level);
void ph_log(enum ph_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define ph_debug(...) ph_log(PH_LOG_DEBUG, __VA_ARGS__)
#define ph_info(...) ph_log(PH_LOG_INFO, __VA_ARGS__)
#define ph_warn(...) ph_log(PH_LOG_WARN, __VA_ARGS__)
#define ph_error(...) ph_log(PH_LOG_ERROR, __VA_ARGS__)

#ifdef __cplusplus
}
#endif
#endif
