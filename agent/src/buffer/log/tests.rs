use super::*;

const TOPIC: &str = "sitewatch/v1/bj1/web-01/readings";

fn payload(i: u64) -> Vec<u8> {
    format!(r#"{{"v":1,"seq":{i},"ts":1,"readings":[]}}"#).into_bytes()
}

fn append_n(log: &mut DiskLog, range: std::ops::Range<u64>) -> Vec<(u64, u64)> {
    range
        .map(|i| log.append(i, i, 0, TOPIC, &payload(i)).unwrap())
        .collect()
}

fn segments(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(SEGMENT_SUFFIX))
        .collect();
    names.sort();
    names
}

#[test]
fn appended_records_are_found_again_with_their_payloads() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, recovery) = DiskLog::open(dir.path(), 1 << 20).unwrap();
    assert!(recovery.entries.is_empty());
    let at = append_n(&mut log, 0..5);
    assert_eq!(
        log.read(at[3].0, at[3].1, payload(3).len() as u32).unwrap(),
        payload(3)
    );
    drop(log);
    let (log, recovery) = DiskLog::open(dir.path(), 1 << 20).unwrap();
    assert!(recovery.truncations.is_empty());
    let indices: Vec<u64> = recovery.entries.iter().map(|e| e.index).collect();
    assert_eq!(indices, vec![0, 1, 2, 3, 4]);
    for e in &recovery.entries {
        assert_eq!(e.topic, TOPIC);
        assert_eq!(e.seq, e.index);
        assert_eq!(
            log.read(e.segment, e.offset, e.len).unwrap(),
            payload(e.index)
        );
    }
}

#[test]
fn a_torn_tail_is_cut_off_and_the_log_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = DiskLog::open(dir.path(), 1 << 20).unwrap();
    append_n(&mut log, 0..3);
    drop(log);
    let path = dir.path().join(&segments(dir.path())[0]);
    let full = fs::metadata(&path).unwrap().len();
    // A record torn by a crash: its header and half its body.
    let mut torn = Vec::new();
    encode(&mut torn, 3, 3, 0, TOPIC.len() as u16, TOPIC, &payload(3));
    let f = OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all_at(&torn[..torn.len() / 2], full).unwrap();
    drop(f);

    let (mut log, recovery) = DiskLog::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(recovery.entries.len(), 3);
    assert_eq!(recovery.truncations.len(), 1, "{:?}", recovery.truncations);
    let t = &recovery.truncations[0];
    assert_eq!(
        (t.at, t.lost_bytes, t.reason),
        (full, (torn.len() / 2) as u64, "torn record")
    );
    assert_eq!(
        fs::metadata(&path).unwrap().len(),
        full,
        "truncated on disk"
    );
    // New records go to a new segment after the recovered ones.
    append_n(&mut log, 3..5);
    drop(log);
    let (_, recovery) = DiskLog::open(dir.path(), 1 << 20).unwrap();
    let indices: Vec<u64> = recovery.entries.iter().map(|e| e.index).collect();
    assert_eq!(indices, vec![0, 1, 2, 3, 4]);
    assert!(recovery.truncations.is_empty());
}

#[test]
fn a_torn_header_and_a_bad_checksum_are_cut_off_too() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = DiskLog::open(dir.path(), 1 << 20).unwrap();
    let at = append_n(&mut log, 0..4);
    drop(log);
    let path = dir.path().join(&segments(dir.path())[0]);
    // Flip a payload byte of record 2: it and everything after it go.
    let mut bytes = fs::read(&path).unwrap();
    bytes[at[2].1 as usize] ^= 0xff;
    fs::write(&path, &bytes).unwrap();
    let (log, recovery) = DiskLog::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(recovery.entries.len(), 2);
    assert_eq!(recovery.truncations[0].reason, "bad checksum");
    drop(log);
    // Three stray bytes at the end: a torn header.
    let len = fs::metadata(&path).unwrap().len();
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    f.write_all_at(&[1, 2, 3], len).unwrap();
    drop(f);
    let (_, recovery) = DiskLog::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(recovery.entries.len(), 2);
    assert_eq!(recovery.truncations[0].reason, "torn header");
}

