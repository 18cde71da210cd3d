import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A minimal blocking HTTP/1.1 client for this machine's own server (benchmarks and tests): it
/// connects to a loopback address only, sends a request with `Connection: close`, and reads the
/// response (chunked or not) as it arrives, so a caller can time each server-sent event or drop
/// the connection halfway.
public final class LoopbackClient {
    public enum ClientError: Error, CustomStringConvertible {
        case notLoopback(String)
        case connect(String)
        case io(String)
        case malformed(String)

        public var description: String {
            switch self {
            case let .notLoopback(host): return "\(host) is not a loopback address (127.0.0.0/8 or ::1)"
            case let .connect(reason): return "cannot connect: \(reason)"
            case let .io(reason): return "connection error: \(reason)"
            case let .malformed(reason): return "malformed response: \(reason)"
            }
        }
    }

    private let fd: Int32
    private let timeoutSeconds: Int
    private var buffer: [UInt8] = []
    private var open = true

    /// Connects to `host:port`; `host` must be a loopback address.
    public init(port: Int, host: String = "127.0.0.1", timeoutSeconds: Int = 60) throws {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(truncatingIfNeeded: port).bigEndian)
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1,
              UInt32(bigEndian: address.sin_addr.s_addr) >> 24 == 127 else { throw ClientError.notLoopback(host) }
        #if canImport(Glibc)
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let socket = Darwin.socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard socket >= 0 else { throw ClientError.connect(String(cString: strerror(errno))) }
        self.timeoutSeconds = timeoutSeconds
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            let reason = String(cString: strerror(errno))
            #if canImport(Glibc)
            Glibc.close(socket)
            #else
            Darwin.close(socket)
            #endif
            throw ClientError.connect(reason)
        }
        fd = socket
    }

    deinit { close() }

    /// Closes the connection (the server sees the client go away).
    public func close() {
        guard open else { return }
        open = false
        #if canImport(Glibc)
        Glibc.close(fd)
        #else
        Darwin.close(fd)
        #endif
    }

    /// The text of a request with `Connection: close` and, with a body, its length.
    public static func request(_ method: String, _ path: String, body: String? = nil,
                               headers: [String: String] = ["Content-Type": "application/json"]) -> String {
        var text = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        for (name, value) in headers.sorted(by: { $0.key < $1.key }) { text += "\(name): \(value)\r\n" }
        if let body { text += "Content-Length: \(body.utf8.count)\r\n\r\n" + body } else { text += "\r\n" }
        return text
    }

    public func send(_ text: String) throws {
        let bytes = Array(text.utf8)
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { raw -> Int in
                #if canImport(Glibc)
                return Glibc.send(fd, raw.baseAddress, raw.count, Int32(MSG_NOSIGNAL))
                #else
                return Darwin.send(fd, raw.baseAddress, raw.count, 0)
                #endif
            }
            guard n > 0 else { throw ClientError.io("send: \(String(cString: strerror(errno)))") }
            sent += n
        }
    }

    /// Reads more bytes into the buffer; false at the end of the stream.
    private func fill() throws -> Bool {
        var chunk = [UInt8](repeating: 0, count: 16384)
        let n = recv(fd, &chunk, chunk.count, 0)
        if n < 0 {
            if errno == EAGAIN || errno == EWOULDBLOCK { throw ClientError.io("no answer from the server within \(timeoutSeconds) s") }
            throw ClientError.io("recv: \(String(cString: strerror(errno)))")
        }
        if n == 0 { return false }
        buffer += chunk[..<n]
        return true
    }

    private func line() throws -> String {
        while true {
            if let end = buffer.firstIndex(of: 0x0A) {
                var line = Array(buffer[..<end])
                buffer.removeFirst(end + 1)
                if line.last == 0x0D { line.removeLast() }
                return String(decoding: line, as: UTF8.self)
            }
            guard try fill() else { throw ClientError.malformed("the connection ended inside a line") }
        }
    }

    /// Reads the status line and headers (names lowercased).
    public func readHead() throws -> (status: Int, headers: [String: String]) {
        let statusLine = try line()
        let parts = statusLine.split(separator: " ")
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]) else {
            throw ClientError.malformed("status line \(statusLine.debugDescription)")
        }
        var headers: [String: String] = [:]
        while true {
            let header = try line()
            if header.isEmpty { break }
            guard let colon = header.firstIndex(of: ":") else { throw ClientError.malformed("header \(header.debugDescription)") }
            headers[header[..<colon].lowercased()] = header[header.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return (status, headers)
    }

    /// Reads the body after `readHead`, handing each piece to `onData` as it arrives (false
    /// stops reading).
    public func readBody(headers: [String: String], _ onData: ([UInt8]) -> Bool) throws {
        if headers["transfer-encoding"]?.lowercased() == "chunked" {
            while true {
                let sizeLine = try line()
                guard let size = Int(sizeLine.split(separator: ";").first.map(String.init) ?? "", radix: 16) else {
                    throw ClientError.malformed("chunk size \(sizeLine.debugDescription)")
                }
                if size == 0 { _ = try? line(); return }
                while buffer.count < size + 2 { guard try fill() else { throw ClientError.malformed("the connection ended inside a chunk") } }
                let data = Array(buffer[..<size])
                buffer.removeFirst(size + 2)
                if !onData(data) { return }
            }
        }
        var remaining = headers["content-length"].flatMap(Int.init) ?? Int.max
        while remaining > 0 {
            if buffer.isEmpty { guard try fill() else { return } }
            let data = Array(buffer.prefix(remaining))
            buffer.removeFirst(data.count)
            remaining -= data.count
            if !onData(data) { return }
        }
    }

    /// Sends a request and reads the whole response.
    public static func exchange(port: Int, _ request: String) throws -> (status: Int, headers: [String: String], body: String) {
        let client = try LoopbackClient(port: port)
        defer { client.close() }
        try client.send(request)
        let head = try client.readHead()
        var body: [UInt8] = []
        try client.readBody(headers: head.headers) { body += $0; return true }
        return (head.status, head.headers, String(decoding: body, as: UTF8.self))
    }
}
