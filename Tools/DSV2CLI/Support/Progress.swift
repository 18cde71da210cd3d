import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Progress on stderr: a redrawn bar on a terminal, plain periodic lines otherwise (logs, CI),
/// nothing when quiet. Thread-safe.
final class ProgressReporter: @unchecked Sendable {
    enum Mode { case bar, lines, quiet }
    let mode: Mode
    private let lock = NSLock()
    private var lastDraw = Date()
    private let lineInterval: TimeInterval
    private var drewBar = false

    init(quiet: Bool, lineInterval: TimeInterval = 5) {
        mode = quiet ? .quiet : (isatty(STDERR_FILENO) != 0 ? .bar : .lines)
        self.lineInterval = lineInterval
    }

    /// `done`/`total` in bytes; `label` says what is being worked on.
    func update(done: Int, total: Int, items: Int, itemCount: Int, label: String, elapsed: Double, force: Bool = false) {
        guard mode != .quiet else { return }
        lock.lock(); defer { lock.unlock() }
        let now = Date()
        let interval = mode == .bar ? 0.1 : lineInterval
        guard force || now.timeIntervalSince(lastDraw) >= interval else { return }
        lastDraw = now
        let fraction = total > 0 ? Double(done) / Double(total) : 1
        let rate = elapsed > 0 ? Double(done) / elapsed / 1e6 : 0
        let eta = rate > 0 ? Double(total - done) / 1e6 / rate : 0
        let figures = String(format: "%3.0f%%  %d/%d tensors  %@ / %@  %.0f MB/s  ETA %@",
                             fraction * 100, items, itemCount, Self.bytes(done), Self.bytes(total), rate, Self.duration(eta))
        switch mode {
        case .bar:
            let width = 24
            let filled = min(width, Int(fraction * Double(width)))
            let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
            var name = label
            if name.count > 40 { name = "…" + name.suffix(39) }
            FileHandle.standardError.write(Data("\r\u{1B}[K[\(bar)] \(figures)  \(name)".utf8))
            drewBar = true
        case .lines:
            FileHandle.standardError.write(Data("\(figures)  \(label)\n".utf8))
        case .quiet:
            break
        }
    }

    /// Ends the bar's line.
    func finish() {
        lock.lock(); defer { lock.unlock() }
        if drewBar { FileHandle.standardError.write(Data("\n".utf8)); drewBar = false }
    }

    /// A one-off message (not in quiet mode).
    func note(_ message: String) {
        guard mode != .quiet else { return }
        FileHandle.standardError.write(Data((message + "\n").utf8))
    }

    static func bytes(_ count: Int) -> String {
        let value = Double(count)
        if value >= 1e9 { return String(format: "%.2f GB", value / 1e9) }
        if value >= 1e6 { return String(format: "%.1f MB", value / 1e6) }
        if value >= 1e3 { return String(format: "%.1f kB", value / 1e3) }
        return "\(count) B"
    }

    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite else { return "?" }
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }
}
