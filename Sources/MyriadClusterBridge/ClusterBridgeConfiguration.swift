import Myriad
import MyriadCluster

/// What the bridge needs: where the NATS server is (with credentials and the client's
/// limits) and how topics map to subjects.
public struct ClusterBridgeConfiguration: Sendable {
    public var nats: NATSClientConfiguration
    public var subjects: ClusterSubject

    public init(nats: NATSClientConfiguration, subjects: ClusterSubject) {
        self.nats = nats
        self.subjects = subjects
    }

    /// The bridge configuration `config`'s MYRIAD_CLUSTER_* knobs describe, or nil when
    /// clustering is off. The URL is parsed strictly here (the knob only checked its shape);
    /// credentials from MYRIAD_CLUSTER_TOKEN / _USER / _PASSWORD replace any in the URL; the
    /// largest payload is the largest message plus the kind byte. `name` is CONNECT's name,
    /// which the server shows in /connz. Failures name the variable, never a secret.
    public static func from(_ config: Config, name: String) throws(ConfigError) -> ClusterBridgeConfiguration? {
        let cluster = config.cluster
        guard let url = cluster.url else { return nil }
        var nats: NATSClientConfiguration
        do {
            nats = try NATSClientConfiguration(url: url)
        } catch {
            throw ConfigError(variable: "MYRIAD_CLUSTER_URL", value: ClusterSettings.redacted(url), expected: error.description)
        }
        if cluster.token != nil || cluster.user != nil || cluster.password != nil {
            nats.token = cluster.token
            nats.user = cluster.user
            nats.password = cluster.password
        }
        nats.name = name
        nats.maxPayloadBytes = config.maxMessageSizeBytes + 1
        nats.outboundBufferLimitBytes = cluster.bufferBytes
        do {
            try nats.validate()
        } catch {
            throw ConfigError(variable: "MYRIAD_CLUSTER_URL", value: ClusterSettings.redacted(url), expected: error.description)
        }
        let subjects: ClusterSubject
        do {
            subjects = try ClusterSubject(prefix: cluster.subjectPrefix)
        } catch {
            throw ConfigError(variable: "MYRIAD_CLUSTER_PREFIX", value: cluster.subjectPrefix, expected: error.description)
        }
        return ClusterBridgeConfiguration(nats: nats, subjects: subjects)
    }

    /// How the node authenticates, in words (for the start-up log line).
    public var credentialsDescription: String {
        if nats.token != nil { return "token" }
        if let user = nats.user { return "user \(user)" }
        return "none"
    }
}
