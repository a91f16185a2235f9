import Foundation
import PodvisorCore
import Testing

@testable import PodvisorNetwork

@Suite struct CNIResultTests {
    /// What the bridge plugin 1.1.1 prints for spec 1.0.0.
    static let bridge10 = """
        {
          "cniVersion": "1.0.0",
          "interfaces": [
            {"name": "cni0", "mac": "a2:3c:1e:00:00:01"},
            {"name": "veth1234", "mac": "a2:3c:1e:00:00:02"},
            {"name": "eth0", "mac": "a2:3c:1e:00:00:03", "sandbox": "/run/netns/pod1", "mtu": 1400}
          ],
          "ips": [{"address": "10.213.0.5/24", "gateway": "10.213.0.1", "interface": 2}],
          "routes": [{"dst": "0.0.0.0/0"}, {"dst": "10.96.0.0/12", "gw": "10.213.0.1"}],
          "dns": {"nameservers": ["10.96.0.10"], "search": ["svc.cluster.local"]},
          "x-vendor": {"kept": [1, 2.5, null]}
        }
        """

    /// Spec 0.4.0 / 0.3.x: the same shape with `ips[].version`.
    static let ptp04 = """
        {"cniVersion": "0.4.0",
         "interfaces": [{"name": "veth9", "mac": "aa:bb:cc:dd:ee:01"}, {"name": "eth0", "mac": "aa:bb:cc:dd:ee:02", "sandbox": "/proc/42/ns/net"}],
         "ips": [{"version": "4", "address": "10.1.2.3/32", "gateway": "10.1.2.1", "interface": 1},
                 {"version": "6", "address": "fd00::3/64", "interface": 0}],
         "dns": {}}
        """

    @Test func parsesA10Result() throws {
        let result = try CNIResult.parse(Data(Self.bridge10.utf8), plugin: "bridge")
        #expect(result.cniVersion == "1.0.0")
        #expect(result.interfaces.count == 3)
        #expect(result.sandboxInterface(named: "eth0")?.mac == "a2:3c:1e:00:00:03")
        #expect(result.sandboxInterface(named: "eth0")?.mtu == 1400)
        #expect(result.sandboxInterface(named: "cni0") == nil)
        #expect(result.ips == [.init(address: "10.213.0.5/24", gateway: "10.213.0.1", interface: 2)])
        #expect(result.routes == [.init(dst: "0.0.0.0/0", gw: nil), .init(dst: "10.96.0.0/12", gw: "10.213.0.1")])
        #expect(result.dns?.nameservers == ["10.96.0.10"])
        #expect(result.podIPs == ["10.213.0.5"])
    }

    @Test(arguments: ["0.4.0", "0.3.1", "0.3.0"])
    func parsesOlderResults(version: String) throws {
        let text = Self.ptp04.replacingOccurrences(of: "0.4.0", with: version)
        let result = try CNIResult.parse(Data(text.utf8), plugin: "ptp")
        #expect(result.cniVersion == version)
        // The v6 address sits on the host-side veth: not the pod's.
        #expect(result.podIPs == ["10.1.2.3"])
        #expect(result.routes.isEmpty)
    }

    @Test func encodesAsTheJSONThePluginWrote() throws {
        let result = try CNIResult.parse(Data(Self.bridge10.utf8), plugin: "bridge")
        let raw = try JSONValue.parse(Data(Self.bridge10.utf8), what: "fixture")
        #expect(result.raw == raw)
        #expect(result.raw["x-vendor"] == .object(["kept": .array([.int(1), .double(2.5), .null])]))
        let decoded = try JSONDecoder().decode(CNIResult.self, from: JSONEncoder().encode(result))
        #expect(decoded == result)
    }

    @Test func refusesResultsItCannotRead() {
        let legacy = #"{"cniVersion": "0.2.0", "ip4": {"ip": "10.1.2.3/24"}}"#
        #expect(throws: PodvisorError.self) { try CNIResult.parse(Data(legacy.utf8), plugin: "old") }
        let garbage = "Error: something"
        #expect {
            try CNIResult.parse(Data(garbage.utf8), plugin: "bridge")
        } throws: { error in
            (error as? PodvisorError)?.message.hasPrefix("result of CNI plugin \"bridge\": not valid JSON") == true
        }
    }
}
