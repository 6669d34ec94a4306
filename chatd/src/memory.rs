//! The daemon's use of the C allocator: glibc's malloc keeps memory the daemon has freed, so
//! after a burst (100,000 messages) chatd stayed at 47-83 MiB with about 45 MB in use
//! (chatd/BENCHMARKS.md, "Memory"). Two calls fix most of that: one malloc arena (each
//! thread that allocates can otherwise take one of its own and keep its peak), and
//! `malloc_trim` once the daemon goes quiet after writing. Elsewhere than Linux with glibc
//! both are no-ops.

/// How many malloc arenas glibc may create: one, the main heap, which every thread shares.
/// Each further arena kept its own peak after a burst: with two, chatd held 29-37 MiB after
/// storing 100,000 messages (peaks of 40-58 MiB), with one 28-29 MiB (peaks of 37-38 MiB),
/// at no cost in throughput that the benchmark could see (chatd/BENCHMARKS.md).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MAX_ARENAS: libc::c_int = 1;

/// Caps glibc's malloc arenas. Call it first thing in `main`, before any thread starts.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt(3) takes two integers and has no memory-safety preconditions: an
    // unknown option or value makes it return 0 (ignored here, the default stays). It is
    // thread-safe in glibc, and changing M_ARENA_MAX affects only where later allocations
    // come from, never memory already handed out.
    #[allow(unsafe_code)]
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, MAX_ARENAS);
    }
}

/// Returns the free memory malloc holds to the kernel (the top of every heap and the free
/// pages inside them). It walks every arena, so it is for quiet moments, on a blocking thread.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim(3) takes an integer (the padding to keep) and has no preconditions;
    // glibc takes each arena's lock while it trims, so other threads may allocate and free
    // meanwhile. Memory in use is never released.
    #[allow(unsafe_code)]
    unsafe {
        libc::malloc_trim(0);
    }
}
