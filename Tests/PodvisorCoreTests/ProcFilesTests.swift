import PodvisorCore
import Testing

@Suite struct ProcFilesTests {
    @Test func fieldsOfStatusMeminfoAndSmapsLines() {
        let text = "Name:\tpodvisord\nThreads:\t9\nVmRSS:\t   51200 kB\nPss_Anon:   12 kB\nPss:   300 kB\n"
        #expect(procField("Threads", in: text) == 9)
        #expect(procField("VmRSS", in: text) == 51200)
        // A key is matched whole: "Pss" is not "Pss_Anon".
        #expect(procField("Pss", in: text) == 300)
        #expect(procField("MemAvailable", in: text) == 0)
        #expect(procField("Name", in: text) == 0)
    }

    @Test func readsThisProcessStatus() {
        #expect(procField("Threads", in: readProcFile("/proc/self/status")) >= 1)
        #expect(readProcFile("/proc/no-such-file").isEmpty)
    }
}
