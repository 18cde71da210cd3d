import DSV2
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Progress on stderr: one line redrawn in place, cut to the terminal's width (read again after
/// every resize), at most 10 times a second. Nothing when stderr is not a terminal (logs, CI,
/// pipes) or when quiet: only the final summary lines (`note`) are written then. Thread-safe.
final class ProgressReporter: @unchecked Sendable {
    let shows: Bool
    let quiet: Bool
    private let lock = NSLock()
    private var lastDraw = Date.distantPast
    private var drew = false
    private var columns: Int

    init(quiet: Bool) {
        self.quiet = quiet
        shows = !quiet && Terminal.stderrIsTTY
        columns = Terminal.columns() ?? 80
    }

    /// Redraws the line: a bar for `fraction`, then the `fields` that fit, most important first.
    func update(fraction: Double, fields: [String], force: Bool = false) {
        guard shows else { return }
        lock.lock(); defer { lock.unlock() }
        let resized = Signals.takeResized()
        if resized { columns = Terminal.columns() ?? columns }
        let now = Date()
        guard force || resized || now.timeIntervalSince(lastDraw) >= 0.1 else { return }
        lastDraw = now
        Terminal.writeError("\r\u{1B}[2K" + Self.line(fraction: fraction, fields: fields, columns: columns))
        drew = true
    }

    /// Byte progress of a conversion or a check: bytes, items, rate, time left and a label.
    func update(done: Int, total: Int, items: Int, itemCount: Int, label: String, elapsed: Double, force: Bool = false) {
        guard shows else { return }
        let fraction = total > 0 ? Double(done) / Double(total) : 1
        let rate = elapsed > 0 ? Double(done) / elapsed : 0
        let eta = rate > 0 ? Double(total - done) / rate : 0
        update(fraction: fraction, fields: ["\(Self.bytes(done)) / \(Self.bytes(total))", "\(items)/\(itemCount)",
                                            "\(Self.bytes(Int(rate)))/s", "ETA \(Self.duration(eta))", label],
               force: force)
    }

    /// Ends the bar's line (the next output starts on a clean line).
    func finish() {
        lock.lock(); defer { lock.unlock() }
        if drew { Terminal.writeError("\r\u{1B}[2K"); drew = false }
    }

    /// A one-off message (not in quiet mode).
    func note(_ message: String) {
        guard !quiet else { return }
        finish()
        Terminal.writeError(message + "\n")
    }

    /// `[#####-----] 42%  field  field…`, never wider than `columns - 1` (writing the last
    /// column makes some terminals wrap). Fields that do not fit are dropped from the end; a
    /// field is cut at its start (`…suffix`) only when it is the first one that does not fit
    /// and enough room is left to make it useful.
    static func line(fraction: Double, fields: [String], columns: Int) -> String {
        let width = max(10, columns - 1)
        let percent = String(format: "%3.0f%%", min(1, max(0, fraction)) * 100)
        let barWidth = max(5, min(30, width / 4))
        let filled = min(barWidth, Int(min(1, max(0, fraction)) * Double(barWidth)))
        var line = "[" + String(repeating: "#", count: filled) + String(repeating: "-", count: barWidth - filled) + "] " + percent
        if line.count > width { return String(percent.suffix(width)) }
        for field in fields where !field.isEmpty {
            let room = width - line.count - 2
            if field.count <= room {
                line += "  " + field
            } else {
                if room >= 12 { line += "  …" + field.suffix(room - 1) }
                break
            }
        }
        return line
    }

    static func bytes(_ count: Int) -> String { MemoryFigures.bytes(count) }

    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite else { return "?" }
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }
}
