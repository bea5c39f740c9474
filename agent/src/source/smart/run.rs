//! Running smartctl: its own process group, a hard timeout that kills the whole
//! group, and output read while it runs.
//!
//! smartctl stuck in an ioctl to a dying disk, or a wrapper script that spawned
//! it, must not outlive the poll: the process is started as the leader of a new
//! process group, and on timeout (or when the poll is cancelled) the group gets
//! SIGKILL. The group id is only signalled while the leader is unreaped or a
//! member still holds its pipes, so it cannot have been reused by then.

use std::{io, path::Path, process::Stdio, time::Duration};

use nix::{
    sys::signal::{Signal, killpg},
    unistd::Pid,
};
use tokio::{
    io::{AsyncRead, AsyncReadExt},
    process::{Child, Command},
};

/// More than any smartctl report (a few hundred KiB with `-x` on a large error
/// log); beyond it the output is cut and the run's JSON will not parse.
const MAX_OUTPUT_BYTES: u64 = 8 * 1024 * 1024;

/// What a finished run printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// The exit code; `None` when a signal ended the process.
    pub code: Option<i32>,
}

/// Why a run has no output.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot start {program}: {source}")]
    Spawn { program: String, source: io::Error },
    #[error("no result within {0:?}: killed")]
    Timeout(Duration),
    #[error("reading its output: {0}")]
    Io(io::Error),
}

impl RunError {
    /// A bounded label.
    pub fn kind(&self) -> &'static str {
        match self {
            RunError::Spawn { .. } => "spawn",
            RunError::Timeout(_) => "timeout",
            RunError::Io(_) => "io",
        }
    }
}

/// The child and its process group, killed together unless it finished.
struct Group {
    child: Child,
    pgid: Option<Pid>,
    finished: bool,
}

impl Group {
    fn kill(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            // ESRCH: the group is already gone, which is what we wanted.
            let _ = killpg(pgid, Signal::SIGKILL);
        }
    }
}

impl Drop for Group {
    // A poll cancelled by the scheduler's timeout drops its runs mid-way.
    // `kill_on_drop` alone would kill only the leader.
    fn drop(&mut self) {
        if !self.finished {
            self.kill();
        }
    }
}

async fn read_capped(pipe: Option<impl AsyncRead + Unpin>) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    if let Some(pipe) = pipe {
        pipe.take(MAX_OUTPUT_BYTES).read_to_end(&mut buf).await?;
    }
    Ok(buf)
}

/// Runs `program args` with no stdin, and returns what it printed once it has
/// exited and closed its output, or kills its whole process group after `timeout`.
pub async fn run(program: &Path, args: &[String], timeout: Duration) -> Result<Output, RunError> {
    let mut command = Command::new(program);
    command
        .args(args)
        // smartctl's JSON does not depend on the locale, but its messages do.
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = command.spawn().map_err(|source| RunError::Spawn {
        program: program.display().to_string(),
        source,
    })?;
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    // process_group(0): the group id is the leader's pid.
    let pgid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .map(Pid::from_raw);
    let mut group = Group {
        child,
        pgid,
        finished: false,
    };
    let waited = tokio::time::timeout(timeout, async {
        tokio::join!(read_capped(stdout), read_capped(stderr), group.child.wait())
    })
    .await;
    match waited {
        Ok((stdout, stderr, status)) => {
            group.finished = true;
            let status = status.map_err(RunError::Io)?;
            Ok(Output {
                stdout: stdout.map_err(RunError::Io)?,
                stderr: stderr.map_err(RunError::Io)?,
                code: status.code(),
            })
        }
        Err(_) => {
            group.kill();
            // Reap the leader now rather than leave a zombie until tokio's
            // orphan reaper gets to it.
            let _ = tokio::time::timeout(Duration::from_secs(5), group.child.wait()).await;
            group.finished = true;
            Err(RunError::Timeout(timeout))
        }
    }
}
