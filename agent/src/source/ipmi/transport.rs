//! The link to one BMC: an RMCP+ session or `/dev/ipmi0`, both through ipmi-rs,
//! behind the small [`Link`] trait so that everything above it is tested with
//! scripted answers (no sockets).
//!
//! ipmi-rs quirks handled here:
//! - its API is blocking, and every receive waits at most the socket timeout
//!   given at open: that is the per-command timeout;
//! - it does not check an answer's sequence number, so a late answer to a
//!   timed-out request would be read as the next request's: after any failure
//!   the session is dropped (new socket, new session) rather than reused;
//! - it `unwrap()`s a UDP send error and `todo!()`s a wrapped session
//!   sequence number: calls run under `catch_unwind` and a panic becomes an
//!   error that drops the session;
//! - it opens RMCP+ sessions only with RAKP-HMAC-SHA1 / HMAC-SHA1-96 /
//!   AES-CBC-128 (cipher suite 3) at the Administrator privilege level, and
//!   its IPMI 1.5 fallback (MD5) does not work: only RMCP+ is supported.

use std::{
    panic::{AssertUnwindSafe, catch_unwind},
    time::Duration,
};

use ipmi_rs::{
    connection::{
        IpmiConnection, LogicalUnit, Message, Request as IpmiRequest, RequestTargetAddress,
    },
    rmcp::{ActivationError, Rmcp, RmcpIpmiError, RmcpIpmiReceiveError, V2_0ActivationError},
};

use super::commands::{Cc, CloseSessionByHandle, Command, GetOwnSessionHandle, Malformed, Request};

/// A completed exchange: the completion code and the data after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub cc: u8,
    pub data: Vec<u8>,
}

/// Why a BMC could not be talked to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("authentication failed (user name, password or privilege): {0}")]
    Auth(String),
    #[error("cannot open an RMCP+ session: {0}")]
    Session(String),
    #[error("i/o error: {0}")]
    Io(String),
    #[error("malformed answer: {0}")]
    Malformed(#[from] Malformed),
    #[error("answer to another request (netfn {netfn:#04x} cmd {cmd:#04x})")]
    Mismatch { netfn: u8, cmd: u8 },
    #[error("the IPMI library panicked: {0}")]
    Panicked(String),
    #[error("the sweep ran past its deadline")]
    Deadline,
}

impl LinkError {
    /// A bounded label for metrics and for the `error` label of `bmc_up`.
    pub fn kind(&self) -> &'static str {
        match self {
            LinkError::Timeout(_) => "timeout",
            LinkError::Auth(_) => "auth",
            LinkError::Session(_) => "session",
            LinkError::Io(_) => "io",
            LinkError::Malformed(_) => "malformed",
            LinkError::Mismatch { .. } => "mismatch",
            LinkError::Panicked(_) => "panicked",
            LinkError::Deadline => "deadline",
        }
    }

    /// Whether this is the BMC not answering (a fact to report as `bmc_up 0`)
    /// rather than a configuration or protocol problem.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            LinkError::Timeout(_) | LinkError::Io(_) | LinkError::Deadline
        )
    }
}

/// One request, one answer.
pub trait Link: Send {
    fn exchange(&mut self, request: &Request) -> Result<Reply, LinkError>;
}

/// Sends a command: `Ok(Ok(output))`, `Ok(Err(cc))` for a device's refusal,
/// `Err` for a failed exchange or a malformed answer.
pub fn call<C: Command>(
    link: &mut dyn Link,
    command: &C,
) -> Result<Result<C::Output, Cc>, LinkError> {
    let reply = link.exchange(&command.request())?;
    if reply.cc != 0 {
        return Ok(Err(Cc(reply.cc)));
    }
    Ok(Ok(C::parse(&reply.data)?))
}

/// Asks the BMC to close the session the request travels in, best effort.
pub fn close_session(link: &mut dyn Link) {
    if let Ok(Ok(handle)) = call(link, &GetOwnSessionHandle) {
        let _ = call(link, &CloseSessionByHandle(handle));
    }
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}

/// The exchange over any ipmi-rs connection, with its error classified.
fn exchange_over<C: IpmiConnection>(
    conn: &mut C,
    request: &Request,
    classify: impl Fn(C::Error) -> LinkError,
) -> Result<Reply, LinkError> {
    let mut req = IpmiRequest::new(
        Message::new_raw(request.netfn, request.cmd, request.data.clone()),
        RequestTargetAddress::Bmc(LogicalUnit::Zero),
    );
    let response = catch_unwind(AssertUnwindSafe(|| conn.send_recv(&mut req)))
        .map_err(|p| LinkError::Panicked(panic_message(p)))?
        .map_err(classify)?;
    // Compare raw netfns: a response's netfn is the request's + 1, which
    // ipmi-rs's `NetFn` cannot express for group extensions (DCMI).
    if response.netfn_raw() != (request.netfn | 1) || response.cmd() != request.cmd {
        return Err(LinkError::Mismatch {
            netfn: response.netfn_raw(),
            cmd: response.cmd(),
        });
    }
    Ok(Reply {
        cc: response.cc(),
        data: response.data().to_vec(),
    })
}

