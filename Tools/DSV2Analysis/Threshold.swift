import Foundation
import DSV2Core

/// The metrics a comparison reports, named as in `--fail-above` and in the JSON `metrics` objects.
public enum ComparisonMetric: String, CaseIterable, Codable, Sendable {
    case maxabs, rrms, cos, kl, klmax, top1, top5, jaccard, identical
}

/// One `glob:metric<op>value` condition. It is *broken* by a tensor whose name matches the glob
/// when the condition holds for that tensor's metric, or when the metric is NaN (a NaN never passes).
public struct Threshold: Equatable, Sendable, CustomStringConvertible {
    public enum Operator: String, CaseIterable, Sendable {
        case less = "<", greater = ">", lessOrEqual = "<=", greaterOrEqual = ">="

        public func holds(_ value: Double, _ limit: Double) -> Bool {
            switch self {
            case .less: return value < limit
            case .greater: return value > limit
            case .lessOrEqual: return value <= limit
            case .greaterOrEqual: return value >= limit
            }
        }
    }

    /// Shell-style glob over tensor names (`*`, `?`, `[…]`), e.g. `hidden.*`.
    public var pattern: String
    public var metric: ComparisonMetric
    public var op: Operator
    public var value: Double
    /// The condition as written, e.g. `hidden.*:cos<0.999`.
    public var description: String { "\(pattern):\(metric.rawValue)\(op.rawValue)\(Self.format(value))" }

    public init(pattern: String, metric: ComparisonMetric, op: Operator, value: Double) {
        self.pattern = pattern
        self.metric = metric
        self.op = op
        self.value = value
    }

    public func matches(_ name: String) -> Bool { fnmatch(pattern, name, 0) == 0 }

    public func isBroken(by metricValue: Double) -> Bool { metricValue.isNaN || op.holds(metricValue, value) }

    /// Parses a comma-separated list such as `hidden.*:cos<0.999,logits:kl>0.01`. Commas inside
    /// `[…]` belong to the glob. Whitespace around items is ignored.
    public static func parseList(_ spec: String) throws -> [Threshold] {
        var items: [String] = [], current = "", depth = 0
        for ch in spec {
            switch ch {
            case "[": depth += 1; current.append(ch)
            case "]": depth = max(0, depth - 1); current.append(ch)
            case "," where depth == 0: items.append(current); current = ""
            default: current.append(ch)
            }
        }
        items.append(current)
        return try items.map { try parse($0.trimmingCharacters(in: .whitespaces)) }
    }

    /// Parses one `glob:metric<op>value`.
    public static func parse(_ item: String) throws -> Threshold {
        guard !item.isEmpty else { throw ThresholdParseError(item: item, reason: "empty condition (stray comma?)") }
        guard let colon = item.lastIndex(of: ":") else {
            throw ThresholdParseError(item: item, reason: "expected glob:metric<op>value, e.g. hidden.*:cos<0.999")
        }
        let pattern = String(item[..<colon]).trimmingCharacters(in: .whitespaces)
        let condition = String(item[item.index(after: colon)...]).replacingOccurrences(of: " ", with: "")
        guard !pattern.isEmpty else { throw ThresholdParseError(item: item, reason: "missing tensor glob before ':'") }
        guard let opStart = condition.firstIndex(where: { $0 == "<" || $0 == ">" }) else {
            throw ThresholdParseError(item: item, reason: "missing comparison operator (one of < > <= >=)")
        }
        let metricName = String(condition[..<opStart])
        guard let metric = ComparisonMetric(rawValue: metricName.lowercased()) else {
            let known = ComparisonMetric.allCases.map(\.rawValue).joined(separator: ", ")
            throw ThresholdParseError(item: item, reason: metricName.isEmpty ? "missing metric name (one of \(known))"
                                                                             : "unknown metric '\(metricName)' (known: \(known))")
        }
        var rest = condition[opStart...]
        let op: Operator
        if rest.hasPrefix("<=") { op = .lessOrEqual; rest = rest.dropFirst(2) }
        else if rest.hasPrefix(">=") { op = .greaterOrEqual; rest = rest.dropFirst(2) }
        else if rest.hasPrefix("<") { op = .less; rest = rest.dropFirst() }
        else { op = .greater; rest = rest.dropFirst() }
        guard !rest.isEmpty else { throw ThresholdParseError(item: item, reason: "missing value after '\(op.rawValue)'") }
        guard let value = Double(rest), value.isFinite else {
            throw ThresholdParseError(item: item, reason: "'\(rest)' is not a finite number")
        }
        return Threshold(pattern: pattern, metric: metric, op: op, value: value)
    }

    /// Shortest faithful rendering of a number (0.999, 1e-05, 0.01).
    static func format(_ v: Double) -> String {
        if v == v.rounded(), abs(v) < 1e15 { return String(Int64(v)) }
        return "\(v)"
    }
}

/// A `--fail-above` specification that cannot be parsed; names the offending item.
public struct ThresholdParseError: Error, CustomStringConvertible, Equatable {
    public var item: String
    public var reason: String
    public var description: String { "bad threshold '\(item)': \(reason)" }
}
