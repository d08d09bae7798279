//! What the process does to itself on Windows (used by the fixture server, which misbehaves
//! on purpose in tests).

/// Windows sends no SIGTERM (a process is ended by its job, which cannot be ignored): nothing to
/// ignore.
pub fn ignore_terminate() {}

/// Ends the process as a signal would on Unix, with the status a Unix shell would report for
/// it (128 + signal): Windows has no signals to raise.
pub fn die_by(signal: i32) -> ! {
    std::process::exit(128 + signal)
}
