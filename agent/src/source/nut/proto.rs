//! The upsd line protocol (RFC 9271, "Network UPS Tools"), both sides. Pure.
//!
//! A command and each line of an answer is one line of words separated by
//! spaces or tabs, ended by LF (a CR before it is dropped). A word holding a
//! space is written in double quotes; inside quotes `\"` and `\\` stand for
//! `"` and `\`. Answers are `OK [...]`, `ERR <CODE> [extra]`, a single value
//! line (`VAR <ups> <name> "<value>"`), or a list between `BEGIN LIST ...` and
//! `END LIST ...`.
//!
//! [`split_words`] is the one decoder both the `nut` source (reading upsd) and
//! the facade (serving it, [`crate::nutd`]) use; it is the fuzz target
//! `nut_line`.

use std::fmt::Write as _;

/// Longest line either side accepts (upsd itself stops at 512 bytes for a
/// command; answers with long values, such as `driver.parameter.*`, are
/// longer). A longer line is an error, not a growing buffer.
pub const MAX_LINE: usize = 4096;

/// Why a line does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    #[error("a quoted word is not closed")]
    UnclosedQuote,
    #[error("the line ends in an escape (\\)")]
    DanglingEscape,
    #[error("a quote opens inside a word")]
    QuoteInWord,
    #[error("the line holds a control character {0:#04x}")]
    Control(u8),
    #[error("the line is longer than {MAX_LINE} bytes")]
    TooLong,
    #[error("the line is not UTF-8")]
    NotUtf8,
}

impl LineError {
    /// A bounded label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            LineError::UnclosedQuote => "unclosed_quote",
            LineError::DanglingEscape => "dangling_escape",
            LineError::QuoteInWord => "quote_in_word",
            LineError::Control(_) => "control",
            LineError::TooLong => "too_long",
            LineError::NotUtf8 => "not_utf8",
        }
    }
}

/// The words of one line (without its LF; a trailing CR is dropped).
pub fn split_words(line: &[u8]) -> Result<Vec<String>, LineError> {
    if line.len() > MAX_LINE {
        return Err(LineError::TooLong);
    }
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let text = std::str::from_utf8(line).map_err(|_| LineError::NotUtf8)?;
    let mut words = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| *c == ' ' || *c == '\t').is_some() {}
        let Some(&first) = chars.peek() else {
            return Ok(words);
        };
        let mut word = String::new();
        if first == '"' {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err(LineError::UnclosedQuote),
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        None => return Err(LineError::DanglingEscape),
                        Some(c) => word.push(c),
                    },
                    Some(c) if c.is_control() && c != '\t' => {
                        return Err(LineError::Control(c as u32 as u8));
                    }
                    Some(c) => word.push(c),
                }
            }
            // A quoted word ends at a separator or the end of the line.
            if chars.peek().is_some_and(|c| *c != ' ' && *c != '\t') {
                return Err(LineError::QuoteInWord);
            }
        } else {
            while let Some(c) = chars.next_if(|c| *c != ' ' && *c != '\t') {
                match c {
                    '"' => return Err(LineError::QuoteInWord),
                    '\\' => match chars.next() {
                        None => return Err(LineError::DanglingEscape),
                        Some(c) => word.push(c),
                    },
                    c if c.is_control() => return Err(LineError::Control(c as u32 as u8)),
                    c => word.push(c),
                }
            }
        }
        words.push(word);
    }
}

/// `value` as a quoted word: `"`, `\` escaped; control characters dropped
/// (a value never spans lines).
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A command line: each word quoted when it needs to be, LF-terminated.
pub fn command(words: &[&str]) -> String {
    let mut out = String::new();
    for (i, w) in words.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let plain = !w.is_empty()
            && w.chars()
                .all(|c| !c.is_whitespace() && !c.is_control() && c != '"' && c != '\\');
        if plain {
            out.push_str(w);
        } else {
            out.push_str(&quote(w));
        }
    }
    out.push('\n');
    out
}

/// What one answer line says, as the client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `OK [...]`.
    Ok(Vec<String>),
    /// `ERR <CODE> [extra]`: the code as sent (`ACCESS-DENIED`, `UNKNOWN-UPS`, ...).
    Err(String),
    /// Any other line: its words.
    Line(Vec<String>),
}

