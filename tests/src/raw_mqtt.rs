//! A raw MQTT 3.1.1 client over TLS, for the packets no well-behaved client
//! sends: `mosquitto_pub` and rumqttc both refuse to publish to a topic holding
//! `+` or `#` before anything leaves them, so a broker's own refusal can only be
//! tested with hand-made packets.

use std::{
    io::{Read, Write},
    net::TcpStream,
    sync::Arc,
    time::Duration,
};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject};

/// What the broker did with the PUBLISH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It closed the connection (what MQTT requires for a wildcard topic).
    Disconnected,
    /// It acknowledged the PUBLISH.
    Acknowledged,
    /// The CONNECT itself was refused (return code).
    ConnectRefused(u8),
    /// Anything else it sent.
    Other(Vec<u8>),
}

fn remaining_length(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let mut byte = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if n == 0 {
            break;
        }
    }
}

fn string(s: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut p = vec![first];
    remaining_length(body.len(), &mut p);
    p.extend_from_slice(body);
    p
}

/// Connects over TLS with a client certificate, then publishes `payload` to
/// `topic` at QoS 1 (retained when asked), and reports what the broker did.
pub fn publish_over_tls(
    port: u16,
    ca: &str,
    client: (&str, &str),
    topic: &str,
    payload: &[u8],
    retain: bool,
) -> Outcome {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let chain: Vec<_> = CertificateDer::pem_file_iter(client.0)
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_file(client.1).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_client_auth_cert(chain, key)
    .unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);

    let mut connect = Vec::new();
    string("MQTT", &mut connect);
    connect.push(4); // 3.1.1
    connect.push(0x02); // clean session
    connect.extend_from_slice(&30u16.to_be_bytes());
    string("raw-client", &mut connect);
    tls.write_all(&packet(0x10, &connect)).unwrap();
    let mut connack = [0u8; 4];
    if tls.read_exact(&mut connack).is_err() {
        return Outcome::Disconnected;
    }
    if connack[0] != 0x20 || connack[3] != 0 {
        return Outcome::ConnectRefused(connack[3]);
    }

    let mut publish = Vec::new();
    string(topic, &mut publish);
    publish.extend_from_slice(&1u16.to_be_bytes());
    publish.extend_from_slice(payload);
    let first = 0x30 | 0x02 | u8::from(retain);
    if tls.write_all(&packet(first, &publish)).is_err() {
        return Outcome::Disconnected;
    }
    let mut answer = Vec::new();
    let mut buf = [0u8; 64];
    loop {
        match tls.read(&mut buf) {
            Ok(0) | Err(_) if answer.is_empty() => return Outcome::Disconnected,
            Ok(0) | Err(_) => break,
            Ok(n) => {
                answer.extend_from_slice(&buf[..n]);
                if answer.len() >= 4 {
                    break;
                }
            }
        }
    }
    if answer.first() == Some(&0x40) {
        Outcome::Acknowledged
    } else {
        Outcome::Other(answer)
    }
}
