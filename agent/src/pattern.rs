//! Name patterns, one grammar for every source that filters by name (disks,
//! network interfaces, mount points, filesystem types): `*` matches any run
//! of characters, `?` any one, everything else itself; the whole name must
//! match. An exclude list wins over an include list, and an empty include
//! list lets everything in.

/// `*` matches any run of characters, `?` any one; everything else itself.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(c) if *c == '?' || *c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Whether any pattern matches `text`.
pub fn any_match(patterns: &[String], text: &str) -> bool {
    patterns.iter().any(|p| glob_match(p, text))
}

/// Whether `name` passes an include and an exclude list: matched by an
/// include pattern (or the include list is empty) and by no exclude pattern.
pub fn allows(include: &[String], exclude: &[String], name: &str) -> bool {
    (include.is_empty() || any_match(include, name)) && !any_match(exclude, name)
}

/// The first empty pattern, or one with a control character, in `patterns`.
pub fn invalid_pattern(patterns: &[String]) -> Option<&String> {
    patterns
        .iter()
        .find(|p| p.is_empty() || p.chars().any(char::is_control))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn glob_patterns_match_stars_and_question_marks_over_the_whole_name() {
        assert!(glob_match("sd*", "sda"));
        assert!(glob_match("nvme?", "nvme0"));
        assert!(!glob_match("nvme?", "nvme10"));
        assert!(glob_match("*", ""));
        assert!(glob_match("*a*b", "xxaxxb"));
        assert!(!glob_match("sda", "sdab"));
        assert!(glob_match(
            "/var/lib/docker/*",
            "/var/lib/docker/overlay2/x/merged"
        ));
    }

    #[test]
    fn exclude_wins_and_an_empty_include_lets_everything_in() {
        let (none, ex) = (own(&[]), own(&["veth*", "lo"]));
        assert!(allows(&none, &ex, "eth0"));
        assert!(!allows(&none, &ex, "lo"));
        assert!(!allows(&none, &ex, "veth12ab"));
        let (inc, ex) = (own(&["eth*", "bond*"]), own(&["eth9"]));
        assert!(allows(&inc, &ex, "eth0"));
        assert!(allows(&inc, &ex, "bond0"));
        assert!(!allows(&inc, &ex, "eth9"));
        assert!(!allows(&inc, &ex, "wlan0"));
    }

    #[test]
    fn empty_and_control_character_patterns_are_invalid() {
        assert_eq!(invalid_pattern(&["ok*".into()]), None);
        assert_eq!(
            invalid_pattern(&["ok".into(), String::new()]),
            Some(&String::new())
        );
        assert!(invalid_pattern(&["a\tb".into()]).is_some());
    }
}
