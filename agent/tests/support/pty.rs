//! A socat pty pair: a serial line between the agent and a device in a test.
//! The agent opens one end, the device (pymodbus, the simulator, a responder
//! written by the test) the other; socat dies with the pair.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// The two ends of the line, as symlinks in the test's directory.
pub struct PtyPair {
    socat: Child,
    pub agent_end: PathBuf,
    pub device_end: PathBuf,
}

impl Drop for PtyPair {
    fn drop(&mut self) {
        let _ = self.socat.kill();
        let _ = self.socat.wait();
    }
}

/// Starts socat and waits (at most 5 s) for both ends to exist.
pub fn pty_pair(dir: &Path) -> PtyPair {
    let (a, b) = (dir.join("agent-tty"), dir.join("device-tty"));
    let socat = Command::new("socat")
        .args([
            format!("pty,raw,echo=0,link={}", a.display()),
            format!("pty,raw,echo=0,link={}", b.display()),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("socat (scripts/install-test-deps.sh installs it)");
    let pair = PtyPair {
        socat,
        agent_end: a,
        device_end: b,
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while !(pair.agent_end.exists() && pair.device_end.exists()) {
        assert!(Instant::now() < deadline, "socat made no pty pair");
        std::thread::sleep(Duration::from_millis(20));
    }
    pair
}
