//! Signals to child processes, through their handles only. Invariant: a signal goes to a child
//! this process spawned and has not reaped yet, so its PID cannot have been reused by another
//! process (an unreaped child keeps its PID, even as a zombie); never to a PID read elsewhere.

use std::process::Child;

/// Sends SIGTERM to `child` unless it already exited; returns whether it was signalled.
pub fn terminate(child: &mut Child) -> std::io::Result<bool> {
    if child.try_wait()?.is_some() {
        return Ok(false);
    }
    let pid = i32::try_from(child.id()).map_err(|_| std::io::Error::other("child PID out of range"))?;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM).map_err(std::io::Error::from)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_child_is_terminated_through_its_handle_and_an_exited_one_is_left_alone() {
        let mut c = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        assert!(super::terminate(&mut c).unwrap());
        let status = c.wait().unwrap();
        assert!(!status.success());
        assert!(!super::terminate(&mut c).unwrap(), "a reaped child is never signalled");
    }
}
