/// Runs two operations at once, where neither needs the other's result, and waits for both. The first
/// failure in argument order is thrown, after both have ended: nothing is left running behind an error.
public func concurrently<A: Sendable, B: Sendable>(
    _ first: @Sendable () async throws(PodvisorError) -> A, _ second: @Sendable () async throws(PodvisorError) -> B
) async throws(PodvisorError) -> (A, B) {
    async let a: Result<A, PodvisorError> = {
        do throws(PodvisorError) { return .success(try await first()) } catch { return .failure(error) }
    }()
    let b: Result<B, PodvisorError>
    do throws(PodvisorError) { b = .success(try await second()) } catch { b = .failure(error) }
    return (try await a.get(), try b.get())
}