fn io_error(e: &std::io::Error, timeout: Duration) -> LinkError {
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            LinkError::Timeout(timeout)
        }
        _ => LinkError::Io(e.to_string()),
    }
}

/// An RMCP+ session to a remote BMC.
pub struct RmcpLink {
    rmcp: Rmcp,
    timeout: Duration,
}

impl std::fmt::Debug for RmcpLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RmcpLink").finish_non_exhaustive()
    }
}

impl RmcpLink {
    /// Opens a session; `timeout` bounds every datagram wait.
    pub fn open(
        host: &str,
        port: u16,
        username: &str,
        password: &[u8],
        timeout: Duration,
    ) -> Result<RmcpLink, LinkError> {
        let mut rmcp =
            Rmcp::new((host, port), timeout).map_err(|e| LinkError::Io(e.to_string()))?;
        catch_unwind(AssertUnwindSafe(|| {
            rmcp.activate(true, Some(username), Some(password))
        }))
        .map_err(|p| LinkError::Panicked(panic_message(p)))?
        .map_err(|e| activation_error(e, timeout))?;
        Ok(RmcpLink { rmcp, timeout })
    }
}

fn receive_error(e: &RmcpIpmiReceiveError, timeout: Duration) -> Option<LinkError> {
    match e {
        RmcpIpmiReceiveError::Io(io) => Some(io_error(io, timeout)),
        _ => None,
    }
}

fn activation_error(e: ActivationError, timeout: Duration) -> LinkError {
    use V2_0ActivationError as V2;
    match &e {
        ActivationError::PongReceive(io) | ActivationError::PingSend(io) => io_error(io, timeout),
        ActivationError::V2_0(
            V2::OpenSessionResponseReceive(r)
            | V2::RakpMessage2Receive(r)
            | V2::RakpMessage4Receive(r),
        ) => receive_error(r, timeout).unwrap_or_else(|| LinkError::Session(format!("{e:?}"))),
        // RAKP 2 and 4 carry the BMC's verdict on the user and the password;
        // a failed check of its key exchange code means another password.
        ActivationError::V2_0(
            V2::RakpMessage2Parse(_)
            | V2::RakpMessage2Validate(_)
            | V2::RakpMessage4Parse(_)
            | V2::RakpMessage4Validate(_)
            | V2::RakpMessage4InvalidIntegrityCheckValue
            | V2::ServerAuthenticationFailed,
        ) => LinkError::Auth(format!("{e:?}")),
        _ => LinkError::Session(format!("{e:?}")),
    }
}

impl Link for RmcpLink {
    fn exchange(&mut self, request: &Request) -> Result<Reply, LinkError> {
        let timeout = self.timeout;
        exchange_over(&mut self.rmcp, request, |e: RmcpIpmiError| match &e {
            RmcpIpmiError::Receive(r) => {
                receive_error(r, timeout).unwrap_or_else(|| LinkError::Session(format!("{e:?}")))
            }
            _ => LinkError::Session(format!("{e:?}")),
        })
    }
}

/// The in-band path: this machine's BMC through the kernel's IPMI driver.
///
/// Thin on purpose: it cannot be exercised without `/dev/ipmi0` (not on the
/// test VMs), so everything above it is shared with the RMCP+ path.
pub struct LocalLink {
    file: ipmi_rs::File,
    timeout: Duration,
}

impl std::fmt::Debug for LocalLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalLink").finish_non_exhaustive()
    }
}

/// The kernel IPMI device.
pub const LOCAL_DEVICE: &str = "/dev/ipmi0";

impl LocalLink {
    pub fn open(timeout: Duration) -> Result<LocalLink, LinkError> {
        let file = ipmi_rs::File::new(LOCAL_DEVICE, timeout)
            .map_err(|e| LinkError::Io(format!("{LOCAL_DEVICE}: {e}")))?;
        Ok(LocalLink { file, timeout })
    }
}

impl Link for LocalLink {
    fn exchange(&mut self, request: &Request) -> Result<Reply, LinkError> {
        let timeout = self.timeout;
        exchange_over(&mut self.file, request, |e| io_error(&e, timeout))
    }
}
