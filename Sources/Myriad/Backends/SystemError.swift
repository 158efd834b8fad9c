import Glibc

/// A failed system call: which one, and errno.
public struct SystemError: Error, CustomStringConvertible, Sendable {
    public var operation: String
    public var errno: Int32

    public init(_ operation: String, errno: Int32) {
        self.operation = operation
        self.errno = errno
    }

    /// The symbolic name (`EMFILE`) of an errno value, for logs and counters.
    public static func name(of errno: Int32) -> String {
        switch errno {
        case EPERM: return "EPERM"
        case ENOENT: return "ENOENT"
        case EINTR: return "EINTR"
        case EBADF: return "EBADF"
        case EBADFD: return "EBADFD"
        case EBADR: return "EBADR"
        case EIO: return "EIO"
        case EAGAIN: return "EAGAIN"
        case ENOMEM: return "ENOMEM"
        case EACCES: return "EACCES"
        case EFAULT: return "EFAULT"
        case EBUSY: return "EBUSY"
        case EEXIST: return "EEXIST"
        case EINVAL: return "EINVAL"
        case ENFILE: return "ENFILE"
        case EMFILE: return "EMFILE"
        case ENOSPC: return "ENOSPC"
        case EPIPE: return "EPIPE"
        case ENOSYS: return "ENOSYS"
        case ENOTSOCK: return "ENOTSOCK"
        case EOPNOTSUPP: return "EOPNOTSUPP"
        case EADDRINUSE: return "EADDRINUSE"
        case EADDRNOTAVAIL: return "EADDRNOTAVAIL"
        case ENETUNREACH: return "ENETUNREACH"
        case ECONNABORTED: return "ECONNABORTED"
        case ECONNRESET: return "ECONNRESET"
        case ENOBUFS: return "ENOBUFS"
        case ENOTCONN: return "ENOTCONN"
        case ETIMEDOUT: return "ETIMEDOUT"
        case ECONNREFUSED: return "ECONNREFUSED"
        case EHOSTUNREACH: return "EHOSTUNREACH"
        case EALREADY: return "EALREADY"
        case EINPROGRESS: return "EINPROGRESS"
        case ECANCELED: return "ECANCELED"
        case ETIME: return "ETIME"
        default: return "errno \(errno)"
        }
    }

    public var description: String {
        "\(operation): \(SystemError.name(of: errno)) (\(String(cString: strerror(errno))))"
    }
}
