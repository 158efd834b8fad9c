// The only C in Myriad: liburing 2.3 as Debian 12 ships it, plus the few things Swift
// cannot import from it directly (function-like macros, flexible array members).
#ifndef MYRIAD_CLIBURING_SHIM_H
#define MYRIAD_CLIBURING_SHIM_H

// The kernel's uapi header first: liburing's bundled copy has the same include guard, so it is
// skipped and every module that sees io_uring types (swift-system's CSystem does too) sees
// one identical definition instead of two conflicting ones.
#include <linux/io_uring.h>
// liburing.h defines _XOPEN_SOURCE before including glibc headers, which changes glibc's
// struct definitions (fd_set's member is `fds_bits` instead of `__fds_bits`); the Glibc
// module has the other one and Clang refuses the mismatch. Include those headers first, with
// the same macros as the Glibc module, so liburing's includes find them already included.
#include <sys/types.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <signal.h>
#include <time.h>
#include <fcntl.h>
#include <liburing.h>
#include <errno.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>
// malloc_trim: after a burst a worker hands malloc's free pages back (Worker+Memory.swift);
// the Glibc module does not export <malloc.h>.
#include <malloc.h>

// Newer than liburing 2.3's headers: defined here so the engine can probe for them.
#ifndef IORING_SETUP_SINGLE_ISSUER
#define IORING_SETUP_SINGLE_ISSUER (1U << 12)
#endif
#ifndef IORING_SETUP_DEFER_TASKRUN
#define IORING_SETUP_DEFER_TASKRUN (1U << 13)
#endif
#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

/// Address of buffer slot `index` in a provided buffer ring (Swift cannot index the
/// flexible array member of `struct io_uring_buf_ring`).
static inline struct io_uring_buf *myriad_buf_ring_entry(struct io_uring_buf_ring *br, unsigned index) {
    return &br->bufs[index];
}

/// The ring's shared tail, as the kernel sees it after `io_uring_buf_ring_advance`.
static inline unsigned short myriad_buf_ring_tail(struct io_uring_buf_ring *br) {
    return br->tail;
}

/// Number of completions waiting in the CQ (liburing's `io_uring_cq_ready` with an
/// acquire load, exposed as a plain function for Swift).
static inline unsigned myriad_cq_ready(const struct io_uring *ring) {
    return io_uring_cq_ready(ring);
}

/// Whether the kernel has completions it could not post (IORING_SQ_CQ_OVERFLOW): they are
/// kept (IORING_FEAT_NODROP) and flushed by the next enter with GETEVENTS.
static inline int myriad_cq_has_overflow(const struct io_uring *ring) {
    return io_uring_cq_has_overflow(ring) ? 1 : 0;
}

/// Whether deferred task work is pending (IORING_SQ_TASKRUN, set with TASKRUN_FLAG).
static inline int myriad_taskrun_pending(const struct io_uring *ring) {
    return (IO_URING_READ_ONCE(*ring->sq.kflags) & IORING_SQ_TASKRUN) ? 1 : 0;
}

static inline int myriad_errno(void) { return errno; }

/// IORING_REGISTER_ENABLE_RINGS: starts a ring created with IORING_SETUP_R_DISABLED.
/// liburing 2.3 declares io_uring_enable_rings but does not export it.
static inline int myriad_enable_rings(struct io_uring *ring) {
    long result = syscall(__NR_io_uring_register, ring->ring_fd, IORING_REGISTER_ENABLE_RINGS, (void *)0, 0);
    return result < 0 ? -errno : 0;
}

// SQE flags: liburing defines them as shifts of enum values, which Swift cannot import.
static const unsigned MYRIAD_IOSQE_FIXED_FILE = IOSQE_FIXED_FILE;
static const unsigned MYRIAD_IOSQE_IO_LINK = IOSQE_IO_LINK;
static const unsigned MYRIAD_IOSQE_BUFFER_SELECT = IOSQE_BUFFER_SELECT;
static const unsigned MYRIAD_IOSQE_CQE_SKIP_SUCCESS = IOSQE_CQE_SKIP_SUCCESS;

/// getrandom(2) (glibc 2.25+). <sys/random.h> is not part of Swift's Glibc module, so the
/// function is declared here rather than by including the header (which could clash with the
/// Glibc module's own copies of the headers it pulls in).
extern ssize_t getrandom(void *buffer, size_t length, unsigned int flags);

/// Fills `buffer` with `length` bytes from the kernel's CSPRNG; returns the count or -1 (errno).
static inline long myriad_getrandom(void *buffer, unsigned long length) {
    return (long)getrandom(buffer, length, 0);
}

/// Grows an anonymous mapping, moving it if it must (mremap with MREMAP_MAYMOVE: the kernel
/// moves the page tables, nothing is copied or touched). Returns MAP_FAILED and sets errno
/// on failure. Through syscall(2) because the Glibc module does not export mremap.
static inline void *myriad_mremap_grow(void *old, unsigned long oldBytes, unsigned long newBytes) {
    return (void *)syscall(SYS_mremap, old, oldBytes, newBytes, 1 /* MREMAP_MAYMOVE */);
}

/// accept4 without the peer address (glibc's transparent-union parameter does not import).
static inline int myriad_accept4(int fd, int flags) {
    return accept4(fd, (struct sockaddr *)0, (socklen_t *)0, flags);
}

#endif
