import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing
import TestSupport

/// `podvisor` end to end, standalone (the runtime inside each command): 7 VM boots.
@Suite(.serialized) struct CLITests {
    @Test func exitCodesLogsPsInspectAndRemove() async throws {
        let ok = try await CLI.podvisor(["run", "--rm", "demo", "--", "sh", "-c", "echo out; echo warn >&2"])
        #expect(ok.status == 0 && ok.stdout == "out\n" && ok.stderr.contains("warn"), "\(ok)")

        let failing = try await CLI.podvisor([
            "run", "--name", "failing", "-e", "GREETING=hi there", "demo", "--", "sh", "-c", "echo $GREETING; exit 3",
        ])
        #expect(failing.status == 3 && failing.stdout == "hi there\n", "\(failing)")
        let listed = try await CLI.podvisor(["ps", "-a", "--output", "json"])
        let containers = CLI.json(listed.stdout) as? [[String: Any]]
        #expect(containers?.count == 1 && (containers?.first?["metadata"] as? [String: Any])?["name"] as? String == "failing", "\(listed)")
        #expect(containers?.first?["state"] as? String == "CONTAINER_EXITED")
        let logs = try await CLI.podvisor(["logs", "failing"])
        #expect(logs.status == 0 && logs.stdout == "hi there\n", "\(logs)")
        let inspect = try await CLI.podvisor(["inspect", "failing"])
        let status = ((CLI.json(inspect.stdout) as? [[String: Any]])?.first?["status"]) as? [String: Any]
        #expect(status?["exitCode"] as? Int == 3 && status?["reason"] as? String == "Error", "\(inspect)")
        let pods = try await CLI.podvisor(["pods"])
        #expect(pods.stdout.contains("failing") && pods.stdout.contains("notready"), "\(pods)")

        #expect(try await CLI.podvisor(["rm", "failing"]).status == 0)
        let empty = try await CLI.podvisor(["ps", "-a", "--output", "json"])
        #expect((CLI.json(empty.stdout) as? [Any])?.isEmpty == true, "\(empty)")
        CLI.expectNothingRunning()
    }

    /// `docker run -p` and the pod's address: a detached web server published on a host port, the address
    /// in `pods`, a job reaching a server on the node's own address (the way out of the node).
    /// `podvisor vm boot` boots one VM, asks its agent, powers it off, and names the root the guest mounted:
    /// `make image`'s, mapped from the NVDIMM.
    @Test func vmBootNamesTheMappedRoot() async throws {
        let booted = try await CLI.podvisor(["vm", "boot"])
        #expect(booted.status == 0, "\(booted)")
        #expect(booted.stdout.contains(", root /dev/root erofs ro,") && booted.stdout.contains(",dax=always\n"), "\(booted)")
        #expect(booted.stdout.contains("powered off and cleaned up in"), "\(booted)")
        CLI.expectNothingRunning()
    }

    @Test func publishedPortsAndThePodNetwork() async throws {
        let port = try TestRegistry.freePort()
        let started = try await CLI.podvisor([
            "run", "-d", "--name", "published", "-p", "\(port):8080", "demo", "--", "sh", "-c", "exec httpd -f -p 8080 -h /etc",
        ])
        #expect(started.status == 0, "\(started)")
        let pods = try await CLI.podvisor(["pods"])
        let network = try #require(CLI.network)
        #expect(pods.stdout.contains("published") && pods.stdout.contains("10.214.\(network.subnet)."), "\(pods)")
        #expect(try await HostNetwork.fetch("http://127.0.0.1:\(port)/hostname") == "published\n")
        #expect(try await CLI.podvisor(["rm", "-f", "published"]).status == 0)
        #expect(try await CLI.podvisor(["run", "-p", "99999:80", "demo"]).status == 64, "a bad -p is a usage error")

        // Out through the gateway to the node's own address, as a CI job fetches its dependencies.
        let node = try #require(try await HostNetwork.nodeAddress())
        let served = try await HostNetwork.serveOnce(host: node, answer: "dependency") { serverPort in
            try await CLI.podvisor(["run", "--rm", "demo", "--", "sh", "-c", "wget -qO- http://\(node):\(serverPort)/"]).stdout
        }
        #expect(served == "dependency")
        #expect(network.leases().isEmpty, "leases left: \(network.leases())")
        CLI.expectNothingRunning()
    }

