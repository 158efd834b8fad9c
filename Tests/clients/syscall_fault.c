// Runs a command under a seccomp filter that makes chosen system calls fail with a chosen
// errno, as a restricted container would (Docker's default profile refuses io_uring_setup
// with EPERM) or as a kernel under pressure does (epoll_ctl ENOMEM). The tests use it to
// provoke, on the real kernel, the failures the engine must survive.
//
//   syscall_fault RULE [RULE...] -- COMMAND [ARGS...]
//   RULE: SYSCALL:ERRNO            every call fails
//         SYSCALL:ERRNO:ARGn=VALUE only calls whose argument n (0-5) equals VALUE fail
//   SYSCALL: io_uring_setup | epoll_ctl | accept4      ERRNO: EPERM | ENOMEM | ENOSPC | EMFILE
//   e.g. syscall_fault epoll_ctl:ENOMEM:ARG1=3 -- myriad serve   (EPOLL_CTL_MOD fails)
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

struct named { const char *name; long value; };
static const struct named syscalls[] = {
    { "io_uring_setup", __NR_io_uring_setup }, { "epoll_ctl", __NR_epoll_ctl }, { "accept4", __NR_accept4 },
};
static const struct named errnos[] = {
    { "EPERM", EPERM }, { "ENOMEM", ENOMEM }, { "ENOSPC", ENOSPC }, { "EMFILE", EMFILE },
};

static long lookup(const struct named *table, size_t count, const char *name) {
    for (size_t i = 0; i < count; i++) if (strcmp(table[i].name, name) == 0) return table[i].value;
    fprintf(stderr, "syscall_fault: unknown name %s\n", name);
    exit(2);
}

int main(int argc, char **argv) {
    struct sock_filter filter[64];
    size_t n = 0;
    int index = 1;
    for (; index < argc && strcmp(argv[index], "--") != 0; index++) {
        char rule[128];
        snprintf(rule, sizeof rule, "%s", argv[index]);
        char *name = strtok(rule, ":"), *error = strtok(NULL, ":"), *arg = strtok(NULL, ":");
        if (!name || !error || n + 6 > sizeof filter / sizeof filter[0]) { fprintf(stderr, "syscall_fault: bad rule %s\n", argv[index]); return 2; }
        long nr = lookup(syscalls, sizeof syscalls / sizeof syscalls[0], name);
        long code = lookup(errnos, sizeof errnos / sizeof errnos[0], error);
        struct sock_filter ret = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (code & SECCOMP_RET_DATA));
        filter[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
        if (arg) {
            int which = 0;
            unsigned value = 0;
            if (sscanf(arg, "ARG%d=%u", &which, &value) != 2 || which < 0 || which > 5) { fprintf(stderr, "syscall_fault: bad argument %s\n", arg); return 2; }
            filter[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nr, 0, 3);
            filter[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[which]));
            filter[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, value, 0, 1);
            filter[n++] = ret;
        } else {
            filter[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nr, 0, 1);
            filter[n++] = ret;
        }
    }
    if (index + 1 >= argc || n == 0) {
        fprintf(stderr, "usage: syscall_fault SYSCALL:ERRNO[:ARGn=VALUE]... -- COMMAND [ARGS...]\n");
        return 2;
    }
    filter[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    struct sock_fprog program = { .len = (unsigned short)n, .filter = filter };
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) != 0) {
        perror("seccomp");
        return 2;
    }
    execvp(argv[index + 1], argv + index + 1);
    perror("execvp");
    return 127;
}
