/// Which `Origin`s may open a WebSocket: the defence against cross-site WebSocket hijacking,
/// where a page on another site opens a socket to this server with the user's cookies.
///
/// Browsers always send `Origin`; clients that are not browsers usually do not, and the
/// attack needs a browser, so a request without one is allowed. Origins are compared exactly
/// (scheme, host and port as the browser sends them, e.g. `https://chat.example.com`).
public struct OriginPolicy: Sendable, Equatable {
    /// nil: every origin is allowed.
    public var allowed: Set<String>?

    public init(allowed: Set<String>? = nil) { self.allowed = allowed }

    /// Every origin allowed.
    public static let any = OriginPolicy()

    public func allows(_ request: UpgradeRequestHead) -> Bool {
        guard let allowed, let origin = request.origin else { return true }
        return allowed.contains(origin)
    }

    /// From MYRIAD_ALLOWED_ORIGINS: a comma list, empty for any.
    public init(list: String) {
        let origins = list.split(separator: ",").map { String($0).trimmingSpaces }.filter { !$0.isEmpty }
        allowed = origins.isEmpty ? nil : Set(origins)
    }
}
