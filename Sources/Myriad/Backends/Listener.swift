import CLibURing
import Glibc

/// The listening sockets: one per worker, all on the same address with SO_REUSEPORT so the
/// kernel spreads incoming connections over the workers.
package enum Listener {
    /// Opens a non-blocking listening socket on `host:port` (port 0: any free port).
    /// TCP_NODELAY is set here because accepted sockets inherit it, and io_uring direct
    /// descriptors never pass through the process fd table where it could be set later.
    package static func open(host: String, port: UInt16, backlog: Int) throws(SystemError) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket", errno: errno) }
        var one: Int32 = 1
        let size = socklen_t(MemoryLayout<Int32>.size)
        guard setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, size) == 0,
              setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, size) == 0,
              setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, size) == 0 else {
            let saved = errno
            Glibc.close(fd)
            throw SystemError("setsockopt(listener)", errno: saved)
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else {
            Glibc.close(fd)
            throw SystemError("inet_pton(\(host))", errno: EINVAL)
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0 else {
            let saved = errno
            Glibc.close(fd)
            throw SystemError("bind(\(host):\(port))", errno: saved)
        }
        guard listen(fd, Int32(clamping: backlog)) == 0 else {
            let saved = errno
            Glibc.close(fd)
            throw SystemError("listen", errno: saved)
        }
        return fd
    }

    /// The port a socket is bound to.
    package static func port(of fd: Int32) -> UInt16 {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return UInt16(bigEndian: address.sin_port)
    }
}
