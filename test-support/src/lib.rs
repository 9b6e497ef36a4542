//! test-support - what the end-to-end tests of both packages need to run and watch
//! child processes: bounded waits, a line reader that can time out, cleanup on drop,
//! and a reader for the daemon's final report. Dev-only (a dev-dependency of the
//! root package and of psp-client); nothing here knows persephone's types.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The value of counter `name` in a report of `name value` lines (psp-app's final
/// counters); panics, showing the report, if there is none.
pub fn counter(out: &str, name: &str) -> u64 {
    out.lines()
        .find_map(|l| {
            let mut it = l.split_whitespace();
            (it.next() == Some(name)).then(|| it.next().and_then(|v| v.parse().ok()))
        })
        .flatten()
        .unwrap_or_else(|| panic!("no counter {name} in:\n{out}"))
}

/// The contents of `p`, or nothing if it cannot be read (for failure messages).
pub fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// The lines of `r`, read on a thread so that waiting for them can time out.
pub fn lines_of(r: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The first line from `lines` (see [`lines_of`]) that contains `want`, within
/// `timeout`; or the lines seen instead, for the failure message.
pub fn line_containing(
    lines: &mpsc::Receiver<String>,
    want: &str,
    timeout: Duration,
) -> Result<String, Vec<String>> {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(l) if l.contains(want) => return Ok(l),
            Ok(l) => seen.push(l),
            Err(_) => return Err(seen),
        }
    }
}

/// Waits up to `timeout` for `child` to exit; `None` if it is still running.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A command that runs `bin` without privileges, for tests of what an ordinary user
/// gets: through `setpriv` as `nobody` (uid and gid 65534, no groups) when this process
/// is root, as it is otherwise. `None` when root has no `/usr/bin/setpriv`: the test
/// then skips, saying so on stderr.
pub fn unprivileged(bin: &str) -> Option<Command> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some(Command::new(bin));
    }
    let setpriv = Path::new("/usr/bin/setpriv");
    if !setpriv.exists() {
        eprintln!("skipped: running as root without setpriv to drop privileges");
        return None;
    }
    let mut c = Command::new(setpriv);
    c.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--",
        bin,
    ]);
    Some(c)
}

/// Kills `child` and reaps it, unless it has exited already.
pub fn kill(child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Directories removed when the test ends, pass or fail (paths a test must choose
/// itself, such as DPDK's runtime directory for a file prefix).
#[derive(Debug)]
pub struct Cleanup(pub Vec<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for d in &self.0 {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// DPDK EAL arguments for a test process: no hugepages, no PCI scan, 256 MiB, no
/// telemetry, a file prefix of its own (`psp-test-{name}-{pid}`), and the virtual
/// device `vdev`.
pub fn eal_args(name: &str, vdev: &str) -> Vec<String> {
    [
        "--no-huge",
        "--no-pci",
        "-m",
        "256",
        "--file-prefix",
        &format!("psp-test-{name}-{}", std::process::id()),
        "--no-telemetry",
        &format!("--vdev={vdev}"),
    ]
    .map(String::from)
    .to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_read_by_name() {
        let out = "received        12\nok 10\nmalformed x\n";
        assert_eq!(counter(out, "received"), 12);
        assert_eq!(counter(out, "ok"), 10);
        for missing in ["malformed", "rec", "queue_full"] {
            let r = std::panic::catch_unwind(|| counter(out, missing));
            assert!(r.is_err(), "{missing}");
        }
    }

    #[test]
    fn waits_are_bounded_and_see_the_exit() {
        let mut sleeper = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        assert!(wait_timeout(&mut sleeper, Duration::from_millis(50)).is_none());
        kill(&mut sleeper);
        assert!(sleeper.try_wait().unwrap().is_some());
        let mut t = std::process::Command::new("true").spawn().unwrap();
        assert!(wait_timeout(&mut t, Duration::from_secs(30))
            .unwrap()
            .success());
    }

    #[test]
    fn lines_arrive_and_the_channel_closes() {
        let rx = lines_of(&b"a\nb\n"[..]);
        assert_eq!(rx.recv().unwrap(), "a");
        assert_eq!(rx.recv().unwrap(), "b");
        assert!(rx.recv().is_err());
    }
}
