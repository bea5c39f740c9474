//! Request planning: a device's points coalesced into the fewest reads its
//! limits allow, computed once per device; and splitting a block when the
//! device refuses it.

use thiserror::Error;

use crate::profile::{Limits, Profile};
use crate::types::Table;

/// One read request: a contiguous range of one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadBlock {
    pub table: Table,
    /// First 0-based address.
    pub address: u16,
    /// Registers (or bits) to read.
    pub count: u16,
    /// Indexes into [`Profile::points`] of the points this block covers.
    pub points: Vec<usize>,
}

impl ReadBlock {
    /// The Modbus function code of the request.
    pub fn function_code(&self) -> u8 {
        self.table.read_function()
    }

    /// One past the last address read.
    pub fn end(&self) -> u32 {
        u32::from(self.address) + u32::from(self.count)
    }
}

/// Why a block could not be split.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SplitError {
    #[error("no block {0} in the plan")]
    NoSuchBlock(usize),
    /// The block covers one register span only: the device refuses a point
    /// itself, so its points stay unknown.
    #[error("block {0} covers a single point span and cannot be split")]
    Atomic(usize),
}

impl SplitError {
    pub fn kind(&self) -> &'static str {
        match self {
            SplitError::NoSuchBlock(_) => "no_such_block",
            SplitError::Atomic(_) => "atomic",
        }
    }
}

/// The read requests of one device, in table and address order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    blocks: Vec<ReadBlock>,
    /// (start, end exclusive) of each point, indexed like the profile's points.
    spans: Vec<(Table, u32, u32)>,
}

impl Plan {
    /// Plans `profile` within its own limits.
    pub fn new(profile: &Profile) -> Plan {
        Plan::with_limits(profile, &profile.limits)
    }

    /// Plans `profile` within `limits` (a site may lower `max_registers` or
    /// `gap_fill` for a device behind a fussy gateway).
    ///
    /// Greedy by address: a block grows while the next point starts within
    /// `gap_fill` of its end and the block stays within the size limit. With
    /// points sorted by address this is optimal: any plan's first block ends
    /// no further than the greedy one, and so on by induction.
    pub fn with_limits(profile: &Profile, limits: &Limits) -> Plan {
        let spans: Vec<(Table, u32, u32)> = profile
            .points()
            .iter()
            .map(|p| {
                let start = u32::from(p.address);
                (p.table, start, start + u32::from(p.width()))
            })
            .collect();
        let mut order: Vec<usize> = (0..spans.len()).collect();
        order.sort_by_key(|i| (spans[*i].0, spans[*i].1, spans[*i].2));
        let mut blocks: Vec<ReadBlock> = Vec::new();
        for i in order {
            let (table, start, end) = spans[i];
            let max = u32::from(if table.is_bits() {
                limits.max_bits
            } else {
                limits.max_registers
            });
            if let Some(last) = blocks.last_mut() {
                let fits = last.table == table
                    && start <= last.end() + u32::from(limits.gap_fill)
                    && end.max(last.end()) - u32::from(last.address) <= max;
                if fits {
                    let new_end = end.max(last.end());
                    last.count = (new_end - u32::from(last.address)) as u16;
                    last.points.push(i);
                    continue;
                }
            }
            blocks.push(ReadBlock {
                table,
                address: start as u16,
                count: (end - start) as u16,
                points: vec![i],
            });
        }
        Plan { blocks, spans }
    }

    pub fn blocks(&self) -> &[ReadBlock] {
        &self.blocks
    }

    /// Number of requests one poll takes.
    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// Splits block `index` in two at a point boundary near its middle, for
    /// when the device answered it with exception 2 (illegal data address):
    /// gap fill read over a hole the device does not map, or the profile names
    /// a register this firmware lacks. Repeated splits isolate the refused
    /// point in log2(points) polls; the halves are as tight as their points.
    /// Returns the indexes of the two new blocks.
    pub fn split(&mut self, index: usize) -> Result<(usize, usize), SplitError> {
        let block = self
            .blocks
            .get(index)
            .ok_or(SplitError::NoSuchBlock(index))?;
        // Group points sharing registers: a cut may not fall inside a group.
        let mut groups: Vec<(u32, u32, Vec<usize>)> = Vec::new();
        for &p in &block.points {
            let (_, start, end) = self.spans[p];
            match groups.last_mut() {
                Some(g) if start < g.1 => {
                    g.1 = g.1.max(end);
                    g.2.push(p);
                }
                _ => groups.push((start, end, vec![p])),
            }
        }
        if groups.len() < 2 {
            return Err(SplitError::Atomic(index));
        }
        let table = block.table;
        let second = groups.split_off(groups.len() / 2);
        let make = |gs: &[(u32, u32, Vec<usize>)]| {
            let start = gs.first().map_or(0, |g| g.0);
            let end = gs.iter().map(|g| g.1).max().unwrap_or(start);
            ReadBlock {
                table,
                address: start as u16,
                count: (end - start) as u16,
                points: gs.iter().flat_map(|g| g.2.iter().copied()).collect(),
            }
        };
        let (a, b) = (make(&groups), make(&second));
        self.blocks[index] = a;
        self.blocks.insert(index + 1, b);
        Ok((index, index + 1))
    }
}
