import CoreMetrics
import Myriad
import ServiceLifecycle
import Synchronization

/// What `MetricsExporter` reads: an `Engine` (any handler type).
public protocol MetricsSource: AnyObject, Sendable {
    func metrics(includeProcess: Bool) -> [MetricFamily]
}

extension Engine: MetricsSource {}

/// Exports the engine's metrics through swift-metrics, to whatever backend the application
/// bootstrapped (Prometheus, StatsD, OpenTelemetry...): every `interval`, it reads the workers'
/// published counters (the same board `/metrics` and the stats line read) and brings each
/// swift-metrics handler up to date. Nothing runs per event, and the workers never wait for it.
///
/// - Counters (`*_total`) become `Counter`s incremented by what was added since the last
///   export (`FloatingPointCounter` for `process_cpu_seconds_total`).
/// - Gauges become `Gauge`s (`Recorder` without aggregation) set to the current value; the
///   per-worker ones carry a `worker` dimension.
/// - The latency histograms arrive already bucketed, and swift-metrics has no type for a
///   bucketed histogram (a `Timer` takes one duration at a time; replaying every sample would
///   be work per event). They are exported the way Prometheus itself stores them: a counter
///   `<name>_bucket` per bucket with an `le` dimension (cumulative), a `FloatingPointCounter`
///   `<name>_sum` in seconds and a counter `<name>_count`, so `histogram_quantile` works on
///   them unchanged.
///
/// Names and labels are the Prometheus ones of the README's metrics table.
///
///     MetricsSystem.bootstrap(PrometheusMetricsFactory())   // or StatsD, OTel...
///     let exporter = MetricsExporter(source: engine, interval: .seconds(10))
///     // a ServiceLifecycle Service: add it to the application's ServiceGroup, or
///     Task { await exporter.run() }
public final class MetricsExporter: Service, Sendable {
    public let interval: Duration
    private let source: any MetricsSource
    private let includeProcess: Bool
    private let factory: any MetricsFactory
    private let state = Mutex(State())

    private struct State {
        var counters: [Key: Counter] = [:]
        var realCounters: [Key: FloatingPointCounter] = [:]
        var gauges: [Key: Gauge] = [:]
        /// Each counter's value at the last export.
        var exported: [Key: Double] = [:]
    }

    private struct Key: Hashable {
        var name: String
        var labels: [MetricLabel]
    }

    /// - Parameters:
    ///   - source: the engine.
    ///   - interval: how often `run` exports.
    ///   - includeProcess: also export the `process_*` metrics (off by default: the
    ///     application's backend may export its own).
    ///   - factory: the swift-metrics backend (default: the one bootstrapped).
    public init(source: some MetricsSource, interval: Duration = .seconds(10), includeProcess: Bool = false,
                factory: any MetricsFactory = MetricsSystem.factory) {
        self.source = source
        self.interval = interval
        self.includeProcess = includeProcess
        self.factory = factory
    }

    /// Exports every `interval` until the task is cancelled or a graceful shutdown begins,
    /// then once more (the final figures).
    public func run() async {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                self.export()
                try? await Task.sleep(for: self.interval)
            }
        }
        export()
    }

    /// Reads the counters once and updates every swift-metrics handler.
    public func export() {
        let families = source.metrics(includeProcess: includeProcess)
        state.withLock { state in
            for family in families {
                for sample in family.samples {
                    let key = Key(name: family.name, labels: sample.labels)
                    switch (family.kind, sample.value) {
                    case (.gauge, .integer(let value)):
                        gauge(key, &state).record(value)
                    case (.gauge, .real(let value)):
                        gauge(key, &state).record(value)
                    case (.counter, .integer(let value)):
                        advance(key, to: Double(value), &state)
                    case (.counter, .real(let value)):
                        advanceReal(key, to: value, &state)
                    case (_, .histogram(let histogram)):
                        for (bound, count) in zip(LatencyHistogram.bucketLabels, histogram.cumulativeCounts) {
                            advance(Key(name: family.name + "_bucket", labels: sample.labels + [MetricLabel("le", bound)]),
                                    to: Double(count), &state)
                        }
                        advanceReal(Key(name: family.name + "_sum", labels: sample.labels), to: histogram.sumSeconds, &state)
                        advance(Key(name: family.name + "_count", labels: sample.labels), to: Double(histogram.count), &state)
                    case (.histogram, _):
                        break
                    }
                }
            }
        }
    }

    private func dimensions(_ key: Key) -> [(String, String)] { key.labels.map { ($0.name, $0.value) } }

    private func gauge(_ key: Key, _ state: inout State) -> Gauge {
        if let gauge = state.gauges[key] { return gauge }
        let gauge = Gauge(label: key.name, dimensions: dimensions(key), factory: factory)
        state.gauges[key] = gauge
        return gauge
    }

    private func advance(_ key: Key, to value: Double, _ state: inout State) {
        let counter: Counter
        if let existing = state.counters[key] {
            counter = existing
        } else {
            counter = Counter(label: key.name, dimensions: dimensions(key), factory: factory)
            state.counters[key] = counter
        }
        let added = Int64(value - (state.exported[key] ?? 0))
        if added > 0 { counter.increment(by: added) }
        state.exported[key] = value
    }

    private func advanceReal(_ key: Key, to value: Double, _ state: inout State) {
        let counter: FloatingPointCounter
        if let existing = state.realCounters[key] {
            counter = existing
        } else {
            counter = FloatingPointCounter(label: key.name, dimensions: dimensions(key), factory: factory)
            state.realCounters[key] = counter
        }
        let added = value - (state.exported[key] ?? 0)
        if added > 0 { counter.increment(by: added) }
        state.exported[key] = value
    }
}
