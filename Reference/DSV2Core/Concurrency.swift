import Synchronization

/// A counter that hands out indices to worker threads (each `add` returns the value before).
public final class AtomicCounter: Sendable {
    private let value = Atomic<Int>(0)
    public init() {}
    /// Returns the value before incrementing.
    public func increment() -> Int { add(1) }
    /// Adds `amount`; returns the value before.
    public func add(_ amount: Int) -> Int { value.wrappingAdd(amount, ordering: .relaxed).oldValue }
}

/// Collects the first error thrown by concurrent work.
public final class FirstError: Sendable {
    private let stored = Mutex<Error?>(nil)
    public init() {}
    public func record(_ error: Error) {
        stored.withLock { if $0 == nil { $0 = error } }
    }
    public var error: Error? { stored.withLock { $0 } }
}

/// Passes a value known to be used safely (disjoint slots) into concurrent closures.
public struct UnsafeSendable<T>: @unchecked Sendable {
    public let value: T
    public init(_ value: T) { self.value = value }
}
