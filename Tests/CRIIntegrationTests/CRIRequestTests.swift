import Foundation
import GRPCCore
import PodvisorCRI
import TestSupport
import Testing

/// Requests that need no VM: versions, status, and malformed or impossible requests, each answered with
/// the gRPC status kubelet acts on and a message saying what was wrong.
extension CRITests {
    @Suite struct Requests {
        @Test func versionStatusAndRuntimeConfig() async throws {
            let d = try await CRIDaemon.shared.value
            let version = try await d.runtime.version(Runtime_V1_VersionRequest())
            #expect(version.runtimeName == "podvisor" && version.runtimeApiVersion == "v1")
            let status = try await d.runtime.status(.with { $0.verbose = true })
            let conditions = Dictionary(uniqueKeysWithValues: status.status.conditions.map { ($0.type, $0) })
            #expect(conditions["RuntimeReady"]?.status == true)
            #expect(conditions["NetworkReady"]?.status == true, "\(conditions["NetworkReady"]?.message ?? "")")
            #expect(status.info["info"]?.contains("\"hypervisor\"") == true)
            #expect(try await d.runtime.runtimeConfig(Runtime_V1_RuntimeConfigRequest()).linux.cgroupDriver == .cgroupfs)
            _ = try await d.runtime.updateRuntimeConfig(.with { $0.runtimeConfig.networkConfig.podCidr = "10.88.0.0/16" })
            #expect(try await d.runtime.status(.with { $0.verbose = true }).info["info"]?.contains("10.88.0.0/16") == true)
        }

        @Test func malformedAndImpossibleRequests() async throws {
            let d = try await CRIDaemon.shared.value
            let r = d.runtime
            await expectStatus(.invalidArgument, "sandbox without metadata") { try await r.runPodSandbox(Runtime_V1_RunPodSandboxRequest()) }
            var hostNetwork = podConfig("hostnet")
            hostNetwork.linux.securityContext.namespaceOptions.network = .node
            await expectStatus(.failedPrecondition, "host network") { try await d.run(hostNetwork) }
            var hostPID = podConfig("hostpid")
            hostPID.linux.securityContext.namespaceOptions.pid = .node
            await expectStatus(.failedPrecondition, "host PID") { try await d.run(hostPID) }
            var badHost = podConfig("badhost")
            badHost.hostname = "no_underscores"
            await expectStatus(.invalidArgument, "hostname") { try await d.run(badHost) }
            var badPort = podConfig("ports")
            badPort.portMappings = [
                .with {
                    $0.containerPort = 80; $0.hostPort = 70000
                }
            ]
            await expectStatus(.invalidArgument, "host port out of range") { try await d.run(badPort) }
            var relativeLogs = podConfig("logs")
            relativeLogs.logDirectory = "relative/dir"
            await expectStatus(.invalidArgument, "log directory") { try await d.run(relativeLogs) }
            await expectStatus(.invalidArgument, "runtime handler") {
                try await r.runPodSandbox(
                    .with {
                        $0.config = podConfig("handler"); $0.runtimeHandler = "runc"
                    })
            }
            await expectStatus(.notFound, "status of unknown sandbox") { try await r.podSandboxStatus(.with { $0.podSandboxID = "0123abcd" }) }
            await expectStatus(.invalidArgument, "empty sandbox id") { try await r.podSandboxStatus(Runtime_V1_PodSandboxStatusRequest()) }
            await expectStatus(.notFound, "container in unknown sandbox") {
                try await d.create("0123abcd", podConfig("x"), containerConfig("c", image: "busybox", ["/bin/true"]))
            }
            await expectStatus(.notFound, "unknown container") { try await r.containerStatus(.with { $0.containerID = "0123abcd" }) }
            await expectStatus(.notFound, "start unknown container") { try await r.startContainer(.with { $0.containerID = "0123abcd" }) }
            await expectStatus(.notFound, "exec in unknown container") {
                try await r.execSync(
                    .with {
                        $0.containerID = "0123abcd"; $0.cmd = ["true"]
                    })
            }
            await expectStatus(.invalidArgument, "negative stop timeout") {
                try await r.stopContainer(
                    .with {
                        $0.containerID = "0123abcd"; $0.timeout = -1
                    })
            }
            await expectStatus(.invalidArgument, "exec without a command") {
                try await r.exec(
                    .with {
                        $0.containerID = "0123abcd"; $0.stdout = true
                    })
            }
            await expectStatus(.invalidArgument, "exec without streams") {
                try await r.exec(
                    .with {
                        $0.containerID = "0123abcd"; $0.cmd = ["sh"]
                    })
            }
            await expectStatus(.invalidArgument, "exec with a terminal and stderr") {
                try await r.exec(
                    .with {
                        $0.containerID = "0123abcd"; $0.cmd = ["sh"]; $0.tty = true; $0.stdout = true; $0.stderr = true
                    })
            }
            await expectStatus(.notFound, "streaming exec in an unknown container") {
                try await r.exec(
                    .with {
                        $0.containerID = "0123abcd"; $0.cmd = ["sh"]; $0.stdout = true
                    })
            }
            await expectStatus(.notFound, "attach to an unknown container") {
                try await r.attach(
                    .with {
                        $0.containerID = "0123abcd"; $0.stdout = true
                    })
            }
            await expectStatus(.notFound, "port forwarding to an unknown sandbox") { try await r.portForward(.with { $0.podSandboxID = "0123abcd" }) }
            await expectStatus(.invalidArgument, "port forwarding to port 0") {
                try await r.portForward(
                    .with {
                        $0.podSandboxID = "0123abcd"; $0.port = [0]
                    })
            }
            await expectStatus(.invalidArgument, "pull without image") { try await d.images.pullImage(Runtime_V1_PullImageRequest()) }
            await expectStatus(.invalidArgument, "pull of a malformed reference") {
                try await d.images.pullImage(.with { $0.image.image = "UPPER/Case::bad" })
            }
            // Stop and remove of what does not exist succeed: kubelet retries them.
            _ = try await r.stopPodSandbox(.with { $0.podSandboxID = "0123abcd" })
            _ = try await r.removePodSandbox(.with { $0.podSandboxID = "0123abcd" })
            _ = try await r.stopContainer(.with { $0.containerID = "0123abcd" })
            _ = try await r.removeContainer(.with { $0.containerID = "0123abcd" })
            _ = try await d.images.removeImage(.with { $0.image.image = "127.0.0.1:1/absent:1" })
            // An absent image is an empty status, not an error.
            #expect(try await d.images.imageStatus(.with { $0.image.image = "127.0.0.1:1/absent:1" }).hasImage == false)
            // The five single requests that once crashed podvisord: answered, and it still serves.
            var memory = podConfig("huge-memory")
            memory.linux.resources.memoryLimitInBytes = .max
            await expectStatus(.invalidArgument, "memory_limit_in_bytes at Int64.max") { try await d.run(memory) }
            var overhead = podConfig("huge-overhead")
            overhead.linux.resources.memoryLimitInBytes = 64 << 20
            overhead.linux.overhead.memoryLimitInBytes = .max
            await expectStatus(.invalidArgument, "overhead at Int64.max") { try await d.run(overhead) }
            var quota = podConfig("huge-quota")
            quota.linux.resources.cpuQuota = .max
            quota.linux.resources.cpuPeriod = 100_000
            await expectStatus(.invalidArgument, "cpu_quota at Int64.max") { try await d.run(quota) }
            await expectStatus(.invalidArgument, "ExecSync timeout at Int64.max") {
                try await r.execSync(
                    .with {
                        $0.containerID = "0123abcd"; $0.cmd = ["true"]; $0.timeout = .max
                    })
            }
            await expectStatus(.invalidArgument, "StopContainer timeout at Int64.max") {
                try await r.stopContainer(
                    .with {
                        $0.containerID = "0123abcd"; $0.timeout = .max
                    })
            }
            #expect(try await r.version(Runtime_V1_VersionRequest()).runtimeName == "podvisor")
            // Nothing was booted by any of these.
            #expect(try await r.listPodSandbox(Runtime_V1_ListPodSandboxRequest()).items.isEmpty)
            // The operator sees each call and each refusal with its reason in podvisord's log.
            let log = (try? String(contentsOfFile: d.logFile, encoding: .utf8)) ?? ""
            #expect(log.contains("CRI call refused: hostname") && log.contains("method=RunPodSandbox"), "\(d.tail())")
            #expect(log.contains("method=ListPodSandbox status=OK"), "\(d.tail())")
        }

