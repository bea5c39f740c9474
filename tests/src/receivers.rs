//! Local stand-ins for the notification channels Alertmanager talks to, each
//! recording what it was sent: an HTTP server answering like the WeChat Work
//! API and like webhook receivers (an SMS gateway, a phone service, the
//! DingTalk bridge), and an SMTP sink with `AUTH PLAIN`.
//!
//! They speak just enough of their protocols for a real client (Go's net/http
//! and net/smtp inside Alertmanager) and keep everything in memory. Each runs
//! on a thread for the test's life, on a port of 127.0.0.1 chosen by the OS.

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    sync::{Arc, Mutex},
    time::Duration,
};

/// One HTTP request as received.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    pub method: String,
    /// Path and query, as on the request line.
    pub target: String,
    /// Header names in lower case.
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

impl HttpRequest {
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    /// A query parameter's raw value.
    pub fn query(&self, key: &str) -> Option<&str> {
        self.target
            .split_once('?')?
            .1
            .split('&')
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
    }
}

/// The access token the fake WeChat API hands out.
pub const WECHAT_TOKEN: &str = "test-access-token";

/// An HTTP server that records every request. `GET /cgi-bin/gettoken` answers
/// as WeChat Work does (`access_token`), `POST /cgi-bin/message/send` with
/// `errcode` 0, anything else `200 {}`.
#[derive(Debug, Clone)]
pub struct HttpRecorder {
    pub port: u16,
    requests: Arc<Mutex<Vec<HttpRequest>>>,
}

impl HttpRecorder {
    pub fn start() -> HttpRecorder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let seen = Arc::clone(&seen);
                std::thread::spawn(move || serve_http(stream, &seen));
            }
        });
        HttpRecorder { port, requests }
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn requests(&self) -> Vec<HttpRequest> {
        self.requests.lock().unwrap().clone()
    }

    /// The requests to one path.
    pub fn to(&self, path: &str) -> Vec<HttpRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.path() == path)
            .collect()
    }
}

fn serve_http(stream: TcpStream, seen: &Mutex<Vec<HttpRequest>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut writer = match stream.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let (method, target) = (
        parts.next().unwrap_or_default().to_owned(),
        parts.next().unwrap_or_default().to_owned(),
    );
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let request = HttpRequest {
        method,
        target,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    let answer = match request.path() {
        p if p.ends_with("/gettoken") => {
            format!(
                r#"{{"errcode":0,"errmsg":"ok","access_token":"{WECHAT_TOKEN}","expires_in":7200}}"#
            )
        }
        p if p.ends_with("/message/send") => r#"{"errcode":0,"errmsg":"ok"}"#.to_owned(),
        _ => "{}".to_owned(),
    };
    seen.lock().unwrap().push(request);
    let _ = write!(
        writer,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
        answer.len()
    );
}

/// One mail as the SMTP sink received it.
#[derive(Debug, Clone)]
pub struct Mail {
    /// The `AUTH PLAIN` identity and password the client gave, if any.
    pub auth: Option<(String, String)>,
    pub from: String,
    pub to: Vec<String>,
    /// The message as sent (headers and body), dot-unstuffed.
    pub data: String,
}

impl Mail {
    /// A header's value (the first of that name).
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next()?;
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }

    /// The `text/plain` part, quoted-printable decoded.
    pub fn text(&self) -> String {
        let lower = self.data.to_ascii_lowercase();
        let Some(start) = lower.find("content-type: text/plain") else {
            return String::new();
        };
        let part = &self.data[start..];
        let body_start = part.find("\r\n\r\n").map_or(part.len(), |i| i + 4);
        let body = &part[body_start..];
        let end = body.find("\r\n--").unwrap_or(body.len());
        decode_quoted_printable(&body[..end])
    }
}

/// A minimal SMTP server (RFC 5321 subset: EHLO, AUTH PLAIN, MAIL, RCPT, DATA,
/// RSET, NOOP, QUIT) that keeps every mail.
#[derive(Debug, Clone)]
pub struct SmtpSink {
    pub port: u16,
    mails: Arc<Mutex<Vec<Mail>>>,
}

