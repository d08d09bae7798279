//! What the process does to itself on Linux and macOS (used by the fixture server, which
//! misbehaves on purpose in tests).

/// Ignores SIGTERM from now on.
pub fn ignore_terminate() {
    // SAFETY: setting a signal's disposition to SIG_IGN installs no handler code.
    unsafe {
        libc::signal(libc::SIGTERM, libc::SIG_IGN);
    }
}

/// Ends the process by `signal`, its default action restored first (a signal that does not end
/// a process by default falls through to exit status 128 + signal).
pub fn die_by(signal: i32) -> ! {
    // SAFETY: restoring the default disposition and raising a signal on ourselves; no handler
    // code runs.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
        libc::raise(signal);
    }
    std::process::exit(128 + signal)
}
