import DSV2Core
import DSV2Formats
import Foundation

/// The load-time check of a raw container's tensors (XXH64 and finiteness, as
/// `ContainerReader.tensor` does it), run beside the engine's set-up and first forward instead of
/// before them. `Model` starts it and gives the engine `source` (the container with its raw
/// tensors handed out unchecked); the engine calls `wait()` before it returns any result, so no
/// output ever comes from weights that fail, and a failure names the container and the tensor
/// as before.
///
/// One thread checks the tensors in file order from the start: it fills the cores' idle time
/// during the set-up and the forward, and reads a cold file ahead of the forward. `wait()` puts
/// `threads` more on what is left and blocks until all is checked: once the caller has nothing
/// else to do, every core hashes. The first failure stops the work and is thrown by every
/// `wait()`.
public final class BackgroundTensorCheck: @unchecked Sendable {
    public let reader: ContainerReader
    /// The raw tensors, in file order.
    private let entries: [ContainerTensorEntry]
    private let next = AtomicCounter()
    /// Guards the three below; waiters are woken whenever a tensor is done.
    private let lock = NSCondition()
    private var checked = 0
    private var failure: Error?
    private var cancelled = false

    /// Starts checking every raw tensor of `reader` on one background thread.
    public init(reader: ContainerReader) {
        self.reader = reader
        entries = reader.metadata.tensors.filter { $0.compression == .none }.sorted { $0.offset < $1.offset }
        Thread.detachNewThread { [self] in work() }
    }

    /// The container as a `WeightSource` whose raw tensors this check covers (compressed ones
    /// are still checked as they are decoded).
    public var source: WeightSource { UncheckedRawSource(reader: reader) }

    /// Blocks until every raw tensor is checked, checking on `threads` more threads meanwhile;
    /// throws the first failure (a `ContainerError` naming the tensor).
    public func wait(threads: Int = ProcessInfo.processInfo.activeProcessorCount) throws {
        if !isFinished { DispatchQueue.concurrentPerform(iterations: max(1, threads)) { _ in work() } }
        lock.lock()
        while checked < entries.count, failure == nil, !cancelled { lock.wait() }
        let error = failure
        lock.unlock()
        if let error { throw error }
    }

    /// Stops the work (the engine was not built); `wait()` then returns at once.
    public func cancel() {
        lock.lock(); cancelled = true; lock.broadcast(); lock.unlock()
    }

    private var isFinished: Bool {
        lock.lock(); defer { lock.unlock() }
        return checked == entries.count || failure != nil || cancelled
    }

    /// Takes the next unchecked tensor and checks it, until none is left or one failed.
    private func work() {
        while !isFinished {
            let index = next.increment()
            if index >= entries.count { return }
            let entry = entries[index]
            var error: Error?
            do { try reader.checkRawTensor(entry, try reader.tensor(entry.name, threads: 1, checkRaw: false)) } catch let e { error = e }
            lock.lock()
            checked += 1
            if failure == nil, let error { failure = error }
            lock.broadcast()
            lock.unlock()
        }
    }
}

/// A container's tensors with raw ones handed out unchecked (a `BackgroundTensorCheck` covers
/// them); everything else as the reader does it.
final class UncheckedRawSource: WeightSource, @unchecked Sendable {
    let reader: ContainerReader
    init(reader: ContainerReader) { self.reader = reader }
    var configJSON: Data { reader.configJSON }
    var tokenizerFiles: [String: Data] { reader.tokenizerFiles }
    var tensorNames: [String] { reader.tensorNames }
    var location: String { reader.location }
    func tensorInfo(_ name: String) -> (type: WeightType, shape: [Int])? { reader.tensorInfo(name) }
    func tensor(_ name: String) throws -> StoredTensor { try reader.tensor(name, threads: 1, checkRaw: false) }
}
