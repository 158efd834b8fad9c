/// The doctor's rows rendered for people (an aligned table and a summary) and for scripts
/// (a JSON array of objects with the keys `DoctorReport.jsonKeys`).
public struct DoctorReport: Sendable {
    public var checks: [DoctorCheck]
    /// One or two lines: what was checked, the plan, the counts and the verdict.
    public var summary: String

    /// Nothing failed: `myriad doctor` exits 0 only then.
    public var passed: Bool { !checks.contains { $0.status == .fail } }

    /// The keys of every JSON object, in order.
    public static let jsonKeys = ["id", "check", "status", "measured", "needed", "fix"]

    public init(checks: [DoctorCheck], summary: String) {
        self.checks = checks
        self.summary = summary
    }

    /// Columns STATUS, CHECK, MEASURED, NEEDED, FIX, padded to the widest cell; the fix
    /// column is last and not padded. `-` stands for an empty fix.
    public func table() -> String {
        let header = ["STATUS", "CHECK", "MEASURED", "NEEDED", "FIX"]
        let rows = [header] + checks.map { [$0.status.rawValue, $0.name, $0.measured, $0.needed, $0.fix.isEmpty ? "-" : $0.fix] }
        var widths = [Int](repeating: 0, count: header.count - 1)
        for row in rows {
            for column in widths.indices { widths[column] = max(widths[column], row[column].count) }
        }
        var lines: [String] = []
        for row in rows {
            var line = ""
            for column in widths.indices {
                line += row[column] + String(repeating: " ", count: widths[column] - row[column].count + 2)
            }
            lines.append(line + row[header.count - 1])
        }
        return lines.joined(separator: "\n") + "\n\n" + summary + "\n"
    }

    /// A JSON array, one object per row, keys as `jsonKeys`, every value a string.
    public func json() -> String {
        let objects = checks.map { check in
            let values = [check.id, check.name, check.status.rawValue, check.measured, check.needed, check.fix]
            let members = zip(DoctorReport.jsonKeys, values).map { "\(jsonString($0)): \(jsonString($1))" }
            return "  {" + members.joined(separator: ", ") + "}"
        }
        return "[\n" + objects.joined(separator: ",\n") + "\n]\n"
    }
}

extension Doctor {
    /// Every check with a summary: the route to N (io_uring: workers x rings per worker x
    /// fixed files per ring, or one process's fds), the memory estimate, and the counts.
    public func report() -> DoctorReport {
        let checks = self.checks()
        let estimate = memoryEstimate
        var plan = "\(connections) connections, role \(role.rawValue): "
        if usesIOURing {
            let fdLimit = "per-process fd limit \(facts.fileLimit.hard)"
            switch (role, ringLayout) {
            case (.server, .success(let layout)):
                plan += "io_uring route = \(layout) (\(fdLimit))"
            case (.server, .failure):
                plan += "io_uring route does not fit (\(fdLimit); see the io_uring fixed files row)"
            case (.client, _):
                plan += "io_uring route = \(counted(ringsNeeded, "ring")) x \(fixedFilesPerRing) fixed files"
                    + " >= \(connections) (\(fdLimit))"
            }
        } else {
            plan += "epoll route = one process's fds, at most \(fileDescriptorCapacity)"
        }
        plan += "; memory ~\(approximateBytes(estimate.totalBytes))"
        if let available = facts.memoryAvailableBytes { plan += " of \(approximateBytes(available)) available" }
        let counts = DoctorStatus.allCases.reversed().map { status in
            "\(checks.filter { $0.status == status }.count) \(status.rawValue)"
        }
        let failing = checks.filter { $0.status == .fail }.map(\.name)
        let verdict = failing.isEmpty
            ? "PASS: nothing fails"
            : "FAIL: " + failing.joined(separator: "; ")
        return DoctorReport(checks: checks, summary: plan + "\n" + counts.joined(separator: ", ") + ". " + verdict)
    }
}

/// `text` as a JSON string literal.
func jsonString(_ text: String) -> String {
    var result = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": result += "\\\""
        case "\\": result += "\\\\"
        case "\n": result += "\\n"
        case "\r": result += "\\r"
        case "\t": result += "\\t"
        default:
            if scalar.value < 0x20 {
                let hex = String(scalar.value, radix: 16)
                result += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            } else {
                result.unicodeScalars.append(scalar)
            }
        }
    }
    return result + "\""
}
