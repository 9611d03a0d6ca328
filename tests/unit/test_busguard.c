/* Unit tests of the SIGBUS guard (shm/busguard.c) on real POSIX shared
 * memory truncated under its mapping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ph/busguard.h"

static size_t page;
static char name[64];

static int setup(void **state)
{
    (void)state;
    page = (size_t)sysconf(_SC_PAGESIZE);
    snprintf(name, sizeof name, "/pht-ut-bus-%d", (int)getpid());
    return 0;
}

/* cmocka puts its own SIGBUS handler in place around each test (and each
 * set-up), so every test installs the guard first thing. */
static void guard(void)
{
    assert_int_equal(ph_busguard_install(), 0);
}

static int teardown(void **state)
{
    (void)state;
    shm_unlink(name);
    return 0;
}

/* A fresh object of `pages` pages, mapped read-write, each page filled with
 * its number + 1. */
static uint8_t *object(int *fd, size_t pages)
{
    shm_unlink(name);
    *fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
    assert_true(*fd >= 0);
    assert_int_equal(ftruncate(*fd, (off_t)(pages * page)), 0);
    uint8_t *m = mmap(NULL, pages * page, PROT_READ | PROT_WRITE, MAP_SHARED, *fd, 0);
    assert_true(m != MAP_FAILED);
    for (size_t i = 0; i < pages; i++) memset(m + i * page, (int)(i + 1), page);
    return m;
}

/* Read through a volatile pointer: the access must really happen. */
static uint8_t peek(const uint8_t *p)
{
    return *(const volatile uint8_t *)p;
}

static void access_past_a_truncation_reads_zeros_and_is_reported(void **state)
{
    (void)state;
    guard();
    int fd;
    uint8_t *m = object(&fd, 4);
    ph_busguard_watch(1, m, 4 * page, PROT_READ | PROT_WRITE);
    assert_int_equal(ph_busguard_take(), 0);
    assert_int_equal(ftruncate(fd, (off_t)page), 0); /* someone cuts it to one page */
    assert_int_equal(peek(m + 10), 1);                /* the part left is untouched */
    assert_int_equal(peek(m + 2 * page + 5), 0);      /* faulted: zeros, no death */
    m[3 * page] = 7;                                  /* writable, private */
    assert_int_equal(peek(m + 3 * page), 7);
    assert_int_equal(ph_busguard_take(), 1u << 1);
    assert_int_equal(ph_busguard_take(), 0); /* taken once */
    ph_busguard_watch(1, NULL, 0, 0);
    munmap(m, 4 * page);
    close(fd);
}

static void remap_puts_the_shared_pages_back(void **state)
{
    (void)state;
    guard();
    int fd;
    uint8_t *m = object(&fd, 3);
    ph_busguard_watch(0, m, 3 * page, PROT_READ | PROT_WRITE);
    assert_int_equal(ftruncate(fd, (off_t)page), 0);
    assert_int_equal(peek(m + 2 * page), 0);
    assert_int_equal(ph_busguard_take(), 1u);
    /* The owner restores the size and maps the object again. */
    assert_int_equal(ftruncate(fd, (off_t)(3 * page)), 0);
    assert_int_equal(ph_busguard_remap(m, 3 * page, fd, PROT_READ | PROT_WRITE), 0);
    const uint8_t v = 42;
    assert_int_equal(pwrite(fd, &v, 1, (off_t)(2 * page + 1)), 1);
    assert_int_equal(peek(m + 2 * page + 1), 42); /* shared again */
    m[page + 3] = 9;
    uint8_t back = 0;
    assert_int_equal(pread(fd, &back, 1, (off_t)(page + 3)), 1);
    assert_int_equal(back, 9);
    assert_int_equal(ph_busguard_take(), 0);
    ph_busguard_watch(0, NULL, 0, 0);
    munmap(m, 3 * page);
    close(fd);
}

/* In a child: maps the object, optionally watches it, truncates it and
 * touches the lost part. Returns the child's wait status. */
static int child_touches_lost_part(bool watch_then_unwatch)
{
    int fd;
    uint8_t *m = object(&fd, 2);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (watch_then_unwatch) {
            ph_busguard_watch(2, m, 2 * page, PROT_READ);
            ph_busguard_watch(2, NULL, 0, 0);
        }
        if (ftruncate(fd, 0) != 0) _exit(3);
        (void)peek(m + page);
        _exit(0);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    munmap(m, 2 * page);
    close(fd);
    return st;
}

static void a_fault_outside_the_watched_mappings_is_not_swallowed(void **state)
{
    (void)state;
    guard();
    int st = child_touches_lost_part(false);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGBUS);
    st = child_touches_lost_part(true); /* watched once, no longer */
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGBUS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(access_past_a_truncation_reads_zeros_and_is_reported),
        cmocka_unit_test(remap_puts_the_shared_pages_back),
        cmocka_unit_test(a_fault_outside_the_watched_mappings_is_not_swallowed),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
