use super::*;

const A: BrokerId = 0;
const B: BrokerId = 1;

fn mem(bytes: usize) -> Payload {
    Payload::Memory(Arc::from(vec![b'x'; bytes]))
}

fn push(q: &mut Queue, seq: u64, bytes: usize) -> u64 {
    q.push(Arc::from("t"), seq, 2, bytes as u32, mem(bytes))
}

fn seqs(q: &Queue) -> Vec<u64> {
    q.live_records().map(|r| r.seq).collect()
}

/// Sends every record the window allows to `b`, binding pkids from `first_pkid`.
fn send_all(q: &mut Queue, b: BrokerId, first_pkid: u16) -> Vec<(u64, u16)> {
    let mut sent = Vec::new();
    let mut pkid = first_pkid;
    while let Some(index) = q.next_unsent(b) {
        let seq = q.get(index).unwrap().seq;
        q.mark_sent(b, index);
        q.on_outgoing_publish(b, pkid);
        sent.push((seq, pkid));
        pkid += 1;
    }
    sent
}

fn acked(index: u64, seq: u64) -> Acked {
    Acked::Message {
        index,
        seq,
        readings: 2,
    }
}

#[test]
fn nothing_is_sent_before_connack() {
    let mut q = Queue::new(1, 4, 0);
    push(&mut q, 1, 10);
    assert_eq!(q.next_unsent(A), None);
    q.connected(A);
    assert_eq!(q.next_unsent(A), Some(0));
}

#[test]
fn in_order_acks_empty_the_queue_and_count_readings() {
    let mut q = Queue::new(1, 4, 0);
    q.connected(A);
    for seq in 1..=3 {
        push(&mut q, seq, 10);
    }
    assert_eq!(send_all(&mut q, A, 1), vec![(1, 1), (2, 2), (3, 3)]);
    for pkid in 1..=3u16 {
        assert_eq!(
            q.on_puback(A, pkid),
            acked(u64::from(pkid) - 1, u64::from(pkid))
        );
    }
    let s = q.stats();
    assert_eq!((s.messages, s.memory_bytes), (0, 0));
    let d = q.delivery_stats(A);
    assert_eq!((d.published_messages, d.published_readings), (3, 6));
    assert_eq!(
        (d.pending_messages, d.pending_bytes, d.in_flight),
        (0, 0, 0)
    );
    assert!(q.is_drained(A));
    assert!(q.is_done(2));
}

#[test]
fn window_limits_messages_in_flight() {
    let mut q = Queue::new(1, 2, 0);
    q.connected(A);
    for seq in 1..=5 {
        push(&mut q, seq, 10);
    }
    assert_eq!(send_all(&mut q, A, 1).len(), 2);
    assert_eq!(q.next_unsent(A), None);
    q.on_puback(A, 1);
    assert_eq!(q.next_unsent(A).map(|i| q.get(i).unwrap().seq), Some(3));
}

#[test]
fn out_of_order_acks_remove_the_right_records() {
    let mut q = Queue::new(1, 4, 0);
    q.connected(A);
    for seq in 1..=4 {
        push(&mut q, seq, 10);
    }
    send_all(&mut q, A, 10);
    assert_eq!(q.on_puback(A, 12), acked(2, 3));
    assert_eq!(q.on_puback(A, 10), acked(0, 1));
    assert_eq!(seqs(&q), vec![2, 4]);
    assert_eq!(q.delivery_stats(A).in_flight, 2);
    assert_eq!(q.on_puback(A, 10), Acked::Unknown, "acked twice");
    assert!(q.is_done(2) && !q.is_done(1));
}

