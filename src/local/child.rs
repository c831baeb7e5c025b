//! Ending a child process by PID: SIGTERM first, so it can stop what it runs, then
//! SIGKILL after a grace period; reaped either way.

use std::process::Child;
use std::time::{Duration, Instant};

/// Ends `child` if it still runs. Returns whether it ended within `grace` (false: it
/// had to be killed).
pub fn terminate(child: &mut Child, grace: Duration) -> bool {
    if !matches!(child.try_wait(), Ok(None)) {
        return true;
    }
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: kill(2) on the PID of our own child, which has not been reaped (so
        // the PID cannot have been reused).
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if !matches!(child.try_wait(), Ok(None)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    false
}
