import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL
import PodvisorCore

/// Credentials for one registry, as CRI's `AuthConfig` carries them.
public enum RegistryCredentials: Sendable, Equatable {
    case basic(username: String, password: String)
    /// A registry token used as the bearer token as is (`AuthConfig.registry_token`).
    case registryToken(String)

    /// From CRI's fields: a `registry_token`, else `username`/`password`, else `auth` (base64 `user:password`).
    public init?(username: String, password: String, auth: String, registryToken: String) {
        if !registryToken.isEmpty {
            self = .registryToken(registryToken)
        } else if !username.isEmpty {
            self = .basic(username: username, password: password)
        } else if let data = Data(base64Encoded: auth), let text = String(data: data, encoding: .utf8),
            let colon = text.firstIndex(of: ":")
        {
            self = .basic(username: String(text[..<colon]), password: String(text[text.index(after: colon)...]))
        } else {
            return nil
        }
    }
}

/// A client of the OCI distribution API (GET only): manifests by tag or digest, blobs by digest, through the
/// endpoints `RegistryHosts` lists (mirrors first), with bearer-token and basic auth, timeouts and bounded retries.
public final class RegistryClient: Sendable {
    public struct Options: Sendable {
        public var hosts = RegistryHosts()
        /// Attempts per endpoint for a request that failed on the network or with 429/5xx.
        public var attempts = 3
        /// Wait before the second attempt; doubled for each further one.
        public var retryDelay: Duration = .milliseconds(200)
        /// Whole-request limit for manifests and tokens; blobs are limited by `readTimeout` between bytes only.
        public var requestTimeout: Duration = .seconds(60)

        public init() {}
    }

    /// One process-wide HTTP client: NIO's client must be shut down before it is released, a static never is.
    /// Its own retrying of failed connections is off: it would retry a refused connection until the connect
    /// timeout, on every attempt, and a dead mirror must fail fast so the next endpoint is tried.
    private static let http: HTTPClient = {
        var configuration = HTTPClient.Configuration(timeout: .init(connect: .seconds(10), read: .seconds(30)))
        configuration.connectionPool.retryConnectionEstablishment = false
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }()
    static let maximumManifestSize = 4 << 20
    static let manifestAccept = [MediaType.ociIndex, MediaType.dockerManifestList, MediaType.ociManifest, MediaType.dockerManifest]
        .joined(separator: ", ")

    public let options: Options
    private let tokens = TokenCache()

    public init(options: Options = Options()) {
        self.options = options
    }

    public struct Manifest: Sendable {
        public var data: Data
        public var digest: Digest
        public var mediaType: String
    }

    /// The manifest or index that `reference` (a tag or a digest string) names in `image`'s repository, verified
    /// against the digest when one was asked for.
    public func manifest(
        _ image: ImageReference, reference: String, credentials: RegistryCredentials?
    ) async throws -> Manifest {
        let capability: RegistryEndpoint.Capability = reference.hasPrefix("sha256:") ? .pull : .resolve
        return try await request(
            image, path: "manifests/\(reference)", accept: Self.manifestAccept,
            capability: capability, credentials: credentials, timeout: options.requestTimeout
        ) { response in
            let body: ByteBuffer
            do { body = try await response.body.collect(upTo: Self.maximumManifestSize) } catch let error as NIOTooManyBytesError {
                throw PodvisorError(.invalidArgument, "manifest of \(image) is larger than \(Self.maximumManifestSize) bytes", cause: error)
            }
            let data = Data(body.readableBytesView)
            let digest = Digest.sha256(of: data)
            if reference.hasPrefix("sha256:"), digest.description != reference {
                throw PodvisorError(.dataLoss, "manifest \(reference) of \(image.name) does not match its digest (got \(digest))")
            }
            if let header = response.headers.first(name: "Docker-Content-Digest"), header.hasPrefix("sha256:"),
                header != digest.description
            {
                throw PodvisorError(.dataLoss, "manifest of \(image) does not match the registry's digest \(header)")
            }
            var mediaType = response.headers.first(name: "Content-Type") ?? ""
            if let semicolon = mediaType.firstIndex(of: ";") { mediaType = String(mediaType[..<semicolon]) }
            // Registries serving OCI documents sometimes label them application/json; the body says what it is.
            if !MediaType.indexes.contains(mediaType) && !MediaType.manifests.contains(mediaType),
                let declared = (try? JSONDecoder().decode(ManifestDocument.self, from: data))?.mediaType
            {
                mediaType = declared
            }
            return Manifest(data: data, digest: digest, mediaType: mediaType)
        }
    }

