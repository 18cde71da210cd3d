import DSV2
@testable import DSV2Server
import Foundation
import Hummingbird
import HummingbirdTesting
import TestSupport
import XCTest

/// Servers over tiny-dsv2 (q8, one thread) for the endpoint tests, and readers of their answers.
enum ServerTestSupport {
    static let model: Model = try! Model.open(Fixtures.url("tiny-dsv2"))
    static let choice = EngineChoice.quantized(preset: "q8", threads: 1)

    /// A server with the model loaded (or not, `load: false`); `startScheduler: false` leaves
    /// admitted requests queued.
    static func server(_ configure: (inout ServerOptions) -> Void = { _ in }, load: Bool = true,
                       startScheduler: Bool = true) throws -> OpenAIServer {
        var options = ServerOptions()
        options.port = 0
        options.parallel = 4
        configure(&options)
        let server = OpenAIServer(options: options)
        if load {
            let engine = try model.makeQuantizedEngine(preset: "q8", threads: 1)
            server.attach(try ServerBackend(engine: engine, tokenizer: try model.tokenizer(), defaults: try model.generationDefaults(),
                                            modelName: "tiny-dsv2", fingerprint: "fp_test", options: options,
                                            metrics: server.metrics, startScheduler: startScheduler))
        }
        return server
    }

    static func post(_ client: some TestClientProtocol, _ uri: String, _ body: String,
                     headers: HTTPFields = [.contentType: "application/json"]) async throws -> TestResponse {
        try await client.execute(uri: uri, method: .post, headers: headers, body: ByteBuffer(string: body))
    }

    static func json(_ response: TestResponse, file: StaticString = #filePath, line: UInt = #line) throws -> JSONValue {
        XCTAssertEqual(response.headers[.contentType], "application/json", file: file, line: line)
        return try JSONValue.parse(Data(String(buffer: response.body).utf8))
    }

    /// The `data:` payloads of a server-sent-event body, checking the framing: every event is
    /// exactly `data: <payload>\n\n`, the last one `[DONE]`.
    static func events(_ response: TestResponse, file: StaticString = #filePath, line: UInt = #line) throws -> [JSONValue] {
        XCTAssertEqual(response.status, .ok, file: file, line: line)
        XCTAssertEqual(response.headers[.contentType], "text/event-stream", file: file, line: line)
        let body = String(buffer: response.body)
        XCTAssertTrue(body.hasSuffix("\n\n"), "the stream ends with a blank line", file: file, line: line)
        var blocks = body.components(separatedBy: "\n\n")
        XCTAssertEqual(blocks.removeLast(), "", file: file, line: line)
        XCTAssertEqual(blocks.last, "data: [DONE]", "the stream ends with data: [DONE]", file: file, line: line)
        var values: [JSONValue] = []
        for block in blocks.dropLast() {
            XCTAssertTrue(block.hasPrefix("data: ") && !block.contains("\n"), "event \(block.debugDescription)", file: file, line: line)
            values.append(try JSONValue.parse(String(block.dropFirst(6))))
        }
        return values
    }

    /// The error object of an OpenAI error response, checking its shape and status.
    @discardableResult
    static func error(_ response: TestResponse, status: HTTPResponse.Status, param: String? = nil,
                      file: StaticString = #filePath, line: UInt = #line) throws -> JSONValue {
        XCTAssertEqual(response.status, status, String(buffer: response.body), file: file, line: line)
        let root = try json(response, file: file, line: line)
        let error = try XCTUnwrap(root["error"], file: file, line: line)
        XCTAssertNotNil(error["message"]?.stringValue, file: file, line: line)
        XCTAssertNotNil(error["type"]?.stringValue, file: file, line: line)
        XCTAssertNotNil(error["param"], file: file, line: line)
        XCTAssertNotNil(error["code"], file: file, line: line)
        if let param { XCTAssertEqual(error["param"]?.stringValue, param, file: file, line: line) }
        return error
    }

    /// A JSON string literal.
    static func quoted(_ s: String) -> String { JSONValue.string(s).serialized }
}

extension JSONValue {
    /// Element `index` of an array (nil otherwise), for reading responses in tests.
    subscript(index: Int) -> JSONValue? {
        guard let items = arrayValue, items.indices.contains(index) else { return nil }
        return items[index]
    }
}
