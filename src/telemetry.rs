//! Logging through `tracing` (the filter comes from `RUST_LOG`, default `info`), and the one
//! allocator setting the process needs.

use tracing_subscriber::EnvFilter;

/// Installs the log subscriber once; later calls (tests) are ignored.
pub fn init() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,actix_server=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .try_init();
}

/// Keeps large allocations (argon2's 19 MiB per password hash) out of glibc's arenas, where
/// they would otherwise stay after being freed: without this, a burst of sign-ins left keyhold
/// at ~300 MB; with it, ~70 MB (measured by `scripts/bench`). The threshold stays above page
/// buffers (a few hundred KiB), which would otherwise pay a page fault per request. Fixing it
/// also fixes glibc's trim threshold at 128 KiB, so an arena's free top was handed back to the
/// system after every page and faulted in again for the next: up to 4 MiB of it is kept.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called once before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 * 1024 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 4 * 1024 * 1024);
    }
}
