//! TCP connect probes: the three-way handshake is the probe; the connection is
//! closed at once without sending anything.

use std::{
    io,
    net::SocketAddr,
    time::{Duration, Instant},
};

/// Connects to `addr` (the caller bounds the wait) and returns the handshake time.
///
/// A port with no listener answers the SYN with a RST: `ConnectionRefused`. A
/// port behind a DROP rule, or an address with nobody behind it, does not answer
/// at all: the caller's timeout fires.
pub async fn connect(addr: SocketAddr) -> io::Result<Duration> {
    let started = Instant::now();
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let rtt = started.elapsed();
    drop(stream);
    Ok(rtt)
}
