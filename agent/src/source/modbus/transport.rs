//! Opening a link to a bus: Modbus TCP, RTU on a serial line, RTU over TCP.

use std::{io, time::Duration};

use tokio::io::AsyncReadExt;
use tokio_modbus::{Slave, client::Context};
use tokio_serial::{DataBits, Parity, SerialPortBuilderExt, SerialStream, StopBits};

use super::config::{ModbusAddress, SerialLine};

/// Opens a client context for `address`, the first request going to `unit`.
pub async fn connect(address: &ModbusAddress, unit: u8) -> io::Result<Context> {
    let slave = Slave(unit);
    match address {
        ModbusAddress::Tcp { host, port } => {
            let stream = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
            stream.set_nodelay(true)?;
            Ok(tokio_modbus::client::tcp::attach_slave(stream, slave))
        }
        ModbusAddress::RtuOverTcp { host, port } => {
            let stream = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
            stream.set_nodelay(true)?;
            Ok(tokio_modbus::client::rtu::attach_slave(stream, slave))
        }
        ModbusAddress::Rtu(line) => {
            let mut serial = open_serial(line)?;
            drain(&mut serial, quiet_time(line.baud)).await;
            Ok(tokio_modbus::client::rtu::attach_slave(serial, slave))
        }
    }
}

fn open_serial(line: &SerialLine) -> io::Result<SerialStream> {
    let parity = match line.parity {
        'E' => Parity::Even,
        'O' => Parity::Odd,
        _ => Parity::None,
    };
    let stop_bits = if line.stop_bits == 2 {
        StopBits::Two
    } else {
        StopBits::One
    };
    let data_bits = if line.data_bits == 7 {
        DataBits::Seven
    } else {
        DataBits::Eight
    };
    tokio_serial::new(&line.path, line.baud)
        .parity(parity)
        .stop_bits(stop_bits)
        .data_bits(data_bits)
        .open_native_async()
        .map_err(io::Error::from)
}

/// How long the line must stay silent before it counts as drained: the RTU
/// inter-frame gap (3.5 characters of 11 bits) with a floor for USB adapters,
/// which deliver bytes in bursts every few milliseconds.
pub fn quiet_time(baud: u32) -> Duration {
    let frame_gap = Duration::from_micros(3_500 * 11 * 1_000_000 / u64::from(baud.max(1)) / 1_000);
    frame_gap.max(Duration::from_millis(20))
}

/// Discards whatever is still arriving (a late answer to a request that timed
/// out), so that it is not taken for the answer to the next request.
/// Gives up after a second of continuous chatter.
async fn drain(serial: &mut SerialStream, quiet: Duration) {
    let mut buf = [0u8; 256];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    while tokio::time::Instant::now() < deadline {
        match tokio::time::timeout(quiet, serial.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {
                tracing::debug!(bytes = n, "drained a late answer from the serial line");
            }
            _ => return,
        }
    }
}
