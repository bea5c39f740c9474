//! Scraping the collector: HTTP over a bare socket, and a small parser of the
//! Prometheus text format that is independent of the collector's encoder.

use std::{
    collections::BTreeMap,
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    time::Duration,
};

/// An HTTP response: status code and body.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

/// `GET path` on `127.0.0.1:port`; `None` when nothing answers.
pub fn get(port: u16, path: &str) -> Option<Response> {
    get_with(port, path, &[])
}

/// `GET` with extra request headers.
pub fn get_with(port: u16, path: &str, headers: &[(&str, &str)]) -> Option<Response> {
    let mut request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    exchange(SocketAddr::from(([127, 0, 0, 1], port)), &request)
}

/// `GET path` on any address (a site's namespace, say).
pub fn get_at(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Option<Response> {
    let mut request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    exchange(addr, &request)
}

/// Sends one HTTP/1.0 request and reads the whole response.
fn exchange(addr: SocketAddr, request: &str) -> Option<Response> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    stream.write_all(request.as_bytes()).ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some(Response {
        status,
        body: body.to_owned(),
    })
}

/// `POST path` with a JSON body on `127.0.0.1:port`; `None` when nothing answers.
pub fn post_json(port: u16, path: &str, body: &str) -> Option<Response> {
    exchange(
        SocketAddr::from(([127, 0, 0, 1], port)),
        &format!(
            "POST {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
}

/// One sample of a scrape.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Parses the Prometheus text format: samples only (comments skipped).
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(parse_line)
        .collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let (name, rest) = match line.find(['{', ' ']) {
        Some(i) => line.split_at(i),
        None => return None,
    };
    let mut labels = BTreeMap::new();
    let rest = if let Some(mut body) = rest.strip_prefix('{') {
        loop {
            body = body.trim_start_matches(',');
            if let Some(after) = body.strip_prefix('}') {
                break after;
            }
            let (key, after_eq) = body.split_once("=\"")?;
            let (value, after_value) = unescape_until_quote(after_eq)?;
            labels.insert(key.trim().to_owned(), value);
            body = after_value;
        }
    } else {
        rest
    };
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

fn unescape_until_quote(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &s[i + 1..])),
            '\\' => match chars.next()?.1 {
                'n' => out.push('\n'),
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}

/// Samples named `name` whose labels include every pair of `want`.
pub fn find<'a>(samples: &'a [Sample], name: &str, want: &[(&str, &str)]) -> Vec<&'a Sample> {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            want.iter()
                .all(|(k, v)| s.labels.get(*k).is_some_and(|x| x == v))
        })
        .collect()
}

/// The value of the one sample named `name` with labels `want`, if present.
pub fn value(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> Option<f64> {
    find(samples, name, want).first().map(|s| s.value)
}

/// Scrapes `/metrics` and parses it; `None` when the collector does not answer.
pub fn metrics(port: u16) -> Option<Vec<Sample>> {
    let r = get(port, "/metrics")?;
    (r.status == 200).then(|| parse(&r.body))
}

/// Asserts that `promtool check metrics` (Debian package prometheus) accepts
/// a scrape, printing promtool's complaints and the scrape when it does not.
pub fn assert_promtool_accepts(body: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus) is required");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n--- scrape ---\n{body}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_labels_with_escapes_and_values() {
        let s = parse(
            "# HELP x y\n# TYPE x gauge\nx{a=\"1\",b=\"q\\\"t\"} 2.5\nup 1\ny{a=\"\"} +Inf\n",
        );
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].labels["b"], "q\"t");
        assert_eq!(value(&s, "x", &[("a", "1")]), Some(2.5));
        assert_eq!(value(&s, "up", &[]), Some(1.0));
        assert!(value(&s, "y", &[]).unwrap().is_infinite());
    }
}
