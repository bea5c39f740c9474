//! The shared queue: every message once, with a delivery state per broker. Pure:
//! no I/O, no clock (the payload bytes live elsewhere, see [`Payload`]).
//!
//! Each record carries a bit per broker still waiting for it (`pending`) and a
//! bit per broker that has it on the wire (`in_flight`). A broker sends its
//! pending records oldest first, at most `window` at a time; its PUBACK clears
//! its bit; a record nobody waits for any more is done (its payload is released,
//! and the record leaves once everything before it is done too). So one broker's
//! backlog costs the other nothing: a record acknowledged by broker A and still
//! waiting for broker B is skipped by A's scan.
//!
//! When a bound is hit the store drops records ([`Queue::drop_oldest`],
//! [`Queue::drop_range`]); a dropped record is lost for every broker still
//! waiting for it, and counted for each. A record dropped while a broker has it
//! in flight is counted as published if its PUBACK comes, as dropped if the
//! connection dies first.
//!
//! rumqttc reports `Outgoing::Publish(pkid)` in the order publishes were handed
//! to it, so a broker binds each pkid to the oldest publish still waiting for
//! one ([`Queue::on_outgoing_publish`]). A disconnect puts everything in flight
//! back to pending: it is sent again, oldest first, after the next CONNACK.

use std::{collections::VecDeque, sync::Arc};

use super::{Acked, Control};

/// Brokers one queue can serve (one bit each).
pub const MAX_BROKERS: usize = 16;

/// A broker's number in the queue: its position in the configuration.
pub type BrokerId = usize;

/// Where a record's payload is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    Memory(Arc<[u8]>),
    /// In the disk log: segment (its first index) and the payload's offset.
    Disk {
        segment: u64,
        offset: u64,
    },
    /// Done or dropped: released.
    Gone,
}

/// One message of the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The queue's own number: increasing, unique across restarts with a disk log.
    pub index: u64,
    pub topic: Arc<str>,
    /// The message's `seq` (readings and events count separately).
    pub seq: u64,
    /// Readings carried, for the published-readings counters.
    pub readings: u32,
    /// Payload bytes.
    pub len: u32,
    pub payload: Payload,
    pending: u16,
    in_flight: u16,
}

impl Record {
    pub fn new(
        index: u64,
        topic: Arc<str>,
        seq: u64,
        readings: u32,
        len: u32,
        payload: Payload,
    ) -> Self {
        Record {
            index,
            topic,
            seq,
            readings,
            len,
            payload,
            pending: 0,
            in_flight: 0,
        }
    }

    /// Whether some broker still waits for it.
    pub fn is_live(&self) -> bool {
        self.pending != 0
    }

    fn in_flight_anywhere(&self) -> bool {
        self.in_flight != 0
    }
}

/// What one broker has been through, for its self-metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryStats {
    /// Records this broker still waits for, in flight included.
    pub pending_messages: u64,
    pub pending_bytes: u64,
    pub in_flight: usize,
    pub published_messages: u64,
    pub published_readings: u64,
    /// Records dropped (buffer full) before this broker acknowledged them.
    pub dropped_messages: u64,
    pub dropped_readings: u64,
    /// In-flight messages put back by a disconnect.
    pub requeued_messages: u64,
}

/// The whole queue's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Records some broker still waits for.
    pub messages: usize,
    /// Payload bytes of those held in memory.
    pub memory_bytes: usize,
    /// Records dropped while some broker still waited for them.
    pub dropped_messages: u64,
    pub dropped_readings: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    Record(u64),
    Control(Control),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct InFlight {
    index: u64,
    /// `None` until rumqttc reports the publish's pkid.
    pkid: Option<u16>,
    seq: u64,
    readings: u32,
}

#[derive(Debug, Default)]
struct Delivery {
    connected: bool,
    /// No record below this index is waiting to be sent on this connection.
    next: u64,
    /// Lowest index that may still be pending for this broker (only grows).
    floor: u64,
    in_flight: VecDeque<InFlight>,
    awaiting_pkid: VecDeque<Tag>,
    control_pkids: Vec<(u16, Control)>,
    stats: DeliveryStats,
}

