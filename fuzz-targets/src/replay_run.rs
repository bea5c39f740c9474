//! The replay/record line parser and the engine run behind it
//! (`sitewatch-collector replay`): any bytes are a replay file whose broken
//! lines are skipped, never a panic.

use sitewatch_collector::replay::{payload_value, replay_all};
use sitewatch_collector::state::StateConfig;
use sitewatch_signals::SignalsConfig;

/// One input, as the fuzzer gives it.
pub fn run(data: &[u8]) {
    let _ = replay_all(data, StateConfig::default(), &SignalsConfig::default());
    // The recorder's side: a payload as received becomes the line's value.
    let _ = payload_value(data);
}