    @Test func podFileWithTwoContainersSharingAVolume() async throws {
        let file = "/tmp/pvcli-test-pod.yaml"
        try """
        apiVersion: v1
        kind: Pod
        metadata:
          name: duo
        spec:
          containers:
          - name: writer
            image: demo
            command: ["sh", "-c", "echo shared > /data/new && mv /data/new /data/msg; echo wrote"]
            volumeMounts: [{name: data, mountPath: /data}]
            resources: {limits: {memory: 64Mi, cpu: 500m}}
          - name: reader
            image: demo
            command: ["sh", "-c", "while [ ! -e /data/msg ]; do sleep 0.2; done; cat /data/msg; echo $ROLE"]
            env: [{name: ROLE, value: reader}]
            volumeMounts: [{name: data, mountPath: /data, readOnly: true}]
            resources: {limits: {memory: 64Mi}}
          volumes:
          - name: data
            emptyDir: {}
        """.write(toFile: file, atomically: true, encoding: .utf8)
        let result = try await CLI.podvisor(["run", "--rm", "-f", file])
        #expect(result.status == 0 && result.stderr.isEmpty, "\(result)")
        let lines = Set(result.stdout.split(separator: "\n").map(String.init))
        #expect(lines == ["writer | wrote", "reader | shared", "reader | reader"], "\(result)")
        #expect(try await CLI.podvisor(["pods", "--output", "json"]).stdout.contains("duo") == false)
        CLI.expectNothingRunning()
    }

    @Test func detachedContainerExecLogsStop() async throws {
        let started = try await CLI.podvisor(["run", "-d", "--name", "svc", "demo", "--", "sh", "-c", "echo started; while true; do sleep 1; done"])
        #expect(started.status == 0 && started.stdout.count == 65, "\(started)")  // the container id and a newline
        let exec = try await CLI.podvisor(["exec", "svc", "--", "sh", "-c", "echo inside; exit 4"])
        #expect(exec.status == 4 && exec.stdout == "inside\n", "\(exec)")
        // Streaming exec: stdin in, both streams out, a terminal, a timeout that kills the command.
        let interactive = try await CLI.podvisor(
            ["exec", "-i", "svc", "--", "sh", "-c", "read x; echo got:$x; echo err >&2; exit 2"], stdin: "hello\n")
        #expect(interactive.status == 2 && interactive.stdout == "got:hello\n" && interactive.stderr == "err\n", "\(interactive)")
        let terminal = try await CLI.podvisor(["exec", "-t", "svc", "--", "sh", "-c", "test -t 0 && test -t 1 && tty"])
        #expect(terminal.status == 0 && terminal.stdout == "/dev/pts/0\r\n", "\(terminal)")
        let slow = try await CLI.podvisor(["exec", "--timeout", "1", "svc", "--", "sh", "-c", "sleep 30"])
        #expect(slow.status == 124 && slow.stderr.contains("--timeout"), "\(slow)")
        let left = try await CLI.podvisor(["exec", "svc", "--", "sh", "-c", "ps | grep '[s]leep 30' || echo none"])
        #expect(left.stdout == "none\n", "the timed-out command was killed: \(left)")
        let logs = try await CLI.podvisor(["logs", "svc"])
        #expect(logs.stdout.hasPrefix("started\n"), "\(logs)")
        let running = try await CLI.podvisor(["rm", "svc"])
        #expect(running.status == 125 && running.stderr.contains("running"), "\(running)")
        #expect(try await CLI.podvisor(["stop", "--time", "2", "svc"]).status == 0)
        let ps = try await CLI.podvisor(["ps", "-a"])
        #expect(ps.stdout.contains("exited"), "\(ps)")
        #expect(try await CLI.podvisor(["rm", "svc"]).status == 0)
        CLI.expectNothingRunning()
    }

    /// `run -i`: attached before the start, stdin passed through and closed at its end (stdin_once).
    @Test func interactiveRunReadsStdin() async throws {
        let run = try await CLI.podvisor(
            ["run", "-i", "--rm", "demo", "--", "sh", "-c", "echo first; while read l; do echo \"<$l>\"; done; echo end; exit 6"],
            stdin: "a\nb\n")
        #expect(run.status == 6 && run.stdout == "first\n<a>\n<b>\nend\n", "\(run)")
        CLI.expectNothingRunning()
    }

