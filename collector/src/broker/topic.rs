//! MQTT topic names and topic filters (MQTT 3.1.1 and 5.0, section 4.7):
//! validation, `$share/<group>/` parsing and matching. Pure.

/// Why a topic name (in a PUBLISH or a will) is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TopicNameError {
    #[error("is empty")]
    Empty,
    /// `+` or `#`: only filters may hold wildcards (MQTT 4.7.1).
    #[error("contains a wildcard (+ or #)")]
    Wildcard,
    /// U+0000 is forbidden in every MQTT string (1.5.3).
    #[error("contains U+0000")]
    Nul,
    /// A v5 topic that is not UTF-8 (v3.1.1 topics are checked by the codec).
    #[error("is not UTF-8")]
    NotUtf8,
}

impl TopicNameError {
    /// A bounded label.
    pub fn kind(self) -> &'static str {
        match self {
            TopicNameError::Empty => "empty_topic",
            TopicNameError::Wildcard => "wildcard_topic",
            TopicNameError::Nul => "nul_in_topic",
            TopicNameError::NotUtf8 => "invalid_utf8",
        }
    }
}

/// Why a topic filter (in a SUBSCRIBE) is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("is empty")]
    Empty,
    #[error("has '#' other than as its whole last level")]
    MisplacedHash,
    #[error("has '+' other than as a whole level")]
    MisplacedPlus,
    #[error("contains U+0000")]
    Nul,
    #[error("is a $share/ filter without a group name or a filter after it")]
    BadShare,
}

/// Checks a topic name a client publishes to.
pub fn validate_name(topic: &str) -> Result<(), TopicNameError> {
    if topic.is_empty() {
        return Err(TopicNameError::Empty);
    }
    if topic.contains(['+', '#']) {
        return Err(TopicNameError::Wildcard);
    }
    if topic.contains('\0') {
        return Err(TopicNameError::Nul);
    }
    Ok(())
}

/// Checks a plain topic filter (no `$share/` prefix).
pub fn validate_filter(filter: &str) -> Result<(), FilterError> {
    if filter.is_empty() {
        return Err(FilterError::Empty);
    }
    if filter.contains('\0') {
        return Err(FilterError::Nul);
    }
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        let last = levels.peek().is_none();
        if level.contains('#') && (level != "#" || !last) {
            return Err(FilterError::MisplacedHash);
        }
        if level.contains('+') && level != "+" {
            return Err(FilterError::MisplacedPlus);
        }
    }
    Ok(())
}

/// A subscription as requested: a plain filter, or a shared one
/// (`$share/<group>/<filter>`, MQTT 5.0 4.8.2, which we accept from MQTT 3.1.1
/// clients too, as mosquitto does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscription<'a> {
    pub group: Option<&'a str>,
    pub filter: &'a str,
}

/// Parses and validates what a SUBSCRIBE names.
pub fn parse_subscription(requested: &str) -> Result<Subscription<'_>, FilterError> {
    match requested.strip_prefix("$share/") {
        Some(rest) => {
            let (group, filter) = rest.split_once('/').ok_or(FilterError::BadShare)?;
            if group.is_empty() || group.contains(['+', '#']) || filter.is_empty() {
                return Err(FilterError::BadShare);
            }
            validate_filter(filter)?;
            Ok(Subscription {
                group: Some(group),
                filter,
            })
        }
        None => {
            validate_filter(requested)?;
            Ok(Subscription {
                group: None,
                filter: requested,
            })
        }
    }
}

