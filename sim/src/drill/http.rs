//! The collector's JSON API over a bare HTTP/1.0 GET: the drill needs two
//! endpoints and no TLS (the collector serves plain HTTP; put a drill next to
//! it, or through an SSH tunnel, rather than pull an HTTP stack in for this).

use std::time::Duration;

use sitewatch_protocol::Signal;
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Each request's limit: the collector answers in milliseconds when it is well.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// A signals list is small; anything past this is not the collector.
const MAX_RESPONSE: u64 = 16 << 20;

#[derive(Debug, Error)]
pub enum HttpError {
    #[error("`{0}` is not an http://HOST:PORT URL")]
    Url(String),
    #[error("{url}: {source}")]
    Io { url: String, source: std::io::Error },
    #[error("{0}: no answer within 5 s")]
    Timeout(String),
    #[error("{url}: HTTP status {status}")]
    Status { url: String, status: u16 },
    #[error("{0}: not an HTTP response")]
    Malformed(String),
    #[error("{url}: {source}")]
    Json {
        url: String,
        source: serde_json::Error,
    },
}

impl HttpError {
    pub fn kind(&self) -> &'static str {
        match self {
            HttpError::Url(_) => "url",
            HttpError::Io { .. } => "io",
            HttpError::Timeout(_) => "timeout",
            HttpError::Status { .. } => "status",
            HttpError::Malformed(_) => "malformed",
            HttpError::Json { .. } => "json",
        }
    }
}

/// The collector's base URL, split: `http://127.0.0.1:9184` (a path prefix
/// behind a reverse proxy is kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectorUrl {
    pub authority: String,
    pub prefix: String,
}

impl CollectorUrl {
    pub fn parse(url: &str) -> Result<CollectorUrl, HttpError> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| HttpError::Url(url.to_owned()))?;
        let (authority, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if authority.is_empty() {
            return Err(HttpError::Url(url.to_owned()));
        }
        let authority = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        Ok(CollectorUrl {
            authority,
            prefix: prefix.to_owned(),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}{path}", self.authority, self.prefix)
    }

    /// `GET path`: the body of a 200.
    pub async fn get(&self, path: &str) -> Result<String, HttpError> {
        let url = self.url(path);
        tokio::time::timeout(REQUEST_TIMEOUT, self.get_inner(path, &url))
            .await
            .map_err(|_| HttpError::Timeout(url.clone()))?
    }

    async fn get_inner(&self, path: &str, url: &str) -> Result<String, HttpError> {
        let io = |source| HttpError::Io {
            url: url.to_owned(),
            source,
        };
        let mut stream = TcpStream::connect(&self.authority).await.map_err(io)?;
        let host = self.authority.as_str();
        let request = format!(
            "GET {}{path} HTTP/1.0\r\nHost: {host}\r\nAccept: application/json\r\n\r\n",
            self.prefix
        );
        stream.write_all(request.as_bytes()).await.map_err(io)?;
        let mut raw = Vec::new();
        stream
            .take(MAX_RESPONSE)
            .read_to_end(&mut raw)
            .await
            .map_err(io)?;
        let text = String::from_utf8_lossy(&raw);
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| HttpError::Malformed(url.to_owned()))?;
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| HttpError::Malformed(url.to_owned()))?;
        if status != 200 {
            return Err(HttpError::Status {
                url: url.to_owned(),
                status,
            });
        }
        Ok(body.to_owned())
    }

    /// `GET /api/v1/signals`: every active signal.
    pub async fn signals(&self) -> Result<Vec<Signal>, HttpError> {
        let path = "/api/v1/signals";
        let body = self.get(path).await?;
        serde_json::from_str(&body).map_err(|source| HttpError::Json {
            url: self.url(path),
            source,
        })
    }

    /// `GET /api/v1/peers`: the other collectors of the topology as (name, site).
    pub async fn peers(&self) -> Result<Vec<(String, String)>, HttpError> {
        let path = "/api/v1/peers";
        let body = self.get(path).await?;
        let peers: Vec<serde_json::Value> =
            serde_json::from_str(&body).map_err(|source| HttpError::Json {
                url: self.url(path),
                source,
            })?;
        Ok(peers
            .iter()
            .filter_map(|p| {
                Some((
                    p["name"].as_str()?.to_owned(),
                    p["site"].as_str()?.to_owned(),
                ))
            })
            .collect())
    }

    /// The sites of `GET /api/v1/hosts`, to pick the one site of a small stack.
    pub async fn sites(&self) -> Result<Vec<String>, HttpError> {
        let path = "/api/v1/hosts";
        let body = self.get(path).await?;
        let hosts: Vec<serde_json::Value> =
            serde_json::from_str(&body).map_err(|source| HttpError::Json {
                url: self.url(path),
                source,
            })?;
        let mut sites: Vec<String> = hosts
            .iter()
            .filter_map(|h| h["site"].as_str().map(str::to_owned))
            .collect();
        sites.sort();
        sites.dedup();
        Ok(sites)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_authority_and_prefix() {
        assert_eq!(
            CollectorUrl::parse("http://127.0.0.1:9184").unwrap(),
            CollectorUrl {
                authority: "127.0.0.1:9184".into(),
                prefix: String::new()
            }
        );
        assert_eq!(
            CollectorUrl::parse("http://mon.example.net/sitewatch/").unwrap(),
            CollectorUrl {
                authority: "mon.example.net:80".into(),
                prefix: "/sitewatch".into()
            }
        );
        assert_eq!(
            CollectorUrl::parse("https://x:1").unwrap_err().kind(),
            "url"
        );
        assert_eq!(CollectorUrl::parse("http:///x").unwrap_err().kind(), "url");
    }
}
