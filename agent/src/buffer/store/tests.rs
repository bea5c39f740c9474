use super::*;

const TOPIC: &str = "sitewatch/v1/bj1/web-01/readings";

fn config(dir: Option<&std::path::Path>, brokers: &[&str]) -> StoreConfig {
    StoreConfig {
        dir: dir.map(|d| d.to_owned()),
        fsync: FsyncPolicy::Always,
        max_messages: 10_000,
        max_bytes: 16 * 1024 * 1024,
        max_memory_bytes: 16 * 1024 * 1024,
        brokers: brokers.iter().map(|b| (*b).to_owned()).collect(),
        window: 16,
    }
}

fn msg(seq: u64, bytes: usize) -> Message {
    Message {
        topic: Arc::from(TOPIC),
        seq,
        payload: vec![b'0' + (seq % 10) as u8; bytes],
        readings: 2,
    }
}

fn live_seqs(s: &Store) -> Vec<u64> {
    s.queue().live_records().map(|r| r.seq).collect()
}

/// Publishes everything due to broker `b` and acknowledges it.
fn deliver_all(s: &mut Store, b: usize) -> Vec<u64> {
    let q = s.queue_mut();
    q.connected(b);
    let mut delivered = Vec::new();
    let mut pkid = 1;
    while let Some(index) = q.next_unsent(b) {
        delivered.push(q.get(index).unwrap().seq);
        q.mark_sent(b, index);
        q.on_outgoing_publish(b, pkid);
        q.on_puback(b, pkid);
        pkid += 1;
    }
    s.settle();
    delivered
}

fn sync(s: &mut Store, now: Instant) {
    if let Some(job) = s.sync_job(now, true, true) {
        let outcome = job.run();
        s.sync_finished(outcome, now);
    }
}

#[test]
fn memory_full_by_count_drops_the_oldest() {
    let now = Instant::now();
    let mut s = Store::open(
        StoreConfig {
            max_messages: 3,
            ..config(None, &["a"])
        },
        now,
    );
    for seq in 1..=5 {
        s.push(msg(seq, 10), now);
    }
    assert_eq!(live_seqs(&s), vec![3, 4, 5]);
    let st = s.stats();
    assert_eq!(
        (st.queue.dropped_messages, st.queue.dropped_readings),
        (2, 4)
    );
    assert_eq!((st.queue.messages, st.bytes), (3, 30));
    assert!(!st.on_disk);
}

#[test]
fn memory_full_by_bytes_drops_the_oldest() {
    let now = Instant::now();
    let mut s = Store::open(
        StoreConfig {
            max_bytes: 100,
            ..config(None, &["a"])
        },
        now,
    );
    s.push(msg(1, 40), now);
    s.push(msg(2, 40), now);
    s.push(msg(3, 40), now); // 120 > 100: drop 1
    assert_eq!(live_seqs(&s), vec![2, 3]);
    s.push(msg(4, 90), now); // 170: drop 2, 130: drop 3
    assert_eq!(live_seqs(&s), vec![4]);
    assert_eq!(s.stats().bytes, 90);
    assert_eq!(s.stats().queue.dropped_messages, 3);
}

#[test]
fn disk_messages_survive_a_crash_and_go_to_each_broker_that_lacks_them() {
    let dir = tempfile::tempdir().unwrap();
    let now = Instant::now();
    let mut s = Store::open(config(Some(dir.path()), &["a", "b"]), now);
    assert!(s.stats().on_disk);
    for seq in 1..=6 {
        s.push(msg(seq, 100), now);
    }
    // Broker a took everything and its cursor was persisted; b was down.
    assert_eq!(deliver_all(&mut s, 0), vec![1, 2, 3, 4, 5, 6]);
    sync(&mut s, now);
    s.push(msg(7, 100), now);
    drop(s); // killed: no clean stop, 7 not synced (still in the page cache)

    let mut s = Store::open(config(Some(dir.path()), &["a", "b"]), now);
    assert_eq!(s.stats().recovered_messages, 7);
    assert_eq!(deliver_all(&mut s, 0), vec![7], "a only lacks 7");
    let to_b: Vec<u64> = {
        let q = s.queue_mut();
        q.connected(1);
        std::iter::from_fn(|| {
            let i = q.next_unsent(1)?;
            q.mark_sent(1, i);
            Some(i)
        })
        .collect()
    };
    assert_eq!(to_b.len(), 7);
    for (k, index) in to_b.iter().enumerate() {
        let seq = k as u64 + 1;
        assert_eq!(
            s.payload(*index).unwrap(),
            msg(seq, 100).payload,
            "the original bytes"
        );
    }
}

#[test]
fn a_broker_new_to_the_log_gets_everything_it_holds() {
    let dir = tempfile::tempdir().unwrap();
    let now = Instant::now();
    let mut s = Store::open(config(Some(dir.path()), &["a", "b"]), now);
    for seq in 1..=3 {
        s.push(msg(seq, 10), now);
    }
    deliver_all(&mut s, 0);
    sync(&mut s, now);
    drop(s);
    let mut s = Store::open(config(Some(dir.path()), &["a", "c"]), now);
    assert_eq!(deliver_all(&mut s, 0), Vec::<u64>::new());
    assert_eq!(deliver_all(&mut s, 1), vec![1, 2, 3]);
}

