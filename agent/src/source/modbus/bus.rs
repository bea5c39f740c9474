//! A bus: one link (a TCP connection or a serial line) shared by the units
//! behind it. Each unit is read by its own task (the shared device layer);
//! the bus's lock keeps one request outstanding, so units on one bus take
//! turns while separate buses run in parallel.

use std::io;

use rand::SeedableRng;
use sitewatch_modbus_profile::{RegisterImage, Table};
use tokio::time::Instant;
use tokio_modbus::{
    ExceptionCode, Slave,
    client::{Context, Reader},
    prelude::SlaveContext,
};

use super::config::ModbusAddress;
use super::{
    device::{Device, Outcome},
    transport,
};
use crate::backoff::Backoff;

/// What a block read returned.
enum Block {
    Words(Vec<u16>),
    Bits(Vec<bool>),
}

/// One link and its reconnect state, shared by the units behind it (each unit
/// is read by its own task; the lock keeps one request outstanding).
pub struct Bus {
    pub address: ModbusAddress,
    link: Option<Context>,
    backoff: Backoff,
    retry_at: Option<Instant>,
    rng: rand::rngs::StdRng,
}

/// A bus as the units share it.
pub type SharedBus = std::sync::Arc<tokio::sync::Mutex<Bus>>;

impl std::fmt::Debug for Bus {
    // tokio-modbus's Context has no Debug; whether a link is open is enough.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus")
            .field("address", &self.address)
            .field("linked", &self.link.is_some())
            .field("retry_at", &self.retry_at)
            .finish_non_exhaustive()
    }
}

impl Bus {
    pub fn new(address: ModbusAddress) -> Self {
        Bus {
            address,
            link: None,
            backoff: Backoff::new(
                std::time::Duration::from_millis(500),
                std::time::Duration::from_secs(30),
            ),
            retry_at: None,
            rng: rand::rngs::StdRng::from_os_rng(),
        }
    }

    fn failed_link(&mut self) {
        self.link = None;
        let delay = self.backoff.next_delay(&mut self.rng);
        self.retry_at = Some(Instant::now() + delay);
    }

    /// Reads every block of `device`'s plan into `image`.
    pub async fn read_device(&mut self, device: &mut Device, image: &mut RegisterImage) -> Outcome {
        let (unit, timeout) = (device.unit, device.timeout);
        if self.link.is_none() {
            if self.retry_at.is_some_and(|t| Instant::now() < t) {
                return Outcome::Backoff;
            }
            match tokio::time::timeout(timeout, transport::connect(&self.address, unit)).await {
                Ok(Ok(link)) => {
                    self.link = Some(link);
                    self.retry_at = None;
                }
                Ok(Err(err)) => {
                    tracing::debug!(address = %self.address, error = %err, "modbus connect failed");
                    self.failed_link();
                    return Outcome::Transport;
                }
                Err(_) => {
                    self.failed_link();
                    return Outcome::Timeout;
                }
            }
        }
        let mut block_index = 0;
        while block_index < device.plan.len() {
            let block = device.plan.blocks()[block_index].clone();
            let Some(link) = self.link.as_mut() else {
                return Outcome::Transport;
            };
            link.set_slave(Slave(unit));
            let read = tokio::time::timeout(
                timeout,
                read_block(link, block.table, block.address, block.count),
            )
            .await;
            match read {
                Ok(Ok(Ok(Block::Words(words)))) => {
                    image.set_words(block.table, block.address, &words)
                }
                Ok(Ok(Ok(Block::Bits(bits)))) => image.set_bits(block.table, block.address, &bits),
                Ok(Ok(Err(code))) => {
                    device.exception();
                    // Illegal data address: the block spans something this
                    // device lacks. Halve it and read the halves now; the
                    // corrected plan is kept for the next polls.
                    if code == ExceptionCode::IllegalDataAddress
                        && device.plan.split(block_index).is_ok()
                    {
                        tracing::info!(device = %device.name, address = block.address, count = block.count, "split a refused read");
                        continue;
                    }
                    tracing::debug!(device = %device.name, exception = ?code, address = block.address, "modbus exception");
                }
                Ok(Err(err)) => {
                    tracing::debug!(address = %self.address, error = %err, "modbus transport error");
                    self.failed_link();
                    return Outcome::Transport;
                }
                Err(_) => {
                    // The answer may still arrive. On TCP it would be taken for
                    // the next one's; on RTU it would garble the line: start
                    // over with a fresh link (an RTU line is drained first). No
                    // backoff: the next unit on the bus may be alive.
                    self.link = None;
                    return Outcome::Timeout;
                }
            }
            block_index += 1;
        }
        self.backoff.reset();
        Outcome::Read
    }
}

async fn read_block(
    link: &mut Context,
    table: Table,
    address: u16,
    count: u16,
) -> Result<Result<Block, ExceptionCode>, io::Error> {
    let result = match table {
        Table::Coil => link
            .read_coils(address, count)
            .await
            .map(|r| r.map(Block::Bits)),
        Table::Discrete => link
            .read_discrete_inputs(address, count)
            .await
            .map(|r| r.map(Block::Bits)),
        Table::Holding => link
            .read_holding_registers(address, count)
            .await
            .map(|r| r.map(Block::Words)),
        Table::Input => link
            .read_input_registers(address, count)
            .await
            .map(|r| r.map(Block::Words)),
    };
    match result {
        Ok(Ok(Block::Bits(mut bits))) => {
            // Bits come in whole bytes: keep the ones asked for.
            bits.truncate(usize::from(count));
            Ok(Ok(Block::Bits(bits)))
        }
        Ok(Ok(Block::Words(words))) if words.len() != usize::from(count) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("asked for {count} registers, got {}", words.len()),
        )),
        Ok(other) => Ok(other),
        Err(tokio_modbus::Error::Transport(e)) => Err(e),
        Err(tokio_modbus::Error::Protocol(e)) => {
            Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
        }
    }
}
