//! What the allocator says about the heap, to tell live memory from memory the allocator keeps
//! after it was freed (RSS counts both). glibc only: elsewhere (the musl image) nothing is
//! reported.

/// Bytes the program has allocated and not freed (glibc's `mallinfo2`: small blocks in use
/// plus mmapped blocks).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub(crate) fn heap_in_use() -> Option<u64> {
    // SAFETY: mallinfo2 only reads the allocator's counters; it has no preconditions.
    let mi = unsafe { libc::mallinfo2() };
    Some((mi.uordblks + mi.hblkhd) as u64)
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn heap_in_use() -> Option<u64> {
    None
}

/// One allocator arena for the whole process, unless `MALLOC_ARENA_MAX` says otherwise. glibc
/// gives threads that allocate at the same time arenas of their own (up to eight per core),
/// and each keeps what was freed in it: after the initial sync of 20,000 sources the resident
/// set is about 23 MiB with one arena against 26–32 MiB with glibc's default, for the same
/// heap in use (`hack/mem-check.sh`, bench/README.md). The threads are two runtime workers
/// and a few blocking ones, waiting on I/O most of the time, so they rarely wait for the arena.
/// Call it before any thread starts.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn one_arena() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; called before other threads exist.
        unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn one_arena() {}

/// Hands memory freed after the initial list back to the operating system. The list pages are
/// parsed, hashed and dropped, but glibc keeps the freed pages in its arenas, so without this
/// the resident set stays at the start-up peak for the life of the process.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub(crate) fn release_free() {
    // SAFETY: malloc_trim only returns unused heap pages to the kernel; it has no preconditions.
    unsafe { libc::malloc_trim(0) };
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn release_free() {}
