//! The control interface: one command per line over TCP, one reply line each
//! (`ok ...` or `error ...`), so a test or an operator with `nc` can drive a
//! drill.
//!
//! ```text
//! set <point> <value>        a number, text for strings, or not_available
//! get <point>                the decoded value and state
//! mains_lost | battery_low | generator_fails_to_start | generator_running | cooling_alarm | overheat
//! healthy                    default image, no fault
//! slow <ms> | silent | exception <code>
//! points                     the point names
//! class                      the profile's class: ups, generator, cooling, environment, io
//! ```

use std::time::Duration;

use sitewatch_modbus_profile::SimValue;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::device::SimDevice;
use crate::fault::Fault;

/// Runs one control command against `device`; the reply line without newline.
pub fn execute(device: &SimDevice, line: &str) -> String {
    let words: Vec<&str> = line.split_whitespace().collect();
    let result = match words.as_slice() {
        [] => return String::from("error empty command"),
        ["set", point, value] => {
            let value = match value.parse::<f64>() {
                Ok(v) => SimValue::Number(v),
                Err(_) => SimValue::Text((*value).to_owned()),
            };
            device.set(point, &value).map(|()| String::new())
        }
        ["get", point] => {
            let decoded = device.profile().decode(&device.image());
            return match (decoded.value(point), decoded.info.get(*point)) {
                (Some(v), _) => format!(
                    "ok {} {}",
                    v.value.map_or_else(|| "null".to_owned(), |x| x.to_string()),
                    v.state.as_str()
                ),
                (None, Some(text)) => format!("ok {text}"),
                (None, None) => format!("error no point named `{point}`"),
            };
        }
        ["points"] => {
            let names: Vec<&str> = device
                .profile()
                .points()
                .iter()
                .map(|p| p.name.as_str())
                .collect();
            return format!("ok {}", names.join(" "));
        }
        ["class"] => return format!("ok {}", device.profile().device.class.as_str()),
        ["slow", ms] => match ms.parse::<u64>() {
            Ok(ms) => {
                device.set_fault(Fault::Slow(Duration::from_millis(ms)));
                Ok(String::new())
            }
            Err(_) => return format!("error `{ms}` is not milliseconds"),
        },
        ["silent"] => {
            device.set_fault(Fault::Silent);
            Ok(String::new())
        }
        ["exception", code] => match code.parse::<u8>() {
            Ok(code) if code > 0 => {
                device.set_fault(Fault::Exception(code));
                Ok(String::new())
            }
            _ => return format!("error `{code}` is not an exception code"),
        },
        [name] => device.apply(name).map(|changed| changed.join(" ")),
        _ => return format!("error unknown command `{line}`"),
    };
    match result {
        Ok(detail) if detail.is_empty() => String::from("ok"),
        Ok(detail) => format!("ok {detail}"),
        Err(e) => format!("error {e}"),
    }
}

/// Serves the control interface on an already bound listener.
pub async fn serve_control(listener: TcpListener, device: SimDevice) -> std::io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        let device = device.clone();
        tokio::spawn(async move {
            if let Err(err) = session(stream, &device).await {
                tracing::debug!(error = %err, "control session ended");
            }
        });
    }
}

async fn session(stream: TcpStream, device: &SimDevice) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    while let Some(line) = lines.next_line().await? {
        let reply = execute(device, &line);
        tracing::info!(command = %line.trim(), reply = %reply, "control");
        write.write_all(reply.as_bytes()).await?;
        write.write_all(b"\n").await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sitewatch_modbus_profile::shipped;

    #[test]
    fn commands_reply_one_line_each() {
        let ups = SimDevice::new(shipped::load("socomec-delphys").unwrap().unwrap(), 1).unwrap();
        assert_eq!(
            execute(&ups, "get battery_runtime_remaining"),
            "ok null unknown"
        );
        assert_eq!(execute(&ups, "set battery_runtime_remaining 600"), "ok");
        assert_eq!(execute(&ups, "get battery_runtime_remaining"), "ok 600 ok");
        assert!(execute(&ups, "mains_lost").starts_with("ok "));
        assert_eq!(execute(&ups, "get load_on_battery"), "ok 1 warning");
        assert_eq!(execute(&ups, "slow 20"), "ok");
        assert_eq!(ups.fault(), Fault::Slow(Duration::from_millis(20)));
        assert!(execute(&ups, "slow soon").starts_with("error "));
        assert!(execute(&ups, "exception 0").starts_with("error "));
        assert!(execute(&ups, "set nothing 1").starts_with("error no point named"));
        assert!(execute(&ups, "fly away now").starts_with("error unknown command"));
        assert!(execute(&ups, "points").contains("load_on_battery"));
        assert_eq!(execute(&ups, "class"), "ok ups");
    }
}