    /// On a terminal, `run` pulls a missing image with progress bars (standalone: through the runtime in
    /// the process); script(1) gives it the terminal. An image store of its own: no blob is there yet.
    @Test func runPullsWithProgressOnATerminal() async throws {
        let registry = try TestRegistry(storage: try await FixtureImages.shared.storageDirectory())
        let image = "\(registry.address)/busybox:latest"
        let images = "/tmp/pvcli-test-progress-images"
        let config = "/tmp/pvcli-test-progress.toml"
        defer {
            try? FileManager.default.removeItem(atPath: images)
            try? FileManager.default.removeItem(atPath: config)
        }
        try (try String(contentsOfFile: try await CLI.prepared.value, encoding: .utf8) + "[images]\nroot = \"\(images)\"\n")
            .write(toFile: config, atomically: true, encoding: .utf8)
        let command = [CLI.binary, "run", "--rm", "--config", config, "--log-root", CLI.logs, image, "--", "sh", "-c", "echo pulled"]
            .map { "'\($0)'" }.joined(separator: " ")
        let result = try await CLI.run(["-qec", command, "/dev/null"], executable: "/usr/bin/script")
        #expect(result.status == 0 && result.stdout.contains("Pulling \(image)"), "\(result)")
        #expect(result.stdout.contains("] ") && (result.stdout.contains(" MiB /") || result.stdout.contains(" KiB /")), "a progress bar: \(result)")
        #expect(result.stdout.contains("pulled"), "\(result)")
        CLI.expectNothingRunning()
    }

    /// `port-forward`: a local port reaches a server inside the pod VM until SIGINT.
    @Test func portForwardReachesAServerInThePod() async throws {
        let started = try await CLI.podvisor([
            "run", "-d", "--name", "pf", "demo", "--", "sh", "-c",
            "exec httpd -f -p 8080 -h /etc",
        ])
        #expect(started.status == 0, "\(started)")
        let local = try TestRegistry.freePort()
        let config = try await CLI.prepared.value
        let forwarder = Process()
        forwarder.executableURL = URL(fileURLWithPath: CLI.binary)
        forwarder.arguments = ["port-forward", "--config", config, "pf", "\(local):8080"]
        let out = Pipe()
        forwarder.standardOutput = out
        forwarder.standardError = FileHandle.nullDevice
        try forwarder.run()
        let announced = try await CLI.offThread { () -> String in
            String(decoding: out.fileHandleForReading.availableData, as: UTF8.self)
        }
        #expect(announced.contains("Forwarding from 127.0.0.1:\(local) -> 8080"), "\(announced)")
        var page = CLI.Result(status: -1, stdout: "", stderr: "")
        for _ in 0..<50 where page.stdout != "kept\n" {
            page = try await CLI.run(["-s", "http://127.0.0.1:\(local)/kept"], executable: "/usr/bin/curl")
            if page.stdout != "kept\n" { try await Task.sleep(for: .milliseconds(200)) }
        }
        #expect(page.stdout == "kept\n", "\(page)")
        kill(forwarder.processIdentifier, SIGINT)
        let status = try await CLI.offThread { () -> Int32 in
            forwarder.waitUntilExit()
            return forwarder.terminationStatus
        }
        #expect(status == 0)
        #expect(try await CLI.podvisor(["rm", "-f", "pf"]).status == 0)
        CLI.expectNothingRunning()
    }

    @Test func sigintTearsThePodDown() async throws {
        let config = try await CLI.prepared.value
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CLI.binary)
        process.arguments = [
            "run", "--rm", "--config", config, "--log-root", CLI.logs, "--name", "interrupted", "demo", "--",
            "sh", "-c", "echo ready; sleep 1000",
        ]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        let ready = try await CLI.offThread { () -> Bool in
            var seen = Data()
            while !String(decoding: seen, as: UTF8.self).contains("ready") {
                let chunk = out.fileHandleForReading.availableData
                if chunk.isEmpty { return false }
                seen += chunk
            }
            return true
        }
        #expect(ready)
        kill(process.processIdentifier, SIGINT)
        let status = try await CLI.offThread { () -> Int32 in
            process.waitUntilExit()
            return process.terminationStatus
        }
        #expect(status == 130)
        #expect(try await CLI.podvisor(["pods"]).stdout.contains("interrupted") == false)
        CLI.expectNothingRunning()
    }

    @Test func timeoutTearsThePodDown() async throws {
        let result = try await CLI.podvisor(["run", "--rm", "--timeout", "2", "demo", "--", "sh", "-c", "sleep 1000"])
        #expect(result.status == 124 && result.stderr.contains("--timeout"), "\(result)")
        CLI.expectNothingRunning()
    }

    @Test func badInputIsAClearRuntimeFailure() async throws {
        let image = try await CLI.podvisor(["run", "--rm", "UPPER/case::bad", "--", "true"])
        #expect(image.status == 125 && image.stderr.contains("UPPER/case::bad"), "\(image)")
        let yaml = "/tmp/pvcli-test-bad.yaml"
        try "kind: Pod\nmetadata: {name: x}\nspec: {containers: [{name: a}]}\n".write(toFile: yaml, atomically: true, encoding: .utf8)
        let bad = try await CLI.podvisor(["run", "-f", yaml])
        #expect(bad.status == 125 && bad.stderr.contains("missing spec.containers[0].image"), "\(bad)")
        let notYAML = try await CLI.podvisor(["run", "-f", "/nonexistent.yaml"])
        #expect(notYAML.status == 125 && notYAML.stderr.contains("/nonexistent.yaml"), "\(notYAML)")
        let unknown = try await CLI.podvisor(["logs", "nosuchcontainer"])
        #expect(unknown.status == 125 && unknown.stderr.contains("nosuchcontainer"), "\(unknown)")
        let interactive = try await CLI.podvisor(["run", "-i", "-d", "demo"])
        #expect(interactive.status == 64 && interactive.stderr.contains("-i attaches to one container"), "\(interactive)")
        CLI.expectNothingRunning()
    }
}

