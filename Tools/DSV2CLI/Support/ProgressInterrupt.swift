import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// On SIGINT / SIGTERM during a long write, removes the temporary output file before exiting,
/// so an interrupted `convert` or `unpack` leaves nothing behind (SIGKILL cannot be caught: the
/// hidden temporary file may then remain, but never anything at the target path).
///
/// Dispatch signal sources see the signal whichever thread receives it, also on Linux: there
/// libdispatch installs its own handler for the signal (replacing `SIG_IGN`) and passes it on to
/// the source, so threads that do not block the signal (BLAS, the worker pool) do not matter
/// (tested: SIGINT/SIGTERM with three unblocked threads, busy or asleep: 75 of 75 delivered).
/// `SIG_IGN` first keeps the default action (exit) away until the source is registered, and on
/// Darwin, where a source does not replace it.
enum InterruptCleanup {
    nonisolated(unsafe) private static var sources: [DispatchSourceSignal] = []

    static func install(removing path: String) {
        for number in [SIGINT, SIGTERM] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                unlink(path)
                FileHandle.standardError.write(Data("\ninterrupted; removed \(path)\n".utf8))
                _exit(128 + number)
            }
            source.resume()
            sources.append(source)
        }
    }
}