        /// Prometheus's view: the endpoint answers a real HTTP client, and a call moves its counter.
        @Test func metricsAreScrapedAndMove() async throws {
            let d = try await CRIDaemon.shared.value
            func scrape() async throws -> String { try await HostNetwork.fetch(d.metricsURL.absoluteString) }
            func versionCalls(_ text: String) -> Int {
                let line = text.split(separator: "\n").first { $0.hasPrefix(#"podvisor_cri_requests_total{method="Version",status="OK"}"#) }
                return line.flatMap { Int($0.split(separator: " ").last ?? "") } ?? 0
            }
            _ = try await d.runtime.version(Runtime_V1_VersionRequest())
            let before = try await scrape()
            _ = try await d.runtime.version(Runtime_V1_VersionRequest())
            _ = try await d.runtime.version(Runtime_V1_VersionRequest())
            let after = try await scrape()
            #expect(versionCalls(after) == versionCalls(before) + 2, "\(after)")
            #expect(after.contains("podvisor_cri_request_duration_seconds_bucket"), "\(after)")
            #expect(after.contains(#"podvisor_sandboxes{state="ready"}"#), "\(after)")
            let other = try await HostNetwork.fetch(d.metricsURL.deletingLastPathComponent().appendingPathComponent("other").absoluteString)
            #expect(other.contains("only /metrics"))
        }

        @Test func imageServiceOnTheStore() async throws {
            let d = try await CRIDaemon.shared.value
            let name = try await TestImages.busybox(d)
            let status = try await d.images.imageStatus(
                .with {
                    $0.image.image = name; $0.verbose = true
                })
            #expect(status.image.id.hasPrefix("sha256:") && status.image.repoTags.contains(name) && status.image.uid.value == 1002)
            #expect(status.info["info"]?.contains("/bin/sh") == true)
            let listed = try await d.images.listImages(.with { $0.filter.image.image = name }).images
            #expect(listed.map(\.id) == [status.image.id])
            let fs = try await d.images.imageFsInfo(Runtime_V1_ImageFsInfoRequest())
            #expect(fs.imageFilesystems.first?.usedBytes.value ?? 0 > 0)
        }
    }
}