/// Classifies one answer line.
pub fn answer(line: &[u8]) -> Result<Answer, LineError> {
    let mut words = split_words(line)?;
    Ok(match words.first().map(String::as_str) {
        Some("OK") => {
            words.remove(0);
            Answer::Ok(words)
        }
        Some("ERR") => Answer::Err(words.get(1).cloned().unwrap_or_default()),
        _ => Answer::Line(words),
    })
}

/// The error codes of RFC 9271 section 9: an answer with another code is a
/// counted malformed answer (the code is kept in the log).
pub const KNOWN_ERRORS: &[&str] = &[
    "ACCESS-DENIED",
    "UNKNOWN-UPS",
    "VAR-NOT-SUPPORTED",
    "CMD-NOT-SUPPORTED",
    "INVALID-ARGUMENT",
    "INSTCMD-FAILED",
    "SET-FAILED",
    "READONLY",
    "TOO-LONG",
    "FEATURE-NOT-SUPPORTED",
    "FEATURE-NOT-CONFIGURED",
    "ALREADY-SSL-MODE",
    "DRIVER-NOT-CONNECTED",
    "DATA-STALE",
    "ALREADY-LOGGED-IN",
    "INVALID-PASSWORD",
    "ALREADY-SET-PASSWORD",
    "INVALID-USERNAME",
    "ALREADY-SET-USERNAME",
    "USERNAME-REQUIRED",
    "PASSWORD-REQUIRED",
    "UNKNOWN-COMMAND",
    "INVALID-VALUE",
];

/// A list answer's lines: `BEGIN LIST <what...>`, items, `END LIST <what...>`.
pub fn list_begin(what: &[&str]) -> String {
    let mut s = String::from("BEGIN LIST");
    for w in what {
        let _ = write!(s, " {w}");
    }
    s.push('\n');
    s
}

pub fn list_end(what: &[&str]) -> String {
    let mut s = String::from("END LIST");
    for w in what {
        let _ = write!(s, " {w}");
    }
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        split_words(line.as_bytes()).unwrap()
    }

    #[test]
    fn splits_plain_and_quoted_words_with_escapes() {
        assert_eq!(
            words(r#"VAR ups1 ups.status "OB LB""#),
            ["VAR", "ups1", "ups.status", "OB LB"]
        );
        assert_eq!(
            words("VAR ups1 x \"a \\\"b\\\" \\\\c\"\r"),
            ["VAR", "ups1", "x", r#"a "b" \c"#]
        );
        assert_eq!(words("  LIST\tUPS  "), ["LIST", "UPS"]);
        assert_eq!(words(r#"UPS u """#), ["UPS", "u", ""]);
        assert!(words("").is_empty());
    }

    #[test]
    fn refuses_broken_lines() {
        let err = |l: &[u8]| split_words(l).unwrap_err();
        assert_eq!(err(br#"VAR u x "cut"#), LineError::UnclosedQuote);
        assert_eq!(err(br#"VAR u x "a\"#), LineError::DanglingEscape);
        assert_eq!(err(br#"VAR u x"y""#), LineError::QuoteInWord);
        assert_eq!(err(br#"VAR u "x"y"#), LineError::QuoteInWord);
        assert_eq!(err(b"VAR \x01"), LineError::Control(1));
        assert_eq!(err(b"VAR \xff"), LineError::NotUtf8);
        assert_eq!(err(&[b'a'; MAX_LINE + 1]), LineError::TooLong);
    }

    #[test]
    fn quoting_round_trips_through_the_decoder() {
        for v in ["OL", "OB LB", r#"say "hi" \ bye"#, ""] {
            let line = format!("VAR u v {}", quote(v));
            assert_eq!(words(&line)[3], v);
        }
        assert_eq!(command(&["USERNAME", "mon"]), "USERNAME mon\n");
        assert_eq!(command(&["PASSWORD", "a b"]), "PASSWORD \"a b\"\n");
        assert_eq!(
            words(command(&["PASSWORD", r#"p"\"#]).trim_end())[1],
            r#"p"\"#
        );
    }

    #[test]
    fn classifies_answers() {
        assert_eq!(
            answer(b"OK Goodbye").unwrap(),
            Answer::Ok(vec!["Goodbye".into()])
        );
        assert_eq!(
            answer(b"ERR ACCESS-DENIED").unwrap(),
            Answer::Err("ACCESS-DENIED".into())
        );
        assert_eq!(answer(b"ERR").unwrap(), Answer::Err(String::new()));
        assert!(matches!(
            answer(b"BEGIN LIST UPS").unwrap(),
            Answer::Line(_)
        ));
    }
}