#[test]
fn disconnect_requeues_in_flight_in_seq_order_before_newer_records() {
    let mut q = Queue::new(1, 3, 0);
    q.connected(A);
    for seq in 1..=5 {
        push(&mut q, seq, 10);
    }
    send_all(&mut q, A, 1); // 1, 2, 3 in flight
    q.on_puback(A, 2);
    q.disconnected(A);
    assert_eq!(q.next_unsent(A), None, "not while disconnected");
    push(&mut q, 6, 10);
    q.connected(A);
    // The pkids of the old connection mean nothing now.
    assert_eq!(q.on_puback(A, 1), Acked::Unknown);
    let resent: Vec<u64> = send_all(&mut q, A, 1).into_iter().map(|(s, _)| s).collect();
    assert_eq!(resent, vec![1, 3, 4]);
    let d = q.delivery_stats(A);
    assert_eq!((d.requeued_messages, d.published_messages), (2, 1));
    assert_eq!(seqs(&q), vec![1, 3, 4, 5, 6]);
}

#[test]
fn a_publish_handed_over_but_not_yet_sent_is_requeued_too() {
    let mut q = Queue::new(1, 3, 0);
    q.connected(A);
    let i = push(&mut q, 1, 10);
    q.mark_sent(A, i); // no Outgoing::Publish before the link died
    q.disconnected(A);
    q.connected(A);
    assert_eq!(q.next_unsent(A), Some(i));
    q.mark_sent(A, i);
    q.on_outgoing_publish(A, 7);
    assert_eq!(q.on_puback(A, 7), acked(i, 1));
}

#[test]
fn drop_oldest_skips_records_in_flight_and_the_newest() {
    let mut q = Queue::new(1, 2, 0);
    q.connected(A);
    for seq in 1..=3 {
        push(&mut q, seq, 10);
    }
    send_all(&mut q, A, 1); // 1 and 2 in flight
    assert!(!q.drop_oldest(|_| true), "3 is the newest");
    push(&mut q, 4, 10);
    // Only 3 is eligible now (4 is the newest).
    assert!(q.drop_oldest(|_| true));
    assert_eq!(seqs(&q), vec![1, 2, 4]);
    assert!(!q.drop_oldest(|_| true), "nothing eligible left");
    let s = q.stats();
    assert_eq!((s.dropped_messages, s.dropped_readings), (1, 2));
    assert_eq!(q.on_puback(A, 1), acked(0, 1));
}

#[test]
fn control_publishes_share_the_pkid_order_with_records() {
    let mut q = Queue::new(1, 4, 0);
    let i = push(&mut q, 1, 10);
    q.connected(A);
    q.control_sent(A, Control::Birth);
    q.on_outgoing_publish(A, 1); // the birth
    assert_eq!(q.next_unsent(A), Some(i));
    q.mark_sent(A, i);
    q.on_outgoing_publish(A, 2);
    assert_eq!(q.on_puback(A, 2), acked(i, 1));
    assert_eq!(q.on_puback(A, 1), Acked::Control(Control::Birth));
    q.control_sent(A, Control::Shutdown);
    q.on_outgoing_publish(A, 3);
    assert_eq!(q.on_puback(A, 3), Acked::Control(Control::Shutdown));
}

