import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The temporary files every writer fills before renaming them over their destination, so a
/// failed or interrupted write never leaves a half-written output at the destination.
///
/// One naming rule, `.<name>.tmp-<pid>` in the destination's folder (the rename is atomic only
/// within one file system), and one registry of the temporaries this process has open: a signal
/// handler removes them (`removeRegistered`), and the next write into a folder removes the
/// temporaries that processes killed without a chance to clean up (SIGKILL, power loss) left
/// behind (`begin` → `removeStale`).
public enum TemporaryOutput {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var registered: [String] = []

    /// The temporary path of `destination` for this process.
    public static func path(for destination: URL) -> URL {
        destination.deletingLastPathComponent().appendingPathComponent(".\(destination.lastPathComponent).tmp-\(getpid())")
    }

    /// Starts a write of `destination`: removes stale temporaries from its folder, registers the
    /// temporary path for removal on a signal and returns it. Call `end` once it is renamed or removed.
    public static func begin(_ destination: URL) -> URL {
        removeStale(in: destination.deletingLastPathComponent())
        let temporary = path(for: destination)
        lock.lock(); registered.append(temporary.path); lock.unlock()
        return temporary
    }

    /// The write of `temporary` is over (renamed into place, or removed).
    public static func end(_ temporary: URL) {
        lock.lock(); registered.removeAll { $0 == temporary.path }; lock.unlock()
    }

    /// Removes `temporary` (a file or a folder) and ends its registration: the failure path.
    public static func discard(_ temporary: URL) {
        try? FileManager.default.removeItem(at: temporary)
        end(temporary)
    }

    /// Removes every registered temporary (files and folders); returns the paths removed. For the
    /// signal watcher of the command line (not async-signal-safe: call it from a normal thread).
    @discardableResult
    public static func removeRegistered() -> [String] {
        lock.lock(); let paths = registered; registered.removeAll(); lock.unlock()
        return paths.filter { (try? FileManager.default.removeItem(atPath: $0)) != nil }
    }

    /// Removes `.<name>.tmp-<pid>` entries of `folder` whose process no longer exists (never
    /// those of a live process, which may still be writing). Returns the names removed.
    @discardableResult
    public static func removeStale(in folder: URL) -> [String] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder.path) else { return [] }
        var removed: [String] = []
        for name in names {
            guard let pid = stalePID(name), pid != getpid(), kill(pid, 0) != 0, errno == ESRCH else { continue }
            if (try? FileManager.default.removeItem(at: folder.appendingPathComponent(name))) != nil { removed.append(name) }
        }
        return removed
    }

    /// The pid of a name of the form `.<name>.tmp-<pid>`, else nil.
    static func stalePID(_ name: String) -> pid_t? {
        guard name.hasPrefix("."), let range = name.range(of: ".tmp-", options: .backwards),
              range.lowerBound > name.index(after: name.startIndex) else { return nil }
        let digits = name[range.upperBound...]
        guard !digits.isEmpty, digits.allSatisfy(\.isASCII), digits.allSatisfy(\.isNumber),
              let pid = pid_t(digits), pid > 0 else { return nil }
        return pid
    }
}

/// What a path is, from `stat` (which never blocks, unlike opening a FIFO that has no writer).
public enum FileKind: Equatable, Sendable {
    case regularFile
    case directory
    /// Anything else: a FIFO, a device, a socket; `description` says which.
    case other(String)

    public init(path: String) throws {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw FileKindError(path: path, reason: "cannot be examined: \(String(cString: strerror(errno)))", missing: errno == ENOENT || errno == ENOTDIR)
        }
        switch info.st_mode & S_IFMT {
        case S_IFREG: self = .regularFile
        case S_IFDIR: self = .directory
        case S_IFIFO: self = .other("a FIFO")
        case S_IFCHR, S_IFBLK: self = .other("a device")
        case S_IFSOCK: self = .other("a socket")
        default: self = .other("not a regular file")
        }
    }

    /// `path` must be a regular file (an input read whole or mapped): anything else is refused
    /// before it is opened, so a FIFO or device never blocks the program.
    public static func requireRegularFile(_ path: String) throws {
        switch try FileKind(path: path) {
        case .regularFile: return
        case .directory: throw FileKindError(path: path, reason: "is a folder, not a file", missing: false)
        case let .other(kind): throw FileKindError(path: path, reason: "is \(kind), not a regular file", missing: false)
        }
    }
}

/// A path that does not exist or is not the kind of file wanted.
public struct FileKindError: Error, CustomStringConvertible, Equatable {
    public var path: String
    public var reason: String
    /// True when nothing exists at `path`.
    public var missing: Bool

    public var description: String { missing ? "\(path): no such file or folder" : "\(path) \(reason)" }
}
