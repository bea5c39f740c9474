//! The upsd line decoder (RFC 9271) both ways, as the agent runs it: a
//! stream of lines split as the `nut` source reads a server's answers
//! (`split_words`, `answer`, `LIST VAR` items into `map::readings`) and as the
//! facade reads a client's commands (`respond`, on a facade with no UPS).

use std::collections::BTreeMap;

use sitewatch_agent::latest::Latest;
use sitewatch_agent::nutd::{Facade, Session, config::NutServerConfig, respond};
use sitewatch_agent::source::nut::{map, proto};

/// One input, as the fuzzer gives it.
pub fn run(data: &[u8]) {
    let Ok(facade) = Facade::new(NutServerConfig::default(), Latest::new()) else {
        return;
    };
    let mut session = Session::default();
    let mut vars = BTreeMap::new();
    for line in data.split(|b| *b == b'\n') {
        let _ = proto::answer(line);
        let Ok(words) = proto::split_words(line) else {
            continue;
        };
        if let [var, _ups, name, value] = words.as_slice()
            && var == "VAR"
        {
            vars.insert(name.clone(), value.clone());
        }
        let (_answer, _close) = respond(&facade, &mut session, &words);
    }
    let mapped = map::readings("nut", "ups@fuzz", &vars);
    let _ = map::variables(&mapped.readings, &["FSD"]);
}