    /// Streams blob `descriptor` of `image` into `writer` (which verifies it on commit). A retried request starts
    /// the blob over. `progress` sees the bytes written so far.
    public func blob(
        _ image: ImageReference, _ descriptor: Descriptor, credentials: RegistryCredentials?, into writer: BlobWriter,
        progress: (@Sendable (Int64) -> Void)? = nil
    ) async throws {
        try await request(
            image, path: "blobs/\(descriptor.digest)", accept: "*/*", capability: .pull,
            credentials: credentials, timeout: nil
        ) { response in
            try writer.restart()
            for try await chunk in response.body {
                try chunk.withUnsafeReadableBytes { try writer.write($0) }
                progress?(writer.written)
            }
        }
    }

    // MARK: requests

    /// Sends GET `<endpoint>/<repository>/<path>` to each endpoint with `capability` in turn until one answers
    /// 2xx, and hands the response to `consume`. Auth challenges are answered once per endpoint; network errors
    /// and 429/5xx are retried; the error of the last endpoint tried is the one reported.
    private func request<T>(
        _ image: ImageReference, path: String, accept: String, capability: RegistryEndpoint.Capability,
        credentials: RegistryCredentials?, timeout: Duration?,
        consume: (HTTPClientResponse) async throws -> T
    ) async throws -> T {
        let endpoints = try options.hosts.endpoints(for: image).filter { $0.capabilities.contains(capability) }
        var lastError = PodvisorError(.notFound, "no registry endpoint of \(image.registry) can \(capability.rawValue)")
        for endpoint in endpoints {
            let url = "\(endpoint.baseURL)/\(image.repository)/\(path)"
            var attempt = 0
            var answeredChallenge = false
            while true {
                attempt += 1
                do {
                    var request = HTTPClientRequest(url: url)
                    for (name, values) in endpoint.headers {
                        for value in values { request.headers.add(name: name, value: value) }
                    }
                    request.headers.add(name: "Accept", value: accept)
                    let authorization = await tokens.authorization(endpoint: endpoint.baseURL, repository: image.repository)
                    if let authorization { request.headers.add(name: "Authorization", value: authorization) }
                    request.tlsConfiguration = try Self.tls(for: endpoint)
                    let deadline = timeout.map { NIODeadline.now() + TimeAmount($0) } ?? .distantFuture
                    let response = try await Self.http.execute(request, deadline: deadline)
                    switch response.status.code {
                    case 200..<300:
                        return try await consume(response)
                    case 401 where !answeredChallenge:
                        let header = response.headers.first(name: "WWW-Authenticate") ?? ""
                        // Answered only once it worked: a token service that failed for a moment is asked
                        // again on the retry, instead of the retry's 401 passing for a refusal.
                        try await authenticate(endpoint, image, challenge: header, credentials: credentials)
                        answeredChallenge = true
                        attempt = 0
                        continue
                    default:
                        let body = try? await response.body.collect(upTo: 64 << 10)
                        throw Self.error(
                            for: response.status, body: body, url: url, image: image,
                            authenticated: authorization != nil)
                    }
                } catch is CancellationError {
                    throw CancellationError()
                } catch {
                    lastError =
                        error as? PodvisorError
                        ?? PodvisorError(.unavailable, "registry \(endpoint.baseURL) is unreachable", cause: error)
                    // Only the network and an overloaded registry are worth asking again.
                    guard lastError.code == .unavailable, attempt < options.attempts else { break }
                }
                try await Task.sleep(for: options.retryDelay * (1 << (attempt - 1)))
            }
        }
        throw lastError
    }

