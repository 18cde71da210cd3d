import Foundation
import DSV2Core

extension ComparisonReport {
    /// The report as an aligned plain-text table for a terminal, followed by the one-sided tensors,
    /// unused thresholds and the verdict (`FIRST FAILURE: …` or `PASS`/`no thresholds`).
    public func renderTable() -> String {
        let header = ["", "tensor", "shape", "max abs", "rel rms", "cosine", "details"]
        var rows: [[String]] = []
        for e in tensors {
            let mark: String
            if e.mismatch != nil || !e.broken.isEmpty {
                mark = e.name == firstFailure?.tensor ? ">>" : "!!"
            } else {
                mark = e.checked > 0 ? "ok" : ""
            }
            let shape = e.shape.map(String.init).joined(separator: "x")
            if let mismatch = e.mismatch {
                rows.append([mark, e.name, shape, "-", "-", "-", mismatch])
                continue
            }
            func cell(_ m: ComparisonMetric, _ f: (Double) -> String) -> String { e.metric(m).map(f) ?? "-" }
            var details: [String] = []
            switch e.kind {
            case .logits:
                details.append("kl \(cell(.kl, Self.sci)) (max \(cell(.klmax, Self.sci)))")
                details.append("top1 \(cell(.top1, Self.percent))")
                details.append("top5 \(cell(.top5, Self.percent))")
            case .router:
                details.append("jaccard \(cell(.jaccard, { String(format: "%.4f", $0) }))")
                details.append("identical \(cell(.identical, Self.percent))")
                if e.metric(.maxabs) != nil { details.append("(weights)") }
            case .tensor:
                break
            }
            if !e.broken.isEmpty { details.append("breaks " + e.broken.joined(separator: ", ")) }
            rows.append([mark, e.name, shape, cell(.maxabs, Self.sci), cell(.rrms, Self.sci),
                         cell(.cos, Self.cosine), details.joined(separator: "  ")])
        }
        var widths = header.map(\.count)
        for row in rows { for (i, c) in row.enumerated() where i < row.count - 1 { widths[i] = max(widths[i], c.count) } }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, c in
                i == cells.count - 1 ? c : (i >= 3 && i <= 5 ? String(repeating: " ", count: widths[i] - c.count) + c
                                                             : c + String(repeating: " ", count: widths[i] - c.count))
            }.joined(separator: "  ").replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression)
        }
        var out = "baseline:  \(baseline)\ncandidate: \(candidate)\n\n"
        out += line(header) + "\n"
        out += line(header.enumerated().map { i, h in String(repeating: "-", count: i == header.count - 1 ? 7 : widths[i]) }) + "\n"
        for row in rows { out += line(row) + "\n" }
        if tensors.isEmpty { out += "(no tensor is present in both)\n" }
        if !onlyInBaseline.isEmpty { out += "\nonly in baseline:  " + onlyInBaseline.joined(separator: ", ") + "\n" }
        if !onlyInCandidate.isEmpty { out += "\nonly in candidate: " + onlyInCandidate.joined(separator: ", ") + "\n" }
        if !unusedThresholds.isEmpty {
            out += "\nwarning: threshold(s) matched no tensor with that metric: " + unusedThresholds.joined(separator: ", ") + "\n"
        }
        out += "\n"
        if let first = firstFailure {
            out += "FIRST FAILURE: \(first.message)\n"
            if failures.count > 1 { out += "(\(failures.count) failures in all; marked !! above)\n" }
        } else if thresholds.isEmpty {
            out += "no thresholds given (use --fail-above to make this a check)\n"
        } else {
            out += "PASS: \(thresholds.count) threshold(s) hold over \(tensors.count) tensor(s)\n"
        }
        return out
    }

    static func sci(_ v: Double) -> String {
        if v == 0 { return "0" }
        if !v.isFinite { return format(v) }
        return String(format: "%.3e", v)
    }

    static func cosine(_ v: Double) -> String {
        if v == 1 { return "1" }
        if !v.isFinite { return format(v) }
        // Near 1 a fixed number of decimals hides the difference; show how far below 1 it is.
        if v > 0.9999999 { return String(format: "1-%.1e", 1 - v) }
        return String(format: "%.7f", v)
    }

    static func percent(_ v: Double) -> String {
        if !v.isFinite { return format(v) }
        return String(format: "%.1f%%", v * 100)
    }
}