/// The queue; see the module documentation.
#[derive(Debug)]
pub struct Queue {
    /// Ordered by index; indices may have holes (records lost with a crash).
    records: VecDeque<Record>,
    next_index: u64,
    brokers: Vec<Delivery>,
    all: u16,
    window: usize,
    live: usize,
    memory_bytes: usize,
    stats: QueueStats,
    /// Disk segments of records released since the last [`Queue::take_released`].
    released: Vec<u64>,
}

impl Queue {
    /// A queue for `brokers` brokers (at most [`MAX_BROKERS`]), each with at most
    /// `window` messages in flight; indices start at `first_index`.
    pub fn new(brokers: usize, window: usize, first_index: u64) -> Self {
        let brokers = brokers.clamp(1, MAX_BROKERS);
        Queue {
            records: VecDeque::new(),
            next_index: first_index,
            brokers: (0..brokers)
                .map(|_| Delivery {
                    next: first_index,
                    floor: first_index,
                    ..Delivery::default()
                })
                .collect(),
            all: u16::MAX >> (16 - brokers),
            window: window.max(1),
            live: 0,
            memory_bytes: 0,
            stats: QueueStats::default(),
            released: Vec::new(),
        }
    }

    pub fn brokers(&self) -> usize {
        self.brokers.len()
    }

    /// The index the next pushed record gets.
    pub fn next_index(&self) -> u64 {
        self.next_index
    }

    /// No index below `index` will be used (recovered cursors said so).
    pub fn reserve_to(&mut self, index: u64) {
        self.next_index = self.next_index.max(index);
    }

    /// Adds a record for every broker; returns its index.
    pub fn push(
        &mut self,
        topic: Arc<str>,
        seq: u64,
        readings: u32,
        len: u32,
        payload: Payload,
    ) -> u64 {
        let index = self.next_index;
        let all = self.all;
        self.insert(Record::new(index, topic, seq, readings, len, payload), all);
        index
    }

    /// Adds a record recovered from disk with its own index, for the brokers in
    /// `pending` (bit = broker id). Indices must increase.
    pub fn push_recovered(&mut self, record: Record, pending: u16) {
        if record.index < self.next_index || pending & self.all == 0 {
            return;
        }
        let pending = pending & self.all;
        self.insert(record, pending);
    }

    fn insert(&mut self, mut record: Record, pending: u16) {
        record.pending = pending;
        record.in_flight = 0;
        self.next_index = record.index + 1;
        if let Payload::Memory(_) = record.payload {
            self.memory_bytes += record.len as usize;
        }
        for (b, d) in self.brokers.iter_mut().enumerate() {
            if pending & (1 << b) != 0 {
                d.stats.pending_messages += 1;
                d.stats.pending_bytes += u64::from(record.len);
            }
        }
        self.live += 1;
        self.records.push_back(record);
    }

    fn position(&self, index: u64) -> Option<usize> {
        self.records.binary_search_by_key(&index, |r| r.index).ok()
    }

    /// The record with this index, if it is still held.
    pub fn get(&self, index: u64) -> Option<&Record> {
        self.position(index).and_then(|i| self.records.get(i))
    }

    /// Whether every broker is done with the record (acknowledged or dropped).
    pub fn is_done(&self, index: u64) -> bool {
        self.get(index).is_none_or(|r| !r.is_live())
    }

    /// The live records, oldest first.
    pub fn live_records(&self) -> impl Iterator<Item = &Record> {
        self.records.iter().filter(|r| r.is_live())
    }