/// Whether `topic` matches the valid plain `filter`. A topic starting with `$`
/// is not matched by a filter starting with a wildcard (MQTT 4.7.2).
pub fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && filter.starts_with(['+', '#']) {
        return false;
    }
    let mut topic_levels = topic.split('/');
    for f in filter.split('/') {
        if f == "#" {
            return true;
        }
        match topic_levels.next() {
            Some(t) if f == "+" || f == t => {}
            _ => return false,
        }
    }
    topic_levels.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_with_wildcards_or_nothing_are_refused() {
        assert_eq!(validate_name("sitewatch/v1/a/b/state"), Ok(()));
        assert_eq!(validate_name("a//b/"), Ok(()));
        assert_eq!(validate_name(""), Err(TopicNameError::Empty));
        assert_eq!(
            validate_name("sitewatch/v1/s9/#"),
            Err(TopicNameError::Wildcard)
        );
        assert_eq!(validate_name("a/+/b"), Err(TopicNameError::Wildcard));
        assert_eq!(validate_name("a+b"), Err(TopicNameError::Wildcard));
        assert_eq!(validate_name("a\0b"), Err(TopicNameError::Nul));
    }

    #[test]
    fn filters_follow_the_wildcard_rules() {
        for ok in ["#", "+", "a/#", "a/+/b", "+/+/+", "/", "a//#", "$SYS/#"] {
            assert_eq!(validate_filter(ok), Ok(()), "{ok}");
        }
        for (bad, err) in [
            ("", FilterError::Empty),
            ("a/#/b", FilterError::MisplacedHash),
            ("a#", FilterError::MisplacedHash),
            ("a/b#", FilterError::MisplacedHash),
            ("a+/b", FilterError::MisplacedPlus),
            ("a/++", FilterError::MisplacedPlus),
            ("a\0", FilterError::Nul),
        ] {
            assert_eq!(validate_filter(bad), Err(err), "{bad}");
        }
    }

    #[test]
    fn shared_subscriptions_name_a_group_and_a_filter() {
        assert_eq!(
            parse_subscription("$share/g1/sitewatch/v1/+/+/readings"),
            Ok(Subscription {
                group: Some("g1"),
                filter: "sitewatch/v1/+/+/readings"
            })
        );
        assert_eq!(
            parse_subscription("a/b"),
            Ok(Subscription {
                group: None,
                filter: "a/b"
            })
        );
        for bad in ["$share/g", "$share//a", "$share/g/", "$share/g+/a"] {
            assert_eq!(parse_subscription(bad), Err(FilterError::BadShare), "{bad}");
        }
        assert_eq!(
            parse_subscription("$share/g/a/#/b"),
            Err(FilterError::MisplacedHash)
        );
    }

    #[test]
    fn matching_follows_the_spec_examples() {
        // MQTT 3.1.1 4.7.1.2 and 4.7.1.3.
        assert!(matches("sport/tennis/player1/#", "sport/tennis/player1"));
        assert!(matches(
            "sport/tennis/player1/#",
            "sport/tennis/player1/ranking"
        ));
        assert!(matches(
            "sport/tennis/player1/#",
            "sport/tennis/player1/score/wimbledon"
        ));
        assert!(matches("sport/#", "sport"));
        assert!(matches("#", "a/b/c"));
        assert!(matches("sport/tennis/+", "sport/tennis/player1"));
        assert!(!matches("sport/tennis/+", "sport/tennis/player1/ranking"));
        assert!(!matches("sport/+", "sport"));
        assert!(matches("sport/+", "sport/"));
        assert!(matches("+/+", "/finance"));
        assert!(matches("/+", "/finance"));
        assert!(!matches("+", "/finance"));
        assert!(matches(
            "sitewatch/v1/+/+/+",
            "sitewatch/v1/bj1/web-01/state"
        ));
        assert!(!matches("sitewatch/v1/+/+/+", "sitewatch/v1/bj1/_signals"));
        assert!(!matches("a/b", "a/b/c"));
        assert!(!matches("a/b/c", "a/b"));
    }

    #[test]
    fn dollar_topics_are_not_matched_by_leading_wildcards() {
        assert!(!matches("#", "$SYS/broker/load"));
        assert!(!matches("+/broker/load", "$SYS/broker/load"));
        assert!(matches("$SYS/#", "$SYS/broker/load"));
        assert!(matches("$SYS/+/load", "$SYS/broker/load"));
    }
}
