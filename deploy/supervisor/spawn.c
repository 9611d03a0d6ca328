/* Starting one child process.
 *
 * fork + exec rather than posix_spawn because the child needs one thing
 * posix_spawn cannot do: PR_SET_PDEATHSIG, so that a supervisor killed with
 * SIGKILL does not leave a swarm running with nobody to stop it. The child
 * only calls async-signal-safe functions between fork and exec.
 *
 * An exec failure is reported through a close-on-exec pipe: the parent reads
 * either nothing (exec succeeded, the pipe closed) or the child's errno. */
#include "supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static void child(char *const argv[], char *const envp[], int in_fd, int log_fd, int err_pipe,
                  pid_t parent)
{
    /* The supervisor blocks the signals it reads through signalfd and
     * ignores SIGPIPE; an ignored signal stays ignored across exec, and a
     * shell that started us in the background may have ignored SIGINT and
     * SIGQUIT. The child starts with the defaults. */
    sigset_t none;
    sigemptyset(&none);
    static const int reset[] = {SIGPIPE, SIGINT, SIGQUIT, SIGTERM, SIGHUP, SIGCHLD};
    for (size_t i = 0; i < sizeof reset / sizeof reset[0]; i++)
        signal(reset[i], SIG_DFL);
    sigprocmask(SIG_SETMASK, &none, NULL);

    if (dup2(in_fd, STDIN_FILENO) < 0 || dup2(log_fd, STDOUT_FILENO) < 0 ||
        dup2(log_fd, STDERR_FILENO) < 0)
        goto fail;
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0) goto fail;
    /* The supervisor may have died before prctl took effect. */
    if (getppid() != parent) _exit(127);
    if (envp != NULL)
        execve(argv[0], argv, envp);
    else
        execv(argv[0], argv);
fail:;
    int e = errno;
    ssize_t n = write(err_pipe, &e, sizeof e);
    (void)n;
    _exit(127);
}

int sup_spawn(char *const argv[], char *const envp[], const char *log_path, pid_t *pid, char *err,
              size_t errlen)
{
    int log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (log_fd < 0) {
        snprintf(err, errlen, "cannot open log %s: %s", log_path, strerror(errno));
        return PH_ERR_SYS;
    }
    int in_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    int pipefd[2];
    if (in_fd < 0 || pipe2(pipefd, O_CLOEXEC) != 0) {
        snprintf(err, errlen, "cannot prepare to start %s: %s", argv[0], strerror(errno));
        if (in_fd >= 0) close(in_fd);
        close(log_fd);
        return PH_ERR_SYS;
    }
    pid_t parent = getpid();
    pid_t p = fork();
    if (p == 0) child(argv, envp, in_fd, log_fd, pipefd[1], parent);
    int fork_errno = errno;
    close(pipefd[1]);
    close(in_fd);
    close(log_fd);
    if (p < 0) {
        close(pipefd[0]);
        snprintf(err, errlen, "cannot fork for %s: %s", argv[0], strerror(fork_errno));
        return PH_ERR_SYS;
    }
    int child_errno = 0;
    ssize_t n;
    do
        n = read(pipefd[0], &child_errno, sizeof child_errno);
    while (n < 0 && errno == EINTR);
    close(pipefd[0]);
    if (n == (ssize_t)sizeof child_errno) {
        /* The child never ran the program; collect it here so that the
         * event loop does not see an "unexpected exit" of a pid it never
         * learned about. */
        while (waitpid(p, NULL, 0) < 0 && errno == EINTR) {
        }
        snprintf(err, errlen, "cannot run %s: %s", argv[0], strerror(child_errno));
        return PH_ERR_SYS;
    }
    *pid = p;
    return PH_OK;
}
