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

/// What the process uses, as Go's process collector exports it for Reloader
/// (`process_resident_memory_bytes`, `process_cpu_seconds_total`), read from `/proc/self`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Usage {
    pub(crate) resident_bytes: u64,
    pub(crate) cpu_seconds: f64,
}

/// Reads [`Usage`]; `None` where `/proc` is not Linux's.
pub(crate) fn usage() -> Option<Usage> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // SAFETY: sysconf only reads a system constant.
    let (page, ticks) = unsafe { (libc::sysconf(libc::_SC_PAGESIZE), libc::sysconf(libc::_SC_CLK_TCK)) };
    parse_usage(&statm, &stat, u64::try_from(page).ok()?, u64::try_from(ticks).ok()?)
}

/// `statm`'s second field is the resident set in pages; in `stat`, after the command name in
/// parentheses (which may hold spaces), utime and stime are the 12th and 13th fields, in ticks.
fn parse_usage(statm: &str, stat: &str, page: u64, ticks: u64) -> Option<Usage> {
    let resident: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    let mut after = stat.get(stat.rfind(')')? + 1..)?.split_whitespace().skip(11);
    let utime: u64 = after.next()?.parse().ok()?;
    let stime: u64 = after.next()?.parse().ok()?;
    (ticks > 0).then(|| Usage { resident_bytes: resident * page, cpu_seconds: (utime + stime) as f64 / ticks as f64 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_is_parsed_from_proc_and_read_here() {
        let stat = "4242 (reloader (x) y) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 4 0 100";
        assert_eq!(
            parse_usage("5000 3000 700 100 0 900 0", stat, 4096, 100),
            Some(Usage { resident_bytes: 3000 * 4096, cpu_seconds: 3.0 })
        );
        assert_eq!(parse_usage("5000", stat, 4096, 100), None, "short statm");
        assert_eq!(parse_usage("5000 3000", "4242 (no closing", 4096, 100), None, "no command end");
        let here = usage().expect("this is Linux");
        assert!(here.resident_bytes > 1 << 20, "{here:?}");
    }
}
