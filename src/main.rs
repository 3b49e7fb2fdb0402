use std::process::ExitCode;

fn main() -> ExitCode {
    fixed_mmap_threshold();
    tessera::cli::main()
}

/// glibc serves a large allocation with its own mapping, returned to the
/// system when freed, but then raises that threshold to the size freed:
/// after the first sign-in, every argon2 block (19 MiB) comes from the
/// heap and stays in the process. A fixed threshold keeps a server's
/// memory near its idle size whatever the sign-ins it has seen.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn fixed_mmap_threshold() {
    // SAFETY: mallopt only sets an allocator parameter; called first
    // thing, before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn fixed_mmap_threshold() {}
