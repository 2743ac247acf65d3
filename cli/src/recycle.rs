//! `restart`: recycles running roles one at a time while the others keep
//! serving.
//!
//! Each role's process gets SIGUSR1, which makes a layer-cake process
//! retire (`layer_cake::process::Retired`): its main actor withdraws its
//! publications, so the spools it served stop sending it requests, answers
//! what it holds and stops; the process exits 0 with `Retired`, and
//! group-cake starts a fresh one at once. The command waits for the fresh
//! process before it signals the next role, so a rolling restart never
//! takes two instances away at once.

use std::io::Write;
use std::time::{Duration, Instant};

use layer_cake::home::Home;

/// How long one role gets to retire and come back.
pub const RESTART_PATIENCE: Duration = Duration::from_secs(60);

/// `restart PATTERN…`: recycles each running role the patterns select (at
/// least one pattern: `restart` never means "everything" by accident), one
/// at a time, printing `restarted ROLE (pid OLD, now pid NEW)` for each.
pub fn restart(
    home: &Home,
    patterns: &[String],
    patience: Duration,
    out: &mut dyn Write,
) -> Result<(), String> {
    if patterns.is_empty() {
        return Err("name the roles to restart (patterns, e.g. worker-3 or 'worker-.*')".into());
    }
    let roles = home
        .select(patterns, false, false)
        .map_err(|e| e.to_string())?;
    let running: Vec<_> = roles
        .into_iter()
        .filter_map(|role| role.running().map(|r| (role, r)))
        .collect();
    if running.is_empty() {
        return Err(format!(
            "no role matching {} is running",
            patterns.join(" ")
        ));
    }
    for (role, was) in running {
        if was.pid == 0 {
            return Err(format!(
                "{} is running but its lock does not say which process runs it",
                role.name()
            ));
        }
        let pid = nix::unistd::Pid::from_raw(was.pid as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGUSR1)
            .map_err(|e| format!("cannot signal {} (pid {}): {e}", role.name(), was.pid))?;
        let deadline = Instant::now() + patience;
        let now = loop {
            match role.running() {
                Some(now) if now.pid != was.pid && now.pid != 0 => break now,
                _ => {}
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{} (pid {}) was not back within {patience:?}: is it a layer-cake process running under group-cake?",
                    role.name(),
                    was.pid
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        writeln!(
            out,
            "restarted {} (pid {}, now pid {})",
            role.name(),
            was.pid,
            now.pid
        )
        .map_err(|e| e.to_string())?;
    }
    Ok(())
}
