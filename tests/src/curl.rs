//! `curl`, the HTTP client a person would use, for what the bare-socket client
//! in [`crate::scrape`] cannot do (TLS, client certificates, basic auth).

use std::process::Command;

/// What curl got: its exit code (0, or e.g. 35/56 for a failed TLS handshake)
/// and the HTTP status (0 when there was no response).
#[derive(Debug, Clone)]
pub struct Fetched {
    pub exit: i32,
    pub status: u16,
    pub body: String,
    pub stderr: String,
}

/// Runs `curl -s -w '\n%{http_code}' ARGS URL` with a 10 s limit.
pub fn get(url: &str, args: &[&str]) -> Fetched {
    let out = Command::new("curl")
        .args(["-s", "-S", "--max-time", "10", "-w", "\n%{http_code}"])
        .args(args)
        .arg(url)
        .output()
        .expect("curl (Debian package curl) is required");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
    Fetched {
        exit: out.status.code().unwrap_or(-1),
        status: code.trim().parse().unwrap_or(0),
        body: body.to_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
