//! What `/metrics` (`sitewatch_signal_active`, `sitewatch_site_disaster_level`,
//! `sitewatch_site_info`, the evaluation's duration) and `GET /api/v1/signals`
//! read: the last evaluation, swapped into [`Shared`] as one `Arc`.

use std::sync::Arc;

use super::{Output, Round};
use crate::Shared;

/// Publishes each evaluation to the HTTP side.
#[derive(Debug)]
pub struct Api {
    shared: Arc<Shared>,
}

impl Api {
    pub fn new(shared: Arc<Shared>) -> Self {
        Api { shared }
    }
}

impl Output for Api {
    fn publish(&mut self, round: &Round<'_>) {
        self.shared.set_signals(Arc::clone(round.published));
    }
}
