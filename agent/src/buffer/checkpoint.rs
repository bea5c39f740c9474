//! Source state saved only once what it covers is delivered: "events at least once".
//!
//! A source that reads a device log through a cursor (the IPMI SEL) hands its
//! new cursor to the publisher as a [`Checkpoint`] with the events it read. The
//! cursor file is written (durably: fsync) only when every broker has
//! acknowledged the messages carrying those events, or they were dropped. A
//! crash in between leaves the old cursor: the events are read and sent again
//! after the restart, with the same ids, and the collector keeps them once.
//!
//! Checkpoints of one file are applied in order, and a later one only after the
//! earlier ones' messages are done, so that a crash never skips an event.

use std::collections::{BTreeMap, VecDeque};

use crate::source::Checkpoint;

/// Checkpoints waiting for their messages.
#[derive(Debug, Default)]
pub struct Checkpoints {
    /// In arrival order, with the last queue index they wait for.
    pending: VecDeque<(Option<u64>, Checkpoint)>,
}

impl Checkpoints {
    /// `after`: the index of the last message carrying the events this
    /// checkpoint covers; `None` when it covers none (applied with the
    /// checkpoints before it).
    pub fn add(&mut self, after: Option<u64>, checkpoint: Checkpoint) {
        self.pending.push_back((after, checkpoint));
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// The checkpoints that may be written now (the latest per file), removed
    /// from the pending ones.
    pub fn ready(&mut self, is_done: impl Fn(u64) -> bool) -> Vec<Checkpoint> {
        let mut blocked: Vec<std::path::PathBuf> = Vec::new();
        let mut ready: BTreeMap<std::path::PathBuf, Checkpoint> = BTreeMap::new();
        let mut keep = VecDeque::with_capacity(self.pending.len());
        for (after, checkpoint) in self.pending.drain(..) {
            let path_blocked = blocked.contains(&checkpoint.path);
            if !path_blocked && after.is_none_or(&is_done) {
                ready.insert(checkpoint.path.clone(), checkpoint);
            } else {
                if !path_blocked {
                    blocked.push(checkpoint.path.clone());
                }
                keep.push_back((after, checkpoint));
            }
        }
        self.pending = keep;
        ready.into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn cp(path: &str, contents: &str) -> Checkpoint {
        Checkpoint {
            path: PathBuf::from(path),
            contents: contents.as_bytes().to_vec(),
        }
    }

    #[test]
    fn a_checkpoint_waits_for_its_messages_and_earlier_checkpoints_of_its_file() {
        let mut c = Checkpoints::default();
        c.add(Some(5), cp("a", "1"));
        c.add(Some(7), cp("a", "2"));
        c.add(None, cp("a", "3"));
        c.add(Some(6), cp("b", "1"));
        // 7 done, 5 not: nothing of "a" may go; "b" waits for 6.
        assert!(c.ready(|i| i == 7).is_empty());
        // 5 and 6 done: "a" up to "2" (3 came after 2, both ready), "b" too.
        let ready = c.ready(|i| i == 5 || i == 6 || i == 7);
        assert_eq!(ready, vec![cp("a", "3"), cp("b", "1")]);
        assert!(c.is_empty());
    }

    #[test]
    fn a_checkpoint_without_messages_is_ready_unless_an_earlier_one_waits() {
        let mut c = Checkpoints::default();
        c.add(None, cp("a", "1"));
        assert_eq!(c.ready(|_| false), vec![cp("a", "1")]);
        c.add(Some(1), cp("a", "2"));
        c.add(None, cp("a", "3"));
        assert!(c.ready(|_| false).is_empty());
        assert_eq!(c.len(), 2);
        assert_eq!(c.ready(|_| true), vec![cp("a", "3")]);
    }
}