    private static func error(
        for status: HTTPResponseStatus, body: ByteBuffer?, url: String, image: ImageReference, authenticated: Bool
    ) -> PodvisorError {
        // The distribution spec's error body: {"errors":[{"code":"MANIFEST_UNKNOWN","message":"…"}]}.
        struct Errors: Decodable { struct Entry: Decodable { var code: String?; var message: String? }; var errors: [Entry]? }
        let detail = body.flatMap { try? JSONDecoder().decode(Errors.self, from: Data($0.readableBytesView)) }?
            .errors?.first.map { [$0.code, $0.message].compactMap { $0 }.joined(separator: ": ") }
        let suffix = detail.map { " (\($0))" } ?? ""
        switch status.code {
        case 404:
            let what = url.contains("/manifests/") ? "image \(image)" : "content \(url)"
            return PodvisorError(.notFound, "\(what) not found\(suffix)")
        case 401, 403:
            let why = authenticated ? "refused the credentials" : "requires authentication"
            return PodvisorError(.permissionDenied, "registry \(image.registry) \(why) for \(image.repository)\(suffix)")
        case 429, 500..<600:
            return PodvisorError(.unavailable, "\(url) answered \(status.code)\(suffix)")
        default:
            return PodvisorError(.invalidArgument, "\(url) answered \(status.code)\(suffix)")
        }
    }

    /// nil: the client's default (the system's trust roots, no client certificate).
    static func tls(for endpoint: RegistryEndpoint) throws(PodvisorError) -> TLSConfiguration? {
        guard endpoint.skipVerify || !endpoint.caFiles.isEmpty || endpoint.clientCertificate != nil else { return nil }
        var configuration = TLSConfiguration.makeClientConfiguration()
        if endpoint.skipVerify { configuration.certificateVerification = .none }
        do {
            if !endpoint.caFiles.isEmpty {
                let certificates = try endpoint.caFiles.flatMap { try NIOSSLCertificate.fromPEMFile($0) }
                configuration.additionalTrustRoots = [.certificates(certificates)]
            }
            if let client = endpoint.clientCertificate {
                configuration.certificateChain = try NIOSSLCertificate.fromPEMFile(client.certificateFile).map { .certificate($0) }
                configuration.privateKey = .privateKey(try NIOSSLPrivateKey(file: client.keyFile, format: .pem))
            }
        } catch {
            // A file the administrator named is wrong: not worth retrying, unlike the network.
            throw PodvisorError(.invalidArgument, "the ca or client files of \(endpoint.baseURL) cannot be loaded", cause: error)
        }
        return configuration
    }

    // MARK: auth

    /// Answers a 401's challenge: Basic sends the credentials, Bearer exchanges them (or nothing, for anonymous
    /// pulls) at the realm for a token scoped to pulling this repository.
    private func authenticate(
        _ endpoint: RegistryEndpoint, _ image: ImageReference, challenge: String, credentials: RegistryCredentials?
    ) async throws {
        let (scheme, parameters) = Self.parseChallenge(challenge)
        let authorization: String
        switch (scheme, credentials) {
        case (_, .registryToken(let token)):
            authorization = "Bearer \(token)"
        case ("basic", .basic(let username, let password)):
            authorization = "Basic \(Data("\(username):\(password)".utf8).base64EncodedString())"
        case ("basic", nil):
            throw PodvisorError(.permissionDenied, "registry \(image.registry) requires authentication for \(image.repository)")
        case ("bearer", _):
            guard let realm = parameters["realm"], var components = URLComponents(string: realm),
                components.scheme == "https" || (components.scheme == "http" && endpoint.isPlainHTTP)
            else { throw PodvisorError(.invalidArgument, "registry \(image.registry) sent an unusable challenge: \(challenge)") }
            var query = components.queryItems ?? []
            if let service = parameters["service"] { query.append(URLQueryItem(name: "service", value: service)) }
            query.append(URLQueryItem(name: "scope", value: parameters["scope"] ?? "repository:\(image.repository):pull"))
            components.queryItems = query
            authorization = "Bearer \(try await fetchToken(components.string ?? realm, image: image, credentials: credentials))"
        default:
            throw PodvisorError(.permissionDenied, "registry \(image.registry) asks for unsupported authentication: \(challenge)")
        }
        await tokens.set(authorization, endpoint: endpoint.baseURL, repository: image.repository)
    }

