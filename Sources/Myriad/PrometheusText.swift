/// The Prometheus text exposition format (version 0.0.4), written directly from the metric
/// families: no registry, no client library, nothing kept between scrapes.
public enum PrometheusText {
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    public static func render(_ families: [MetricFamily]) -> String {
        var out = ""
        out.reserveCapacity(families.count * 256)
        for family in families {
            out += "# HELP \(family.name) \(escapeHelp(family.help))\n"
            out += "# TYPE \(family.name) \(family.kind.rawValue)\n"
            for sample in family.samples {
                switch sample.value {
                case .integer(let value):
                    out += family.name + labels(sample.labels) + " " + String(value) + "\n"
                case .real(let value):
                    out += family.name + labels(sample.labels) + " " + number(value) + "\n"
                case .histogram(let histogram):
                    let cumulative = histogram.cumulativeCounts
                    for (bound, count) in zip(LatencyHistogram.bucketLabels, cumulative) {
                        out += family.name + "_bucket" + labels(sample.labels + [MetricLabel("le", bound)]) + " " + String(count) + "\n"
                    }
                    out += family.name + "_sum" + labels(sample.labels) + " " + number(histogram.sumSeconds) + "\n"
                    out += family.name + "_count" + labels(sample.labels) + " " + String(histogram.count) + "\n"
                }
            }
        }
        return out
    }

    static func labels(_ labels: [MetricLabel]) -> String {
        guard !labels.isEmpty else { return "" }
        return "{" + labels.map { "\($0.name)=\"\(escapeLabelValue($0.value))\"" }.joined(separator: ",") + "}"
    }

    static func number(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        return String(value)
    }

    /// HELP text: backslash and line feed escaped.
    static func escapeHelp(_ text: String) -> String {
        var out = ""
        for character in text {
            switch character {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            default: out.append(character)
            }
        }
        return out
    }

    /// Label values: backslash, double quote and line feed escaped.
    static func escapeLabelValue(_ text: String) -> String {
        var out = ""
        for character in text {
            switch character {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(character)
            }
        }
        return out
    }
}
