import Myriad
import MyriadCluster
import MyriadClusterBridge
import Testing

/// The MYRIAD_CLUSTER_* knobs: shapes, combinations, defaults, secrets kept out of errors,
/// and what the bridge makes of them.
struct ClusterConfigTests {
    func load(_ environment: [String: String]) throws(ConfigError) -> Config { try Config.load(environment: environment) }

    func error(_ environment: [String: String]) -> ConfigError? {
        do {
            _ = try load(environment)
            return nil
        } catch {
            return error
        }
    }

    @Test func offByDefault() throws {
        let config = try load([:])
        #expect(!config.cluster.isEnabled && config.cluster.subjectPrefix == "myriad." && config.cluster.bufferBytes == 8 << 20)
        #expect(try ClusterBridgeConfiguration.from(config, name: "n") == nil)
        #expect(try !load(["MYRIAD_CLUSTER_URL": ""]).cluster.isEnabled, "empty is off")
    }

    @Test func urlsAndCredentials() throws {
        let plain = try #require(try ClusterBridgeConfiguration.from(load(["MYRIAD_CLUSTER_URL": "nats://10.0.0.5"]), name: "n"))
        #expect(plain.nats.host == "10.0.0.5" && plain.nats.port == 4222 && plain.credentialsDescription == "none")
        #expect(plain.nats.name == "n" && plain.nats.maxPayloadBytes == (1 << 20) + 1 && plain.nats.outboundBufferLimitBytes == 8 << 20)
        let inURL = try #require(try ClusterBridgeConfiguration.from(load(["MYRIAD_CLUSTER_URL": "NATS://u:p%40ss@h:4333/"]), name: "n"))
        #expect(inURL.nats.user == "u" && inURL.nats.password == "p@ss" && inURL.nats.port == 4333)
        let token = try #require(try ClusterBridgeConfiguration.from(load(["MYRIAD_CLUSTER_URL": "nats://s3cret@h"]), name: "n"))
        #expect(token.nats.token == "s3cret" && token.credentialsDescription == "token")
        // Knobs replace the URL's credentials.
        let replaced = try #require(try ClusterBridgeConfiguration.from(load([
            "MYRIAD_CLUSTER_URL": "nats://old@h", "MYRIAD_CLUSTER_USER": "me", "MYRIAD_CLUSTER_PASSWORD": "pw",
        ]), name: "n"))
        #expect(replaced.nats.token == nil && replaced.nats.user == "me" && replaced.nats.password == "pw")
        let knobToken = try #require(try ClusterBridgeConfiguration.from(load([
            "MYRIAD_CLUSTER_URL": "nats://a:b@h", "MYRIAD_CLUSTER_TOKEN": "t",
        ]), name: "n"))
        #expect(knobToken.nats.token == "t" && knobToken.nats.user == nil)
        let sized = try #require(try ClusterBridgeConfiguration.from(load([
            "MYRIAD_CLUSTER_URL": "nats://h", "MYRIAD_CLUSTER_BUFFER": "64K", "MYRIAD_MAX_MESSAGE_SIZE": "16K",
            "MYRIAD_CLUSTER_PREFIX": "acme.chat.",
        ]), name: "n"))
        #expect(sized.nats.outboundBufferLimitBytes == 64 << 10 && sized.nats.maxPayloadBytes == (16 << 10) + 1)
        #expect(sized.subjects.prefix == "acme.chat.")
    }

    @Test func badValuesNameTheVariableAndNeverTheSecret() {
        let cases: [([String: String], String)] = [
            (["MYRIAD_CLUSTER_URL": "tls://u:hunter2@h"], "MYRIAD_CLUSTER_URL"),
            (["MYRIAD_CLUSTER_URL": "nats://u:hunter2@"], "MYRIAD_CLUSTER_URL"),
            (["MYRIAD_CLUSTER_URL": "nats://u:hunter2@h:0"], "MYRIAD_CLUSTER_URL"),
            (["MYRIAD_CLUSTER_URL": "nats://u:hunter2@h/path"], "MYRIAD_CLUSTER_URL"),
            (["MYRIAD_CLUSTER_URL": "nats://u:hun ter2@h"], "MYRIAD_CLUSTER_URL"),
            (["MYRIAD_CLUSTER_TOKEN": "hunter2"], "MYRIAD_CLUSTER_TOKEN"),
            (["MYRIAD_CLUSTER_PASSWORD": "hunter2"], "MYRIAD_CLUSTER_PASSWORD"),
            (["MYRIAD_CLUSTER_URL": "nats://h", "MYRIAD_CLUSTER_TOKEN": "hunter2", "MYRIAD_CLUSTER_USER": "u"], "MYRIAD_CLUSTER_TOKEN"),
            (["MYRIAD_CLUSTER_URL": "nats://h", "MYRIAD_CLUSTER_USER": "u"], "MYRIAD_CLUSTER_PASSWORD"),
            (["MYRIAD_CLUSTER_URL": "nats://h", "MYRIAD_CLUSTER_PASSWORD": "hunter2"], "MYRIAD_CLUSTER_USER"),
            (["MYRIAD_CLUSTER_URL": "nats://h", "MYRIAD_CLUSTER_BUFFER": "64K"], "MYRIAD_CLUSTER_BUFFER"),
            (["MYRIAD_CLUSTER_URL": "nats://h", "MYRIAD_CLUSTER_BUFFER": "2G"], "MYRIAD_CLUSTER_BUFFER"),
        ]
        for (environment, variable) in cases {
            let failure = error(environment)
            #expect(failure?.variable == variable, "\(environment)")
            #expect(failure.map { !$0.description.contains("hunter2") } ?? false, "\(failure?.description ?? "")")
        }
        for prefix in ["", "myriad", ".", "a..", "*.", "a.>.", "a b.", "é.", String(repeating: "a", count: 3000) + "."] {
            #expect(error(["MYRIAD_CLUSTER_PREFIX": prefix])?.variable == "MYRIAD_CLUSTER_PREFIX", "\(prefix.prefix(20))")
        }
        for prefix in ["myriad.", "a.b.", "acme-chat.v2.", "x*.", "%."] {
            #expect(error(["MYRIAD_CLUSTER_PREFIX": prefix]) == nil, "\(prefix)")
        }
    }

    /// The shape check in Config and the strict parse in the bridge agree on these: what the
    /// first lets through, the second parses, and percent-encoding errors are caught there.
    @Test func theBridgeParsesWhatConfigAccepts() throws {
        for url in ["nats://h", "nats://h:1", "nats://[::1]:4222", "nats://u:@h", "nats://t@h/"] {
            #expect(try ClusterBridgeConfiguration.from(load(["MYRIAD_CLUSTER_URL": url]), name: "n") != nil, "\(url)")
        }
        let config = try load(["MYRIAD_CLUSTER_URL": "nats://u:hunter2%zz@h"])
        #expect(throws: ConfigError.self) { try ClusterBridgeConfiguration.from(config, name: "n") }
        do {
            _ = try ClusterBridgeConfiguration.from(config, name: "n")
        } catch {
            #expect(error.variable == "MYRIAD_CLUSTER_URL" && !error.description.contains("hunter2"))
        }
    }
}
