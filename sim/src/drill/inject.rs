//! Putting a fault in place and taking it away: simulator control ports,
//! agent processes, operator commands. Each action runs under a timeout and
//! reports what it did as JSON for the drill's log.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use thiserror::Error;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::Command;

/// A control command or a signal answers at once; a slow one is a broken peer.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Error)]
pub enum InjectError {
    #[error("control {addr}: {source}")]
    Io {
        addr: String,
        source: std::io::Error,
    },
    #[error("control {0}: no reply within 5 s")]
    Timeout(String),
    #[error("control {addr}: `{command}` refused: {reply}")]
    Refused {
        addr: String,
        command: String,
        reply: String,
    },
    #[error("`{command}`: {detail}")]
    Command { command: String, detail: String },
}

impl InjectError {
    pub fn kind(&self) -> &'static str {
        match self {
            InjectError::Io { .. } => "io",
            InjectError::Timeout(_) => "timeout",
            InjectError::Refused { .. } => "refused",
            InjectError::Command { .. } => "command",
        }
    }
}

/// A simulated device's control port and its class (`ups`, `generator`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub addr: String,
    pub class: String,
}

/// Sends one line to a control port and returns the `ok ...` reply.
pub async fn control(addr: &str, command: &str) -> Result<String, InjectError> {
    tokio::time::timeout(CONTROL_TIMEOUT, control_inner(addr, command))
        .await
        .map_err(|_| InjectError::Timeout(addr.to_owned()))?
}

async fn control_inner(addr: &str, command: &str) -> Result<String, InjectError> {
    let io = |source| InjectError::Io {
        addr: addr.to_owned(),
        source,
    };
    let stream = TcpStream::connect(addr).await.map_err(io)?;
    let (read, mut write) = stream.into_split();
    write
        .write_all(format!("{command}\n").as_bytes())
        .await
        .map_err(io)?;
    let mut reply = String::new();
    BufReader::new(read)
        .read_line(&mut reply)
        .await
        .map_err(io)?;
    let reply = reply.trim().to_owned();
    if reply == "ok" || reply.starts_with("ok ") {
        Ok(reply)
    } else {
        Err(InjectError::Refused {
            addr: addr.to_owned(),
            command: command.to_owned(),
            reply,
        })
    }
}

/// Asks each control port what it simulates.
pub async fn classify(addrs: &[String]) -> Result<Vec<Device>, InjectError> {
    let mut devices = Vec::new();
    for addr in addrs {
        let reply = control(addr, "class").await?;
        let class = reply.trim_start_matches("ok").trim().to_owned();
        devices.push(Device {
            addr: addr.clone(),
            class,
        });
    }
    Ok(devices)
}

/// Runs a control command and describes it for the log.
pub async fn device_command(device: &Device, command: &str) -> Result<Value, InjectError> {
    let reply = control(&device.addr, command).await?;
    Ok(json!({"control": device.addr, "class": device.class, "command": command, "reply": reply}))
}

/// Sends `signal` (a name: STOP, CONT, KILL, TERM) to each process at once.
pub async fn signal(pids: &[u32], signal: &str) -> Result<Value, InjectError> {
    let mut args = vec![format!("-{signal}")];
    args.extend(pids.iter().map(u32::to_string));
    let command = format!("kill {}", args.join(" "));
    let mut cmd = Command::new("kill");
    cmd.args(&args);
    run(cmd, &command).await?;
    Ok(json!({"signal": signal, "pids": pids}))
}

/// Runs an operator's shell command (`sh -c`), under `limit`.
pub async fn shell(command: &str, limit: Duration) -> Result<Value, InjectError> {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", command]);
    let out = tokio::time::timeout(limit, run(cmd, command))
        .await
        .map_err(|_| InjectError::Command {
            command: command.to_owned(),
            detail: format!("still running after {}", super::limit(limit)),
        })??;
    Ok(json!({"command": command, "output": out}))
}

async fn run(mut cmd: Command, shown: &str) -> Result<String, InjectError> {
    let failed = |detail: String| InjectError::Command {
        command: shown.to_owned(),
        detail,
    };
    let out = cmd
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| failed(e.to_string()))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
    .trim()
    .to_owned();
    if out.status.success() {
        Ok(text)
    } else {
        Err(failed(format!("{}: {text}", out.status)))
    }
}
