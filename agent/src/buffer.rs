//! The store-and-forward buffer: encoded readings and events messages kept until the broker
//! acknowledges them. A pure state machine, no I/O (as rumqttc's `state.rs`).
//!
//! rumqttc forgets in-flight messages when it reconnects without a resumed
//! session, so this buffer, not rumqttc, owns delivery: a message leaves only when
//! its PUBACK arrives. The publisher drives it:
//!
//! - [`Buffer::push`] a new message (the oldest unsent one is dropped when a bound is hit);
//! - on CONNACK [`Buffer::connected`]; then, while [`Buffer::next_unsent`] yields a
//!   message (at most `window` are in flight), publish it and [`Buffer::mark_sent`];
//!   [`Buffer::control_sent`] for the publishes that are not buffered (state);
//! - rumqttc reports `Outgoing::Publish(pkid)` in the order the publishes were
//!   handed to it: [`Buffer::on_outgoing_publish`] binds each pkid to its message;
//! - `Incoming::PubAck(pkid)`: [`Buffer::on_puback`] removes the message;
//! - on a connection error [`Buffer::disconnected`]: every in-flight message goes
//!   back to unsent, to be published again, oldest first, after the next CONNACK.
//!   Some may then arrive twice; the collector drops duplicates by `(boot, seq)`.
//!
//! In-flight messages always form a prefix of the queue (they are sent oldest
//! first, and removing any of them keeps the rest in order), so putting them back
//! is only a matter of forgetting that they were sent.

use std::{collections::VecDeque, sync::Arc};

/// One encoded message waiting for delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub topic: Arc<str>,
    /// The message's `seq` (readings and events count separately).
    pub seq: u64,
    pub payload: Vec<u8>,
    /// How many readings it carries, for the published-readings counter.
    pub readings: usize,
}

/// A publish that is not buffered: acknowledged or lost with the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// The retained online state sent after each CONNACK.
    Birth,
    /// The retained offline/shutdown state sent on a clean stop.
    Shutdown,
}

/// What a PUBACK acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acked {
    Message {
        seq: u64,
        readings: usize,
    },
    Control(Control),
    /// A pkid this buffer does not know (a PUBACK from before a reconnect).
    Unknown,
}

/// Bounds of the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Messages kept at most, in flight included.
    pub max_messages: usize,
    /// Payload bytes kept at most, in flight included.
    pub max_bytes: usize,
    /// Messages in flight (published, not yet acknowledged) at most.
    pub window: usize,
}

/// Counters and gauges for the self-metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub messages: usize,
    pub bytes: usize,
    pub in_flight: usize,
    pub dropped_messages: u64,
    pub dropped_readings: u64,
    pub published_messages: u64,
    pub published_readings: u64,
    /// In-flight messages put back by a disconnect.
    pub requeued_messages: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    Message(u64),
    Control(Control),
}

#[derive(Debug)]
struct Entry {
    /// The buffer's own number for the message: readings and events messages
    /// have separate `seq` counters, so `seq` alone does not name an entry.
    id: u64,
    message: Message,
    /// `None` while unsent; `Some(None)` when handed to the client but its pkid
    /// is not known yet; `Some(Some(pkid))` once rumqttc has sent it.
    sent: Option<Option<u16>>,
}

/// The buffer; see the module documentation.
#[derive(Debug)]
pub struct Buffer {
    limits: Limits,
    /// Oldest first; the first `in_flight` entries are in flight.
    entries: VecDeque<Entry>,
    in_flight: usize,
    bytes: usize,
    connected: bool,
    /// Publishes handed to the client whose `Outgoing::Publish` has not come yet.
    awaiting_pkid: VecDeque<Tag>,
    /// Control publishes sent and not yet acknowledged.
    control_pkids: Vec<(u16, Control)>,
    next_id: u64,
    stats: Stats,
}

impl Buffer {
    pub fn new(limits: Limits) -> Self {
        Buffer {
            limits: Limits {
                window: limits.window.max(1),
                ..limits
            },
            entries: VecDeque::new(),
            in_flight: 0,
            bytes: 0,
            connected: false,
            awaiting_pkid: VecDeque::new(),
            control_pkids: Vec::new(),
            next_id: 0,
            stats: Stats::default(),
        }
    }

    /// Adds a message, dropping the oldest unsent ones while a bound is exceeded.
    ///
    /// In-flight messages are not dropped: they are on the wire and about to be
    /// acknowledged, and the window bounds them. While disconnected nothing is in
    /// flight, so the oldest message is the one dropped.
    pub fn push(&mut self, message: Message) {
        self.bytes += message.payload.len();
        self.next_id += 1;
        self.entries.push_back(Entry {
            id: self.next_id,
            message,
            sent: None,
        });
        while (self.entries.len() > self.limits.max_messages || self.bytes > self.limits.max_bytes)
            && self.entries.len() > self.in_flight + 1
        {
            if let Some(dropped) = self.entries.remove(self.in_flight) {
                self.bytes -= dropped.message.payload.len();
                self.stats.dropped_messages += 1;
                self.stats.dropped_readings += dropped.message.readings as u64;
            }
        }
    }

