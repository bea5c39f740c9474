//! The outputs of an evaluation, one module each behind one small trait: what
//! `/metrics` and the API read ([`api`]), the retained MQTT `_signals`
//! ([`mqtt`]), Alertmanager ([`alerts`]). The signals loop hands every
//! evaluation to each in turn; an output never blocks it (a slow broker or
//! Alertmanager is the output's own task's problem), and each registers its own
//! self-metrics.

pub mod alerts;
pub mod api;
pub mod mqtt;

use prometheus_client::registry::Registry;
use sitewatch_signals::Evaluation;

use crate::signals::Published;

/// One evaluation, as the outputs get it.
#[derive(Debug, Clone, Copy)]
pub struct Round<'a> {
    pub now_ms: i64,
    pub evaluation: &'a Evaluation,
    /// What the metrics and the API will show (the evaluation plus the regions
    /// and its duration).
    pub published: &'a std::sync::Arc<Published>,
}

/// An output of the signals engine.
pub trait Output: Send + std::fmt::Debug {
    /// Takes one evaluation; must not block.
    fn publish(&mut self, round: &Round<'_>);

    /// Registers the output's own metrics (default: none).
    fn register(&self, _registry: &mut Registry) {}
}
