//! Gives the heap's free memory back to the kernel.
//!
//! glibc's allocator keeps freed memory in its arenas (one per thread that
//! allocated, so one per tokio worker) and returns to the kernel only the top
//! of the main arena past `M_TRIM_THRESHOLD`. After a flood of one-off series
//! is pruned, the collector's own tables are small again but its resident size
//! stays at the flood's peak: a publisher could ratchet it up for ever.
//! `malloc_trim(0)` walks every arena and releases each free page
//! (`MADV_DONTNEED`), which is what brings the RSS back.
//!
//! musl's allocator unmaps freed memory by itself, and other C libraries are
//! not ours to trim: [`release_free_memory`] does nothing there.

/// Serves every allocation of 128 KiB and more with its own mapping, returned
/// to the kernel as soon as it is freed. glibc starts there but raises the
/// threshold each time such a block is freed (up to 32 MiB), so after the
/// first burst of large message buffers every later one comes from the arenas,
/// and a burst leaves them fragmented. Fixing the threshold keeps a flood's
/// payloads out of the arenas. Call once, at start.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn fix_mmap_threshold() -> bool {
    #[allow(unsafe_code)]
    // SAFETY: mallopt only sets an allocator parameter, under the allocator's
    // lock; M_MMAP_THRESHOLD takes a byte count (at most 32 MiB on 64-bit).
    let ok = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024) };
    ok == 1
}

/// Nothing to do with this C library (see the crate's documentation).
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn fix_mmap_threshold() -> bool {
    false
}

/// Releases the heap's free pages to the kernel; returns whether any were.
///
/// It takes the allocator's locks while it walks the arenas (milliseconds at a
/// few hundred MiB of heap): call it off the async workers, and not often.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn release_free_memory() -> bool {
    #[allow(unsafe_code)]
    // SAFETY: malloc_trim takes no pointers and only touches the allocator's
    // own state, under its own locks; it is safe to call from any thread at any
    // time (glibc >= 2.8, and the packages need 2.34).
    let released = unsafe { libc::malloc_trim(0) };
    released != 0
}

/// Releases the heap's free pages to the kernel; returns whether any were.
/// Nothing to do with this C library (see the crate's documentation).
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free_memory() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn freed_heap_memory_is_given_back() {
        fn rss_kib() -> u64 {
            let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0)
        }
        // Many small blocks, touched, then freed except for a few pinned ones
        // spread among them, so that the arena cannot shrink from its top alone.
        let mut blocks: Vec<Vec<u8>> = (0..64 * 1024).map(|i| vec![i as u8; 1024]).collect();
        let pinned: Vec<Vec<u8>> = blocks.iter().step_by(4096).cloned().collect();
        let full = rss_kib();
        blocks.clear();
        blocks.shrink_to_fit();
        release_free_memory();
        let after = rss_kib();
        assert!(
            after + 32 * 1024 < full,
            "RSS {full} KiB with 64 MiB of blocks, {after} KiB after freeing them and trimming"
        );
        drop(pinned);
    }
}