    /// A CONNACK arrived: publishing may start.
    pub fn connected(&mut self) {
        self.connected = true;
    }

    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// The connection is gone: everything in flight becomes unsent again, in order.
    pub fn disconnected(&mut self) {
        self.connected = false;
        for entry in self.entries.iter_mut().take(self.in_flight) {
            entry.sent = None;
        }
        self.stats.requeued_messages += self.in_flight as u64;
        self.in_flight = 0;
        self.awaiting_pkid.clear();
        self.control_pkids.clear();
    }

    /// The next message to publish, if connected and the window has room.
    pub fn next_unsent(&self) -> Option<&Message> {
        if !self.connected || self.in_flight >= self.limits.window {
            return None;
        }
        self.entries.get(self.in_flight).map(|e| &e.message)
    }

    /// The message [`Buffer::next_unsent`] returned was handed to the client.
    pub fn mark_sent(&mut self) {
        if let Some(entry) = self.entries.get_mut(self.in_flight) {
            entry.sent = Some(None);
            self.awaiting_pkid.push_back(Tag::Message(entry.id));
            self.in_flight += 1;
        }
    }

    /// A control publish (QoS 1) was handed to the client.
    pub fn control_sent(&mut self, control: Control) {
        self.awaiting_pkid.push_back(Tag::Control(control));
    }

    /// rumqttc sent a QoS 1 publish with this pkid: the oldest one handed over.
    pub fn on_outgoing_publish(&mut self, pkid: u16) {
        match self.awaiting_pkid.pop_front() {
            Some(Tag::Message(id)) => {
                if let Some(entry) = self
                    .entries
                    .iter_mut()
                    .take(self.in_flight)
                    .find(|e| e.id == id)
                {
                    entry.sent = Some(Some(pkid));
                }
            }
            Some(Tag::Control(control)) => self.control_pkids.push((pkid, control)),
            None => {}
        }
    }

    /// The broker acknowledged `pkid`.
    pub fn on_puback(&mut self, pkid: u16) -> Acked {
        let found = self
            .entries
            .iter()
            .take(self.in_flight)
            .position(|e| e.sent == Some(Some(pkid)));
        if let Some(index) = found
            && let Some(entry) = self.entries.remove(index)
        {
            self.in_flight -= 1;
            self.bytes -= entry.message.payload.len();
            self.stats.published_messages += 1;
            self.stats.published_readings += entry.message.readings as u64;
            return Acked::Message {
                seq: entry.message.seq,
                readings: entry.message.readings,
            };
        }
        if let Some(index) = self.control_pkids.iter().position(|(p, _)| *p == pkid) {
            let (_, control) = self.control_pkids.swap_remove(index);
            return Acked::Control(control);
        }
        Acked::Unknown
    }

    pub fn stats(&self) -> Stats {
        Stats {
            messages: self.entries.len(),
            bytes: self.bytes,
            in_flight: self.in_flight,
            ..self.stats
        }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_messages: usize, max_bytes: usize, window: usize) -> Limits {
        Limits {
            max_messages,
            max_bytes,
            window,
        }
    }

    fn msg(seq: u64, bytes: usize) -> Message {
        Message {
            topic: Arc::from("t"),
            seq,
            payload: vec![b'x'; bytes],
            readings: 2,
        }
    }

    fn seqs(buffer: &Buffer) -> Vec<u64> {
        buffer.entries.iter().map(|e| e.message.seq).collect()
    }

    /// Sends every message the window allows and binds pkids starting at `first_pkid`.
    fn send_all(buffer: &mut Buffer, first_pkid: u16) -> Vec<(u64, u16)> {
        let mut sent = Vec::new();
        let mut pkid = first_pkid;
        while let Some(m) = buffer.next_unsent() {
            let seq = m.seq;
            buffer.mark_sent();
            buffer.on_outgoing_publish(pkid);
            sent.push((seq, pkid));
            pkid += 1;
        }
        sent
    }

    #[test]
    fn nothing_is_sent_before_connack() {
        let mut b = Buffer::new(limits(10, 1000, 4));
        b.push(msg(1, 10));
        assert_eq!(b.next_unsent(), None);
        b.connected();
        assert_eq!(b.next_unsent().map(|m| m.seq), Some(1));
    }

    #[test]
    fn in_order_acks_empty_the_buffer_and_count_readings() {
        let mut b = Buffer::new(limits(10, 1000, 4));
        b.connected();
        for seq in 1..=3 {
            b.push(msg(seq, 10));
        }
        assert_eq!(send_all(&mut b, 1), vec![(1, 1), (2, 2), (3, 3)]);
        for pkid in 1..=3 {
            assert_eq!(
                b.on_puback(pkid),
                Acked::Message {
                    seq: u64::from(pkid),
                    readings: 2
                }
            );
        }
        let s = b.stats();
        assert!(b.is_empty());
        assert_eq!((s.messages, s.bytes, s.in_flight), (0, 0, 0));
        assert_eq!((s.published_messages, s.published_readings), (3, 6));
    }