#[test]
fn segments_roll_over_and_go_when_no_record_is_needed() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = DiskLog::open(dir.path(), 4096).unwrap();
    let at = append_n(&mut log, 0..200);
    let n = log.segment_count();
    assert!(n > 2, "{n} segments");
    assert_eq!(segments(dir.path()).len(), n);
    let on_disk: u64 = segments(dir.path())
        .iter()
        .map(|s| fs::metadata(dir.path().join(s)).unwrap().len())
        .sum();
    assert_eq!(log.disk_bytes(), on_disk);
    // Every record of the first segment released: it goes.
    let first = at[0].0;
    for (segment, _) in at.iter().filter(|(s, _)| *s == first) {
        log.release(*segment).unwrap();
    }
    assert_eq!(log.segment_count(), n - 1);
    assert!(!segments(dir.path()).contains(&format!("{first:020}.seg")));
    // The active segment stays even when empty of live records.
    let last = at[199].0;
    for (segment, _) in at.iter().filter(|(s, _)| *s == last) {
        log.release(*segment).unwrap();
    }
    assert_eq!(log.segment_count(), n - 1);
    log.seal().unwrap();
    assert_eq!(log.segment_count(), n - 2);
}

#[test]
fn recovered_segments_nobody_needs_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = DiskLog::open(dir.path(), 4096).unwrap();
    append_n(&mut log, 0..100);
    drop(log);
    let (mut log, recovery) = DiskLog::open(dir.path(), 4096).unwrap();
    let keep = recovery.entries.last().unwrap().segment;
    log.hold(keep);
    log.remove_unheld().unwrap();
    assert_eq!(log.segment_count(), 1);
    assert_eq!(segments(dir.path()), vec![format!("{keep:020}.seg")]);
}

#[test]
fn a_second_process_cannot_open_the_same_log() {
    let dir = tempfile::tempdir().unwrap();
    let (_log, _) = DiskLog::open(dir.path(), 4096).unwrap();
    let err = DiskLog::open(dir.path(), 4096).unwrap_err();
    assert_eq!(err.kind(), "locked");
}

#[test]
fn cursors_are_written_durably_and_a_broken_file_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = DiskLog::open(dir.path(), 4096).unwrap();
    let cursors = Cursors {
        next_index: 42,
        brokers: BTreeMap::from([("a".to_owned(), 40), ("b".to_owned(), 7)]),
    };
    write_durably(&log.cursors_path(), &serde_json::to_vec(&cursors).unwrap()).unwrap();
    drop(log);
    let (log, recovery) = DiskLog::open(dir.path(), 4096).unwrap();
    assert_eq!(recovery.cursors, cursors);
    fs::write(log.cursors_path(), b"{not json").unwrap();
    drop(log);
    let (_, recovery) = DiskLog::open(dir.path(), 4096).unwrap();
    assert!(recovery.cursors_unreadable);
    assert_eq!(recovery.cursors, Cursors::default());
}

#[test]
fn scan_refuses_garbage_without_panicking() {
    let mut rng_state = 0x2545_f491_4f6c_dd1d_u64;
    for len in 0..300 {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                rng_state ^= rng_state << 13;
                rng_state ^= rng_state >> 7;
                rng_state ^= rng_state << 17;
                rng_state as u8
            })
            .collect();
        let (entries, end, _) = scan(&bytes, 0, None);
        assert!(entries.is_empty());
        assert_eq!(end, 0);
    }
}

#[test]
fn sync_files_cover_what_was_written_since_the_last_sync() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = DiskLog::open(dir.path(), 1 << 20).unwrap();
    append_n(&mut log, 0..2);
    let job = log.take_sync();
    assert_eq!(job.files.len(), 1);
    assert!(job.dir.is_some(), "a new segment file");
    job.run().unwrap();
    assert!(log.take_sync().is_empty());
    append_n(&mut log, 2..3);
    let job = log.take_sync();
    assert_eq!((job.files.len(), job.dir.is_some()), (1, false));
}
