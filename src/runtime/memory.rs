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