impl SmtpSink {
    pub fn start() -> SmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mails = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&mails);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let kept = Arc::clone(&kept);
                std::thread::spawn(move || {
                    let _ = serve_smtp(stream, &kept);
                });
            }
        });
        SmtpSink { port, mails }
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.mails.lock().unwrap().clone()
    }

    /// The mails addressed to `rcpt`.
    pub fn to(&self, rcpt: &str) -> Vec<Mail> {
        self.mails()
            .into_iter()
            .filter(|m| m.to.iter().any(|t| t == rcpt))
            .collect()
    }
}

fn serve_smtp(stream: TcpStream, kept: &Mutex<Vec<Mail>>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut out = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    out.write_all(b"220 sink.test ESMTP\r\n")?;
    let mut auth = None;
    let (mut from, mut to) = (String::new(), Vec::new());
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let line = line.trim_end();
        let upper = line.to_ascii_uppercase();
        if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            out.write_all(b"250-sink.test\r\n250-AUTH PLAIN\r\n250 8BITMIME\r\n")?;
        } else if let Some(encoded) = line
            .strip_prefix("AUTH PLAIN ")
            .or_else(|| line.strip_prefix("auth plain "))
        {
            // authzid \0 authcid \0 password
            let decoded = decode_base64(encoded.trim());
            let fields: Vec<&[u8]> = decoded.split(|b| *b == 0).collect();
            match fields.as_slice() {
                [_, user, password] => {
                    auth = Some((
                        String::from_utf8_lossy(user).into_owned(),
                        String::from_utf8_lossy(password).into_owned(),
                    ));
                    out.write_all(b"235 2.7.0 Authentication successful\r\n")?;
                }
                _ => out.write_all(b"501 5.5.2 cannot decode AUTH PLAIN\r\n")?,
            }
        } else if upper.starts_with("MAIL FROM:") {
            from = address(&line[10..]);
            to.clear();
            out.write_all(b"250 2.1.0 Ok\r\n")?;
        } else if upper.starts_with("RCPT TO:") {
            to.push(address(&line[8..]));
            out.write_all(b"250 2.1.5 Ok\r\n")?;
        } else if upper == "DATA" {
            out.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")?;
            let mut data = String::new();
            loop {
                let mut l = String::new();
                if reader.read_line(&mut l)? == 0 {
                    return Ok(());
                }
                if l == ".\r\n" || l == ".\n" {
                    break;
                }
                data.push_str(l.strip_prefix('.').unwrap_or(&l));
            }
            kept.lock().unwrap().push(Mail {
                auth: auth.clone(),
                from: from.clone(),
                to: to.clone(),
                data,
            });
            out.write_all(b"250 2.0.0 Ok: queued\r\n")?;
        } else if upper == "QUIT" {
            out.write_all(b"221 2.0.0 Bye\r\n")?;
            return Ok(());
        } else if upper == "RSET" || upper == "NOOP" {
            out.write_all(b"250 2.0.0 Ok\r\n")?;
        } else {
            out.write_all(b"502 5.5.2 Command not implemented\r\n")?;
        }
    }
}

/// `<a@b>` (with optional parameters after it) -> `a@b`.
fn address(arg: &str) -> String {
    let arg = arg.trim();
    match (arg.find('<'), arg.find('>')) {
        (Some(a), Some(b)) if a < b => arg[a + 1..b].to_owned(),
        _ => arg.split_whitespace().next().unwrap_or_default().to_owned(),
    }
}

/// RFC 4648 base64 (standard alphabet, padding optional).
pub fn decode_base64(s: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for v in s.bytes().filter_map(value) {
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xff).unwrap());
        }
    }
    out
}

/// Quoted-printable (RFC 2045): soft line breaks joined, `=XX` decoded.
pub fn decode_quoted_printable(s: &str) -> String {
    let joined = s.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && let Some(hex) = joined.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_and_quoted_printable_decode() {
        assert_eq!(decode_base64("AHVzZXIAcGFzcw=="), b"\0user\0pass");
        assert_eq!(
            decode_quoted_printable("caf=C3=A9 =3D ok=\r\n, joined"),
            "café = ok, joined"
        );
    }
}