    /// Disk segments whose records were released since the last call (one entry
    /// per record), for the log to delete segments nobody needs.
    pub fn take_released(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.released)
    }

    /// Drops the oldest live record not in flight for any broker and not the
    /// newest, among those `eligible` accepts. Returns whether one was dropped.
    pub fn drop_oldest(&mut self, eligible: impl Fn(&Record) -> bool) -> bool {
        let newest = self.next_index.saturating_sub(1);
        let found = self.records.iter().position(|r| {
            r.is_live() && !r.in_flight_anywhere() && r.index != newest && eligible(r)
        });
        match found {
            Some(i) => {
                self.drop_at(i);
                self.compact();
                true
            }
            None => false,
        }
    }

    /// Drops every live record with an index in `first..=last` that `eligible`
    /// accepts, in flight or not (its payload is going away: a deleted segment).
    pub fn drop_range(
        &mut self,
        first: u64,
        last: u64,
        eligible: impl Fn(&Record) -> bool,
    ) -> usize {
        let start = self.records.partition_point(|r| r.index < first);
        let mut dropped = 0;
        let mut i = start;
        while let Some(r) = self.records.get(i) {
            if r.index > last {
                break;
            }
            if r.is_live() && eligible(r) {
                self.drop_at(i);
                dropped += 1;
            }
            i += 1;
        }
        self.compact();
        dropped
    }

    fn drop_at(&mut self, i: usize) {
        let Some(r) = self.records.get(i) else {
            return;
        };
        let (pending, in_flight, len, readings) = (r.pending, r.in_flight, r.len, r.readings);
        for (b, d) in self.brokers.iter_mut().enumerate() {
            let bit = 1 << b;
            if pending & bit == 0 {
                continue;
            }
            d.stats.pending_messages -= 1;
            d.stats.pending_bytes -= u64::from(len);
            // In flight: its PUBACK or the connection's end will tell.
            if in_flight & bit == 0 {
                d.stats.dropped_messages += 1;
                d.stats.dropped_readings += u64::from(readings);
            }
        }
        self.stats.dropped_messages += 1;
        self.stats.dropped_readings += u64::from(readings);
        self.release(i);
    }

    /// The record at `i` is done: its payload goes.
    fn release(&mut self, i: usize) {
        let Some(r) = self.records.get_mut(i) else {
            return;
        };
        r.pending = 0;
        r.in_flight = 0;
        match std::mem::replace(&mut r.payload, Payload::Gone) {
            Payload::Memory(_) => self.memory_bytes -= r.len as usize,
            Payload::Disk { segment, .. } => self.released.push(segment),
            Payload::Gone => {}
        }
        self.live -= 1;
    }

    /// Forgets done records at the front.
    fn compact(&mut self) {
        while self.records.front().is_some_and(|r| !r.is_live()) {
            self.records.pop_front();
        }
    }

    /// The lowest index this broker may still wait for: every record below it
    /// is acknowledged (or dropped). Persisted by the disk log.
    pub fn floor(&mut self, b: BrokerId) -> u64 {
        let bit = 1u16 << b;
        let Some(d) = self.brokers.get(b) else {
            return self.next_index;
        };
        let start = self.records.partition_point(|r| r.index < d.floor);
        let floor = self
            .records
            .iter()
            .skip(start)
            .find(|r| r.pending & bit != 0)
            .map_or(self.next_index, |r| r.index);
        if let Some(d) = self.brokers.get_mut(b) {
            d.floor = floor;
        }
        floor
    }

    pub fn stats(&self) -> QueueStats {
        QueueStats {
            messages: self.live,
            memory_bytes: self.memory_bytes,
            ..self.stats
        }
    }

    pub fn delivery_stats(&self, b: BrokerId) -> DeliveryStats {
        self.brokers
            .get(b)
            .map_or_else(DeliveryStats::default, |d| DeliveryStats {
                in_flight: d.in_flight.len(),
                ..d.stats
            })
    }

    /// Whether this broker has nothing left to send or acknowledge.
    pub fn is_drained(&self, b: BrokerId) -> bool {
        self.brokers
            .get(b)
            .is_none_or(|d| d.stats.pending_messages == 0 && d.in_flight.is_empty())
    }

    // --- one broker's connection ---

    /// A CONNACK arrived: publishing may start.
    pub fn connected(&mut self, b: BrokerId) {
        if let Some(d) = self.brokers.get_mut(b) {
            d.connected = true;
        }
    }

    pub fn is_connected(&self, b: BrokerId) -> bool {
        self.brokers.get(b).is_some_and(|d| d.connected)
    }

    /// The connection is gone: what was in flight is pending again, in order.
    pub fn disconnected(&mut self, b: BrokerId) {
        let bit = 1u16 << b;
        let Some(d) = self.brokers.get_mut(b) else {
            return;
        };
        d.connected = false;
        let in_flight = std::mem::take(&mut d.in_flight);
        d.awaiting_pkid.clear();
        d.control_pkids.clear();
        let mut requeued = 0;
        let mut lost = (0, 0);
        for f in in_flight {
            match self.position(f.index).and_then(|i| self.records.get_mut(i)) {
                Some(r) if r.pending & bit != 0 => {
                    r.in_flight &= !bit;
                    requeued += 1;
                }
                // Dropped while in flight: it will not be sent again.
                _ => {
                    lost.0 += 1;
                    lost.1 += u64::from(f.readings);
                }
            }
        }
        let head = self.records.front().map_or(self.next_index, |r| r.index);
        if let Some(d) = self.brokers.get_mut(b) {
            d.next = head;
            d.stats.requeued_messages += requeued;
            d.stats.dropped_messages += lost.0;
            d.stats.dropped_readings += lost.1;
        }
    }

    /// The next record to publish to this broker, if connected and its window
    /// has room: the oldest pending one not in flight.
    pub fn next_unsent(&mut self, b: BrokerId) -> Option<u64> {
        let bit = 1u16 << b;
        let window = self.window;
        let d = self.brokers.get(b)?;
        if !d.connected || d.in_flight.len() >= window {
            return None;
        }
        let start = self.records.partition_point(|r| r.index < d.next);
        let found = self
            .records
            .iter()
            .skip(start)
            .find(|r| r.pending & bit != 0 && r.in_flight & bit == 0)
            .map(|r| r.index);
        let next = found.unwrap_or(self.next_index);
        if let Some(d) = self.brokers.get_mut(b) {
            d.next = next;
        }
        found
    }

    /// The record [`Queue::next_unsent`] returned was handed to the client.
    pub fn mark_sent(&mut self, b: BrokerId, index: u64) {
        let bit = 1u16 << b;
        let Some(r) = self.position(index).and_then(|i| self.records.get_mut(i)) else {
            return;
        };
        r.in_flight |= bit;
        let entry = InFlight {
            index,
            pkid: None,
            seq: r.seq,
            readings: r.readings,
        };
        if let Some(d) = self.brokers.get_mut(b) {
            d.in_flight.push_back(entry);
            d.awaiting_pkid.push_back(Tag::Record(index));
            d.next = index + 1;
        }
    }

    /// The record could not be handed over (its payload is unreadable): drop it.
    pub fn drop_record(&mut self, index: u64) {
        if let Some(i) = self.position(index)
            && self.records.get(i).is_some_and(Record::is_live)
        {
            self.drop_at(i);
            self.compact();
        }
    }

    /// A control publish (QoS 1, not queued) was handed to the client.
    pub fn control_sent(&mut self, b: BrokerId, control: Control) {
        if let Some(d) = self.brokers.get_mut(b) {
            d.awaiting_pkid.push_back(Tag::Control(control));
        }
    }

    /// rumqttc sent a QoS 1 publish with this pkid: the oldest one handed over.
    pub fn on_outgoing_publish(&mut self, b: BrokerId, pkid: u16) {
        let Some(d) = self.brokers.get_mut(b) else {
            return;
        };
        match d.awaiting_pkid.pop_front() {
            Some(Tag::Record(index)) => {
                if let Some(f) = d
                    .in_flight
                    .iter_mut()
                    .find(|f| f.index == index && f.pkid.is_none())
                {
                    f.pkid = Some(pkid);
                }
            }
            Some(Tag::Control(control)) => d.control_pkids.push((pkid, control)),
            None => {}
        }
    }

    /// The broker acknowledged `pkid`.
    pub fn on_puback(&mut self, b: BrokerId, pkid: u16) -> Acked {
        let bit = 1u16 << b;
        let Some(d) = self.brokers.get_mut(b) else {
            return Acked::Unknown;
        };
        if let Some(pos) = d.in_flight.iter().position(|f| f.pkid == Some(pkid)) {
            let Some(f) = d.in_flight.remove(pos) else {
                return Acked::Unknown;
            };
            d.stats.published_messages += 1;
            d.stats.published_readings += u64::from(f.readings);
            if let Some(i) = self.position(f.index)
                && let Some(r) = self.records.get_mut(i)
                && r.pending & bit != 0
            {
                r.pending &= !bit;
                r.in_flight &= !bit;
                let (len, done) = (r.len, r.pending == 0);
                if let Some(d) = self.brokers.get_mut(b) {
                    d.stats.pending_messages -= 1;
                    d.stats.pending_bytes -= u64::from(len);
                }
                if done {
                    self.release(i);
                    self.compact();
                }
            }
            return Acked::Message {
                index: f.index,
                seq: f.seq,
                readings: f.readings as usize,
            };
        }
        if let Some(i) = d.control_pkids.iter().position(|(p, _)| *p == pkid) {
            let (_, control) = d.control_pkids.swap_remove(i);
            return Acked::Control(control);
        }
        Acked::Unknown
    }
}

#[cfg(test)]
mod tests;
