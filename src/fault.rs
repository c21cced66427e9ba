//! Fault points for crash tests: in builds with debug assertions (what the tests run), a
//! process whose `BERTH_FAULT` names a point (comma-separated) kills itself there with SIGKILL,
//! as `kill -9` would at that moment. Release builds ignore the variable.

/// Die here if `BERTH_FAULT` says so (debug builds only).
#[inline]
pub fn point(name: &str) {
    if cfg!(debug_assertions)
        && std::env::var("BERTH_FAULT").is_ok_and(|v| v.split(',').any(|p| p == name))
    {
        let _ = nix::sys::signal::kill(nix::unistd::getpid(), nix::sys::signal::Signal::SIGKILL);
    }
}
