//! A value's judgement from the point's state rules.

use sitewatch_protocol::ReadingState;

use crate::profile::StateRules;

impl StateRules {
    /// `unknown` without a value; otherwise the first matching rule, critical
    /// before warning, `ok` when none matches.
    pub fn judge(&self, value: Option<f64>) -> ReadingState {
        let Some(v) = value else {
            return ReadingState::Unknown;
        };
        let critical = self.critical_if.contains(&v)
            || self.critical_above.is_some_and(|t| v > t)
            || self.critical_below.is_some_and(|t| v < t);
        if critical {
            return ReadingState::Critical;
        }
        let warning = self.warning_if.contains(&v)
            || self.warning_above.is_some_and(|t| v > t)
            || self.warning_below.is_some_and(|t| v < t);
        if warning {
            ReadingState::Warning
        } else {
            ReadingState::Ok
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn critical_wins_over_warning_and_null_is_unknown() {
        let rules = StateRules {
            critical_if: vec![1.0],
            warning_below: Some(0.5),
            critical_below: Some(0.2),
            ..StateRules::default()
        };
        assert_eq!(rules.judge(None), ReadingState::Unknown);
        assert_eq!(rules.judge(Some(1.0)), ReadingState::Critical);
        assert_eq!(rules.judge(Some(0.1)), ReadingState::Critical);
        assert_eq!(rules.judge(Some(0.4)), ReadingState::Warning);
        assert_eq!(rules.judge(Some(0.9)), ReadingState::Ok);
    }
}
