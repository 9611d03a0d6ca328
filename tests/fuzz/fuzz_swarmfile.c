/* Fuzz target: the swarm-file parser (deploy/supervisor/swarmfile.c).
 *
 * The input is the file: written to swarm.json in a private temporary
 * folder (made once, removed at exit) and loaded with sup_spec_load, as
 * ph-supervisor and the controller's --swarm-file do. A file it accepts
 * must describe a swarm that can run: a valid swarm id, at least one role,
 * every instance id a valid identifier, each role's config an object, and
 * enough slots for every worker. */
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "fuzz_check.h"
#include "ph/shm.h"
#include "supervisor.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[PATH_MAX];
static char path[PATH_MAX + 16];
static int fd = -1;

static void remove_dir(void)
{
    close(fd);
    unlink(path);
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/ph-fuzz-swarmfile.XXXXXX", tmp != NULL && *tmp ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL) {
        perror("fuzz: mkdtemp");
        exit(1);
    }
    snprintf(path, sizeof path, "%s/swarm.json", dir);
    /* Kept open and rewritten in place: a file truncated to nothing and
     * written again is flushed to disk on close by ext4 (auto_da_alloc),
     * which made every input cost a write-back. */
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        perror("fuzz: creating the swarm file");
        exit(1);
    }
    atexit(remove_dir);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if ((size > 0 && pwrite(fd, data, size, 0) != (ssize_t)size) ||
        ftruncate(fd, (off_t)size) != 0) {
        perror("fuzz: writing the swarm file");
        abort();
    }
    struct sup_spec spec;
    char err[1024] = "";
    int rc = sup_spec_load(path, &spec, err, sizeof err);
    FUZZ_CHECK_TERMINATED(err);
    if (rc != PH_OK) {
        FUZZ_CHECK(err[0] != '\0');
        return 0;
    }
    char why[256];
    FUZZ_CHECK(ph_ident_check("swarm id", spec.swarm_id, why, sizeof why) == PH_OK);
    FUZZ_CHECK(ph_ident_check("instance", spec.controller_instance, why, sizeof why) == PH_OK);
    FUZZ_CHECK(spec.nroles > 0 && spec.slots >= spec.total_workers && spec.slots <= PH_MAX_SLOTS);
    size_t total = 0;
    for (size_t i = 0; i < spec.nroles; i++) {
        const struct sup_role *r = &spec.roles[i];
        FUZZ_CHECK(ph_ident_check("role", r->role, why, sizeof why) == PH_OK);
        FUZZ_CHECK(json_is_object(r->config));
        for (unsigned k = 0; k < r->count; k++)
            FUZZ_CHECK(ph_ident_check("instance", r->instances[k], why, sizeof why) == PH_OK);
        total += r->count;
    }
    FUZZ_CHECK(total == spec.total_workers);
    for (size_t i = 0; i < spec.ncontroller_args; i++)
        FUZZ_CHECK(spec.controller_args[i] != NULL);
    sup_spec_free(&spec);
    return 0;
}