    #[test]
    fn window_limits_messages_in_flight() {
        let mut b = Buffer::new(limits(10, 1000, 2));
        b.connected();
        for seq in 1..=5 {
            b.push(msg(seq, 10));
        }
        assert_eq!(send_all(&mut b, 1).len(), 2);
        assert_eq!(b.next_unsent(), None);
        b.on_puback(1);
        assert_eq!(b.next_unsent().map(|m| m.seq), Some(3));
    }

    #[test]
    fn out_of_order_acks_remove_the_right_messages() {
        let mut b = Buffer::new(limits(10, 1000, 4));
        b.connected();
        for seq in 1..=4 {
            b.push(msg(seq, 10));
        }
        send_all(&mut b, 10);
        assert_eq!(
            b.on_puback(12),
            Acked::Message {
                seq: 3,
                readings: 2
            }
        );
        assert_eq!(
            b.on_puback(10),
            Acked::Message {
                seq: 1,
                readings: 2
            }
        );
        assert_eq!(seqs(&b), vec![2, 4]);
        assert_eq!(b.stats().in_flight, 2);
        assert_eq!(b.on_puback(10), Acked::Unknown, "acked twice");
    }

    #[test]
    fn disconnect_requeues_in_flight_in_seq_order_before_newer_messages() {
        let mut b = Buffer::new(limits(10, 1000, 3));
        b.connected();
        for seq in 1..=5 {
            b.push(msg(seq, 10));
        }
        send_all(&mut b, 1); // 1, 2, 3 in flight
        b.on_puback(2);
        b.disconnected();
        assert_eq!(b.next_unsent(), None, "not while disconnected");
        b.push(msg(6, 10));
        b.connected();
        // The pkids of the old connection mean nothing now.
        assert_eq!(b.on_puback(1), Acked::Unknown);
        let resent: Vec<u64> = send_all(&mut b, 1).into_iter().map(|(s, _)| s).collect();
        assert_eq!(resent, vec![1, 3, 4]);
        let s = b.stats();
        assert_eq!(s.requeued_messages, 2);
        assert_eq!(s.published_messages, 1);
        assert_eq!(seqs(&b), vec![1, 3, 4, 5, 6]);
    }

    #[test]
    fn a_publish_handed_over_but_not_yet_sent_is_requeued_too() {
        let mut b = Buffer::new(limits(10, 1000, 3));
        b.connected();
        b.push(msg(1, 10));
        b.mark_sent(); // no Outgoing::Publish before the link died
        b.disconnected();
        b.connected();
        assert_eq!(b.next_unsent().map(|m| m.seq), Some(1));
        b.mark_sent();
        b.on_outgoing_publish(7);
        assert_eq!(
            b.on_puback(7),
            Acked::Message {
                seq: 1,
                readings: 2
            }
        );
    }

    #[test]
    fn full_by_count_drops_the_oldest() {
        let mut b = Buffer::new(limits(3, 1000, 2));
        for seq in 1..=5 {
            b.push(msg(seq, 10));
        }
        assert_eq!(seqs(&b), vec![3, 4, 5]);
        let s = b.stats();
        assert_eq!((s.dropped_messages, s.dropped_readings), (2, 4));
        assert_eq!((s.messages, s.bytes), (3, 30));
    }

    #[test]
    fn full_by_bytes_drops_the_oldest() {
        let mut b = Buffer::new(limits(100, 100, 2));
        b.push(msg(1, 40));
        b.push(msg(2, 40));
        b.push(msg(3, 40)); // 120 > 100: drop 1
        assert_eq!(seqs(&b), vec![2, 3]);
        b.push(msg(4, 90)); // 170: drop 2, 130: drop 3
        assert_eq!(seqs(&b), vec![4]);
        assert_eq!(b.stats().bytes, 90);
        assert_eq!(b.stats().dropped_messages, 3);
    }

    #[test]
    fn dropping_skips_messages_in_flight() {
        let mut b = Buffer::new(limits(3, 1000, 2));
        b.connected();
        for seq in 1..=3 {
            b.push(msg(seq, 10));
        }
        send_all(&mut b, 1); // 1 and 2 in flight
        b.push(msg(4, 10));
        assert_eq!(seqs(&b), vec![1, 2, 4], "3 was the oldest unsent");
        assert_eq!(
            b.on_puback(1),
            Acked::Message {
                seq: 1,
                readings: 2
            }
        );
    }

    #[test]
    fn control_publishes_share_the_pkid_order_with_messages() {
        let mut b = Buffer::new(limits(10, 1000, 4));
        b.push(msg(1, 10));
        b.connected();
        b.control_sent(Control::Birth);
        send_all_after_control(&mut b);
        assert_eq!(
            b.on_puback(2),
            Acked::Message {
                seq: 1,
                readings: 2
            }
        );
        assert_eq!(b.on_puback(1), Acked::Control(Control::Birth));
        b.control_sent(Control::Shutdown);
        b.on_outgoing_publish(3);
        assert_eq!(b.on_puback(3), Acked::Control(Control::Shutdown));
    }

    fn send_all_after_control(b: &mut Buffer) {
        b.on_outgoing_publish(1); // the birth
        b.mark_sent();
        b.on_outgoing_publish(2);
    }
}