#[test]
fn a_broker_that_is_down_never_holds_back_the_other() {
    let mut q = Queue::new(2, 4, 0);
    q.connected(A); // B stays down
    for seq in 1..=10 {
        push(&mut q, seq, 10);
        let sent = send_all(&mut q, A, seq as u16);
        assert_eq!(sent, vec![(seq, seq as u16)], "A sends each record at once");
        assert_eq!(q.on_puback(A, seq as u16), acked(seq - 1, seq));
    }
    // Everything waits for B, nothing for A.
    assert_eq!(q.stats().messages, 10);
    assert!(q.is_drained(A));
    assert_eq!(q.delivery_stats(B).pending_messages, 10);
    assert!(!q.is_done(0));
    // B comes back: the backlog, oldest first; records leave as B acks them.
    q.connected(B);
    let sent = send_all(&mut q, B, 100);
    assert_eq!(
        sent.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    q.on_puback(B, 100);
    assert!(q.is_done(0));
    assert_eq!(q.stats().messages, 9);
    assert_eq!(send_all(&mut q, A, 50), vec![], "A has nothing to resend");
}

#[test]
fn dropping_a_record_counts_it_for_each_broker_still_waiting() {
    let mut q = Queue::new(2, 4, 0);
    q.connected(A);
    push(&mut q, 1, 10);
    push(&mut q, 2, 10);
    push(&mut q, 3, 10);
    send_all(&mut q, A, 1);
    q.on_puback(A, 1); // seq 1 delivered to A only; 2 and 3 in flight to A
    assert_eq!(q.drop_range(0, 1, |_| true), 2, "1 (waiting for B) and 2");
    let a = q.delivery_stats(A);
    let b = q.delivery_stats(B);
    assert_eq!(a.dropped_messages, 0, "2 was in flight to A");
    assert_eq!(b.dropped_messages, 2);
    assert_eq!(q.stats().dropped_messages, 2);
    // A's PUBACK for the dropped 2 still counts it as published to A...
    assert_eq!(q.on_puback(A, 2), acked(1, 2));
    assert_eq!(q.delivery_stats(A).published_messages, 2);
    // ...while 3 stays, and a disconnect requeues it.
    q.disconnected(A);
    assert_eq!(q.delivery_stats(A).requeued_messages, 1);
    assert_eq!(q.delivery_stats(A).dropped_messages, 0);
}

#[test]
fn a_record_dropped_in_flight_is_counted_dropped_when_the_connection_dies() {
    let mut q = Queue::new(1, 4, 0);
    q.connected(A);
    push(&mut q, 1, 10);
    push(&mut q, 2, 10);
    send_all(&mut q, A, 1);
    q.drop_range(0, 0, |_| true);
    q.disconnected(A);
    let d = q.delivery_stats(A);
    assert_eq!((d.dropped_messages, d.requeued_messages), (1, 1));
    q.connected(A);
    assert_eq!(send_all(&mut q, A, 1), vec![(2, 1)]);
}

#[test]
fn the_floor_is_the_lowest_record_a_broker_still_waits_for() {
    let mut q = Queue::new(2, 8, 100);
    q.connected(A);
    for seq in 1..=4 {
        push(&mut q, seq, 10);
    }
    assert_eq!((q.floor(A), q.floor(B)), (100, 100));
    send_all(&mut q, A, 1);
    q.on_puback(A, 2); // index 101
    assert_eq!(q.floor(A), 100);
    q.on_puback(A, 1);
    assert_eq!(q.floor(A), 102);
    q.on_puback(A, 3);
    q.on_puback(A, 4);
    assert_eq!(q.floor(A), 104, "nothing pending: the next index");
    assert_eq!(q.floor(B), 100);
}

#[test]
fn recovered_records_keep_their_indices_holes_included() {
    let mut q = Queue::new(2, 8, 0);
    let rec = |index: u64| {
        Record::new(
            index,
            Arc::from("t"),
            index,
            1,
            4,
            Payload::Disk {
                segment: 5,
                offset: index * 10,
            },
        )
    };
    q.push_recovered(rec(5), 0b11);
    q.push_recovered(rec(9), 0b10); // A had it already
    q.push_recovered(rec(12), 0b00); // both had it: not kept
    assert_eq!(q.next_index(), 10);
    assert_eq!(push(&mut q, 1, 4), 10);
    q.connected(A);
    q.connected(B);
    let to_a: Vec<u64> = std::iter::from_fn(|| {
        let i = q.next_unsent(A)?;
        q.mark_sent(A, i);
        Some(i)
    })
    .collect();
    assert_eq!(to_a, vec![5, 10]);
    assert_eq!(q.next_unsent(B), Some(5));
    assert_eq!(q.floor(B), 5);
    assert!(q.is_done(7), "a hole is done");
    assert_eq!(q.stats().memory_bytes, 4);
}

#[test]
fn released_disk_payloads_are_reported_once() {
    let mut q = Queue::new(1, 8, 0);
    q.connected(A);
    let i = q.push(
        Arc::from("t"),
        1,
        0,
        3,
        Payload::Disk {
            segment: 0,
            offset: 0,
        },
    );
    q.mark_sent(A, i);
    q.on_outgoing_publish(A, 1);
    q.on_puback(A, 1);
    assert_eq!(q.take_released(), vec![0]);
    assert!(q.take_released().is_empty());
}