/// The same CLI as a client of podvisord (`--endpoint`): 1 VM boot.
@Suite(.serialized) struct CLIEndpointTests {
    @Test func runThroughPodvisord() async throws {
        let config = try await CLI.prepared.value
        let state = "/tmp/pvcli-daemon"
        for pid in HostState.processes(matching: state) { kill(pid, SIGKILL) }
        HostState.detachMounts(under: state)
        try? FileManager.default.removeItem(atPath: state)
        let socket = "\(state)/cri.sock"
        // The daemon's own store gets the image before it starts (it then holds the state directory).
        let layout = try await TestSupport.FixtureImages.shared.layoutDirectory()
        let imported = try await CLI.run(["image", "import", "--config", config, "--state-dir", state, "\(layout):busybox", "demo"])
        #expect(imported.status == 0, "\(imported)")
        let daemon = Process()
        // Beside the CLI's binary, whatever the clone's folder is called (also "podvisor").
        daemon.executableURL = URL(fileURLWithPath: CLI.binary).deletingLastPathComponent().appendingPathComponent("podvisord")
        daemon.arguments = ["--config", config, "--state-dir", state, "--socket", socket]
        daemon.standardError = FileHandle.nullDevice
        try daemon.run()
        defer { kill(daemon.processIdentifier, SIGKILL) }
        for _ in 0..<600 where access(socket, F_OK) != 0 { try await Task.sleep(for: .milliseconds(100)) }

        let endpoint = ["--endpoint", "unix://\(socket)"]
        let result = try await CLI.run(
            ["run", "--rm", "--log-root", CLI.logs] + endpoint + ["demo", "--", "sh", "-c", "echo via podvisord; exit 5"])
        #expect(result.status == 5 && result.stdout == "via podvisord\n", "\(result)")
        let pods = try await CLI.run(["pods", "--output", "json"] + endpoint)
        #expect(pods.status == 0 && (CLI.json(pods.stdout) as? [Any])?.isEmpty == true, "\(pods)")
        // Images through the daemon's ImageService: it knows which are in use.
        let listed = try await CLI.run(["image", "ls"] + endpoint)
        #expect(listed.status == 0 && listed.stdout.contains("docker.io/library/demo:latest"), "\(listed)")
        let inspected = try await CLI.run(["image", "inspect", "demo"] + endpoint)
        #expect(inspected.status == 0 && inspected.stdout.contains("\"uid\""), "\(inspected)")
        let locked = try await CLI.run(["image", "import", "--config", config, "--state-dir", state, "\(layout):busybox", "other"])
        #expect(locked.status == 125 && locked.stderr.contains("in use by another podvisor process"), "\(locked)")
        let detached = try await CLI.run(
            ["run", "-d", "--name", "user", "--log-root", CLI.logs] + endpoint + ["demo", "--", "sh", "-c", "sleep 600"])
        #expect(detached.status == 0, "\(detached)")
        let inUse = try await CLI.run(["image", "rm", "demo"] + endpoint)
        #expect(inUse.status == 125 && inUse.stderr.contains("in use"), "\(inUse)")
        #expect(try await CLI.run(["rm", "-f", "user"] + endpoint).status == 0)
        #expect(try await CLI.run(["image", "rm", "demo"] + endpoint).status == 0)
        #expect(try await CLI.run(["image", "ls", "--output", "json"] + endpoint).stdout.contains("demo") == false)
        let missing = try await CLI.run(["ps", "--endpoint", "unix:///nonexistent.sock"])
        #expect(missing.status == 125 && missing.stderr.contains("podvisord"), "\(missing)")
    }
}
