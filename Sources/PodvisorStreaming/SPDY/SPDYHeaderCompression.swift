import CZlib

/// SPDY/3 compresses every header block of a connection with one zlib stream per direction, primed with a
/// dictionary the protocol fixes (SPDY/3 §2.6.10.1): header names and common values, so the first block of
/// a connection compresses too. Each block ends with a sync flush, so the peer can decode it at once.
enum SPDYHeaderDictionary {
    /// The dictionary's first part: words, each with a 32-bit big-endian length before it.
    private static let words = [
        "options", "head", "post", "put", "delete", "trace", "accept", "accept-charset", "accept-encoding", "accept-language",
        "accept-ranges", "age", "allow", "authorization", "cache-control", "connection", "content-base", "content-encoding",
        "content-language", "content-length", "content-location", "content-md5", "content-range", "content-type", "date",
        "etag", "expect", "expires", "from", "host", "if-match", "if-modified-since", "if-none-match", "if-range",
        "if-unmodified-since", "last-modified", "location", "max-forwards", "pragma", "proxy-authenticate",
        "proxy-authorization", "range", "referer", "retry-after", "server", "te", "trailer", "transfer-encoding", "upgrade",
        "user-agent", "vary", "via", "warning", "www-authenticate", "method", "get", "status", "200 OK", "version",
        "HTTP/1.1", "url", "public", "set-cookie", "keep-alive", "origin",
    ]
    /// Its second part: status codes, reason phrases, dates and media types, run together.
    private static let tail =
        "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
        + "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized"
        + "403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable"
        + "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT"
        + "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
        + "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."

    static let bytes: [UInt8] = {
        var out: [UInt8] = []
        for word in words {
            out.appendBigEndian(UInt32(word.utf8.count))
            out += word.utf8
        }
        return out + tail.utf8
    }()
}

enum SPDYCompressionError: Error, CustomStringConvertible {
    case zlib(String, Int32)

    var description: String {
        switch self {
        case .zlib(let what, let code): "SPDY header block: zlib \(what) failed (\(code))"
        }
    }
}

/// One direction's compressor. Not thread-safe: a connection's writer owns it.
final class SPDYHeaderCompressor {
    // zlib keeps a pointer back to its z_stream: it must not move, so it lives on the heap.
    private let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)

    init() {
        stream.initialize(to: z_stream())
        precondition(podvisor_deflate_init(stream, Z_BEST_COMPRESSION) == Z_OK, "zlib deflateInit failed")
        let rc = SPDYHeaderDictionary.bytes.withUnsafeBufferPointer {
            deflateSetDictionary(stream, $0.baseAddress, UInt32($0.count))
        }
        precondition(rc == Z_OK, "zlib deflateSetDictionary failed")
    }

    deinit {
        deflateEnd(stream)
        stream.deallocate()
    }

    func compress(_ input: [UInt8]) -> [UInt8] {
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        var input = input
        input.withUnsafeMutableBufferPointer { inBuffer in
            stream.pointee.next_in = inBuffer.baseAddress
            stream.pointee.avail_in = UInt32(inBuffer.count)
            repeat {
                chunk.withUnsafeMutableBufferPointer { out in
                    stream.pointee.next_out = out.baseAddress
                    stream.pointee.avail_out = UInt32(out.count)
                    // Z_SYNC_FLUSH cannot fail on a valid stream with room to write.
                    _ = deflate(stream, Z_SYNC_FLUSH)
                }
                output += chunk[0..<(chunk.count - Int(stream.pointee.avail_out))]
            } while stream.pointee.avail_out == 0
        }
        return output
    }
}

/// The other direction's decompressor.
final class SPDYHeaderDecompressor {
    private let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)

    init() {
        stream.initialize(to: z_stream())
        precondition(podvisor_inflate_init(stream) == Z_OK, "zlib inflateInit failed")
    }

    deinit {
        inflateEnd(stream)
        stream.deallocate()
    }

    func decompress(_ input: [UInt8]) throws(SPDYCompressionError) -> [UInt8] {
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        var input = input
        var failure: SPDYCompressionError?
        input.withUnsafeMutableBufferPointer { inBuffer in
            stream.pointee.next_in = inBuffer.baseAddress
            stream.pointee.avail_in = UInt32(inBuffer.count)
            while failure == nil {
                var rc: Int32 = Z_OK
                chunk.withUnsafeMutableBufferPointer { out in
                    stream.pointee.next_out = out.baseAddress
                    stream.pointee.avail_out = UInt32(out.count)
                    rc = inflate(stream, Z_SYNC_FLUSH)
                }
                if rc == Z_NEED_DICT {
                    rc = SPDYHeaderDictionary.bytes.withUnsafeBufferPointer {
                        inflateSetDictionary(stream, $0.baseAddress, UInt32($0.count))
                    }
                    if rc != Z_OK { failure = .zlib("inflateSetDictionary", rc) }
                    continue
                }
                output += chunk[0..<(chunk.count - Int(stream.pointee.avail_out))]
                // Z_BUF_ERROR: no progress possible, i.e. all input consumed and flushed.
                if rc == Z_BUF_ERROR || (rc == Z_OK && stream.pointee.avail_in == 0 && stream.pointee.avail_out > 0) { break }
                if rc != Z_OK { failure = .zlib("inflate", rc) }
            }
        }
        if let failure { throw failure }
        return output
    }
}

extension Array where Element == UInt8 {
    mutating func appendBigEndian(_ value: UInt32) {
        append(contentsOf: [UInt8(value >> 24), UInt8((value >> 16) & 0xff), UInt8((value >> 8) & 0xff), UInt8(value & 0xff)])
    }
}
