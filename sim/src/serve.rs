//! Serving simulated devices over Modbus TCP and RTU with tokio-modbus's server.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;

use tokio::net::TcpListener;
use tokio_modbus::server::Service;
use tokio_modbus::{ExceptionCode, Response, SlaveRequest};

use crate::device::SimDevice;
use crate::fault::Fault;

/// The devices behind one listener or one serial line; each answers its own
/// unit id, so several units can share an RS-485 bus as in a real site.
#[derive(Debug, Clone)]
pub struct SimService {
    devices: Vec<SimDevice>,
}

impl SimService {
    pub fn new(devices: Vec<SimDevice>) -> Self {
        SimService { devices }
    }

    fn device_for(&self, unit: u8) -> Option<&SimDevice> {
        match self.devices.as_slice() {
            // A lone device also answers the broadcast and "any" ids.
            [only] => Some(only),
            many => many.iter().find(|d| d.unit() == unit),
        }
    }
}

type Answer = Result<Option<Response>, ExceptionCode>;

impl Service for SimService {
    type Request = SlaveRequest<'static>;
    type Response = Option<Response>;
    type Exception = ExceptionCode;
    type Future = Pin<Box<dyn Future<Output = Answer> + Send>>;

    fn call(&self, req: Self::Request) -> Self::Future {
        let device = self.device_for(req.slave).cloned();
        Box::pin(async move {
            let Some(device) = device else {
                return Ok(None);
            };
            if let Fault::Slow(delay) = device.fault() {
                tokio::time::sleep(delay).await;
            }
            device.answer(req.slave, &req.request)
        })
    }
}

/// Serves Modbus TCP on an already bound listener until the task is dropped.
pub async fn serve_tcp(listener: TcpListener, service: SimService) -> io::Result<()> {
    let server = tokio_modbus::server::tcp::Server::new(listener);
    let on_connected = move |stream, _peer: SocketAddr| {
        let service = service.clone();
        async move { io::Result::Ok(Some((service, stream))) }
    };
    let on_process_error = |err: io::Error| {
        tracing::debug!(error = %err, "modbus connection ended");
    };
    server.serve(&on_connected, on_process_error).await
}

/// Serves Modbus RTU on a serial device (or one end of a socat pty pair).
pub async fn serve_rtu(path: &str, baud: u32, service: SimService) -> io::Result<()> {
    let serial = tokio_serial::SerialStream::open(&tokio_serial::new(path, baud))?;
    tokio_modbus::server::rtu::Server::new(serial)
        .serve_forever(service)
        .await
}