    private func fetchToken(_ url: String, image: ImageReference, credentials: RegistryCredentials?) async throws -> String {
        var request = HTTPClientRequest(url: url)
        if case .basic(let username, let password) = credentials {
            request.headers.add(name: "Authorization", value: "Basic \(Data("\(username):\(password)".utf8).base64EncodedString())")
        }
        let response: HTTPClientResponse
        do {
            response = try await Self.http.execute(request, timeout: TimeAmount(options.requestTimeout))
        } catch {
            throw PodvisorError(.unavailable, "token service of \(image.registry) is unreachable", cause: error)
        }
        let body = try await response.body.collect(upTo: 1 << 20)
        guard response.status.code == 200 else {
            // Overloaded or failing: worth asking again, as the registry itself.
            if response.status.code == 429 || response.status.code >= 500 {
                throw PodvisorError(.unavailable, "token service of \(image.registry) answered \(response.status.code)")
            }
            let why = credentials == nil ? "requires authentication" : "refused the credentials"
            throw PodvisorError(
                .permissionDenied, "registry \(image.registry) \(why) for \(image.repository) (token service answered \(response.status.code))")
        }
        struct TokenResponse: Decodable { var token: String?; var access_token: String? }
        guard let token = try? JSONDecoder().decode(TokenResponse.self, from: Data(body.readableBytesView)),
            let value = token.token ?? token.access_token, !value.isEmpty
        else { throw PodvisorError(.invalidArgument, "token service of \(image.registry) answered without a token") }
        return value
    }

    /// `Bearer realm="…",service="…",scope="repository:a:pull,push"` → ("bearer", parameters).
    static func parseChallenge(_ header: String) -> (scheme: String, parameters: [String: String]) {
        var rest = Substring(header).drop { $0 == " " }
        let scheme = rest.prefix { $0 != " " }.lowercased()
        rest = rest.dropFirst(scheme.count)
        var parameters: [String: String] = [:]
        while true {
            rest = rest.drop { $0 == " " || $0 == "," }
            guard let equals = rest.firstIndex(of: "=") else { break }
            let key = rest[..<equals].trimmingCharacters(in: .whitespaces).lowercased()
            rest = rest[rest.index(after: equals)...].drop { $0 == " " }
            var value = ""
            if rest.first == "\"" {
                rest = rest.dropFirst()
                while let c = rest.first, c != "\"" {
                    rest = rest.dropFirst()
                    if c == "\\", let escaped = rest.first {
                        value.append(escaped)
                        rest = rest.dropFirst()
                    } else {
                        value.append(c)
                    }
                }
                rest = rest.dropFirst()
            } else {
                let token = rest.prefix { $0 != "," }
                rest = rest.dropFirst(token.count)
                value = token.trimmingCharacters(in: .whitespaces)
            }
            parameters[key] = value
        }
        return (scheme, parameters)
    }
}

/// Authorization header values that worked, per endpoint and repository, so later requests skip the challenge.
private actor TokenCache {
    private var values: [String: String] = [:]

    func authorization(endpoint: String, repository: String) -> String? { values["\(endpoint) \(repository)"] }

    func set(_ value: String, endpoint: String, repository: String) { values["\(endpoint) \(repository)"] = value }
}