#[test]
fn indices_keep_increasing_after_the_log_emptied() {
    let dir = tempfile::tempdir().unwrap();
    let now = Instant::now();
    let mut s = Store::open(config(Some(dir.path()), &["a"]), now);
    for seq in 1..=3 {
        s.push(msg(seq, 10), now);
    }
    deliver_all(&mut s, 0);
    sync(&mut s, now);
    let used = s.queue().next_index();
    drop(s);
    let mut s = Store::open(config(Some(dir.path()), &["a"]), now);
    assert_eq!(s.stats().recovered_messages, 0);
    assert!(
        s.push(msg(4, 10), now) >= used,
        "an index the cursors already passed would read as delivered"
    );
    drop(s);
    let mut s = Store::open(config(Some(dir.path()), &["a"]), now);
    assert_eq!(deliver_all(&mut s, 0), vec![4]);
}

#[test]
fn the_disk_bound_drops_whole_segments_oldest_first_and_counts_them() {
    let dir = tempfile::tempdir().unwrap();
    let now = Instant::now();
    // 512 KiB on disk, segments of 64 KiB: about 60 messages of 8 KiB.
    let mut s = Store::open(
        StoreConfig {
            max_bytes: 512 * 1024,
            ..config(Some(dir.path()), &["a"])
        },
        now,
    );
    for seq in 1..=200 {
        s.push(msg(seq, 8 * 1024), now);
    }
    let st = s.stats();
    assert!(st.bytes <= 512 * 1024 + 9 * 1024, "{} bytes", st.bytes);
    assert!(st.queue.dropped_messages > 100, "{st:?}");
    assert_eq!(st.queue.dropped_messages + st.queue.messages as u64, 200);
    let seqs = live_seqs(&s);
    assert_eq!(*seqs.last().unwrap(), 200, "the newest stay");
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "a contiguous tail: {seqs:?}"
    );
    assert_eq!(
        s.queue().delivery_stats(0).dropped_messages,
        st.queue.dropped_messages
    );
}

#[test]
fn a_log_that_cannot_be_opened_falls_back_to_memory_and_says_so() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let now = Instant::now();
    // A directory below a regular file cannot be created.
    let mut s = Store::open(config(Some(&file.path().join("buffer")), &["a"]), now);
    let st = s.stats();
    assert!(!st.on_disk);
    assert_eq!((st.disk_errors, st.fallbacks), (1, 1));
    let i = s.push(msg(1, 10), now);
    assert_eq!(s.payload(i).unwrap(), msg(1, 10).payload);
    // Retried later, failing again: counted, still one fallback, still working.
    s.push(msg(2, 10), now + RETRY_DISK_AFTER);
    let st = s.stats();
    assert_eq!((st.disk_errors, st.fallbacks, st.queue.messages), (2, 1, 2));
}

#[test]
fn fsync_always_flushes_every_write_and_every_n_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let now = Instant::now();
    let mut s = Store::open(config(Some(dir.path()), &["a"]), now);
    assert!(s.sync_job(now, true, false).is_some(), "the first cursors");
    s.push(msg(1, 10), now);
    assert!(s.unsynced_for(now).is_some());
    let job = s.sync_job(now, true, false).unwrap();
    assert!(s.unsynced_for(now).is_none(), "covered by the running job");
    s.sync_finished(job.run(), now);
    assert!(s.stats().last_fsync > Duration::ZERO);
    // The cursors moved (a new index): they go a second later...
    let job = s
        .sync_job(now + Duration::from_secs(5), true, false)
        .unwrap();
    s.sync_finished(job.run(), now);
    // ...and then nothing is left to do.
    assert!(
        s.sync_job(now + Duration::from_secs(10), true, false)
            .is_none()
    );
    // Every(d): the publisher's timer asks with flush = true; between ticks
    // only cursors may go.
    s.push(msg(2, 10), now);
    assert!(s.sync_job(now, false, false).is_none());
    assert!(s.sync_job(now, true, false).is_some());
}

#[test]
fn a_torn_tail_left_by_a_crash_loses_only_the_torn_message() {
    let dir = tempfile::tempdir().unwrap();
    let now = Instant::now();
    let mut s = Store::open(config(Some(dir.path()), &["a"]), now);
    for seq in 1..=5 {
        s.push(msg(seq, 1000), now);
    }
    drop(s);
    let seg = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "seg"))
        .unwrap();
    let len = std::fs::metadata(&seg).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(len - 300)
        .unwrap();
    let mut s = Store::open(config(Some(dir.path()), &["a"]), now);
    let st = s.stats();
    assert_eq!((st.recovered_messages, st.truncated_segments), (4, 1));
    assert_eq!(deliver_all(&mut s, 0), vec![1, 2, 3, 4]);
}
