import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// On SIGINT / SIGTERM during a long write, removes the temporary output file before exiting,
/// so an interrupted `convert` or `unpack` leaves nothing behind (SIGKILL cannot be caught: the
/// hidden temporary file may then remain, but never anything at the target path).
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
