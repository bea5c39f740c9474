//! `sitewatch-collector passwd [-D] [--stdin] FILE USER`: adds, changes or
//! deletes a user of a password file, as `mosquitto_passwd` does, in the same
//! format (the file works with both brokers).
//!
//! The password comes from the terminal (asked twice, not echoed) or, with
//! `--stdin`, from the first line of standard input. The file is created 0600
//! if missing; an existing one keeps its mode and owner. It is replaced
//! atomically (temporary file, fsync, rename), so a crash leaves the old or the
//! new file.

use std::io::{BufRead, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::auth::{DEFAULT_ITERATIONS, Hash, PasswordFile, check_user_name};

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdCommand {
    pub file: PathBuf,
    pub user: String,
    pub delete: bool,
    pub stdin: bool,
    pub iterations: u32,
}

/// Why the command failed; the message names the file.
#[derive(Debug, thiserror::Error)]
pub enum PasswdError {
    #[error("{0}")]
    Usage(String),
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
}

impl PasswdCommand {
    pub fn new(file: PathBuf, user: String) -> Self {
        PasswdCommand {
            file,
            user,
            delete: false,
            stdin: false,
            iterations: DEFAULT_ITERATIONS,
        }
    }
}

fn file_error(path: &Path, message: impl std::fmt::Display) -> PasswdError {
    PasswdError::File {
        path: path.to_owned(),
        message: message.to_string(),
    }
}

/// Runs the command; returns what was done, for the user.
pub fn run(cmd: &PasswdCommand) -> Result<String, PasswdError> {
    check_user_name(&cmd.user).map_err(PasswdError::Usage)?;
    if cmd.iterations == 0 {
        return Err(PasswdError::Usage("--iterations must be at least 1".into()));
    }
    let existing = match std::fs::read_to_string(&cmd.file) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(file_error(&cmd.file, format!("cannot read: {e}"))),
    };
    let mut passwords = match &existing {
        Some(text) => PasswordFile::parse(text).map_err(|e| file_error(&cmd.file, e))?,
        None => PasswordFile::default(),
    };
    let done = if cmd.delete {
        if !passwords.remove(&cmd.user) {
            return Err(file_error(&cmd.file, format!("no user {:?}", cmd.user)));
        }
        format!("{}: user {:?} deleted", cmd.file.display(), cmd.user)
    } else {
        let password = if cmd.stdin {
            read_stdin()?
        } else {
            prompt_twice()?
        };
        passwords.set(&cmd.user, Hash::new(password.as_bytes(), cmd.iterations));
        format!("{}: user {:?} set", cmd.file.display(), cmd.user)
    };
    write(&cmd.file, &passwords.render())
        .map_err(|e| file_error(&cmd.file, format!("cannot write: {e}")))?;
    Ok(done)
}

fn read_stdin() -> Result<String, PasswdError> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).map_err(|e| {
        PasswdError::Usage(format!("cannot read the password from standard input: {e}"))
    })?;
    let password = line.trim_end_matches(['\n', '\r']).to_owned();
    if password.is_empty() {
        return Err(PasswdError::Usage(
            "empty password on standard input".into(),
        ));
    }
    Ok(password)
}

/// Asks on the terminal with echo off, twice.
fn prompt_twice() -> Result<String, PasswdError> {
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(|e| {
            PasswdError::Usage(format!(
                "no terminal to ask the password on ({e}): use --stdin"
            ))
        })?;
    let first = prompt(&tty, "Password: ")?;
    let second = prompt(&tty, "Reenter password: ")?;
    if first != second {
        return Err(PasswdError::Usage("the passwords do not match".into()));
    }
    if first.is_empty() {
        return Err(PasswdError::Usage("empty password".into()));
    }
    Ok(first)
}

fn prompt(tty: &std::fs::File, question: &str) -> Result<String, PasswdError> {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    let io = |e: &dyn std::fmt::Display| PasswdError::Usage(format!("terminal: {e}"));
    let mut out = tty;
    out.write_all(question.as_bytes()).map_err(|e| io(&e))?;
    out.flush().map_err(|e| io(&e))?;
    let saved = tcgetattr(tty).map_err(|e| io(&e))?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    tcsetattr(tty, SetArg::TCSANOW, &quiet).map_err(|e| io(&e))?;
    let mut line = String::new();
    let read = std::io::BufReader::new(tty).read_line(&mut line);
    // Echo back on whatever happened.
    let restored = tcsetattr(tty, SetArg::TCSANOW, &saved);
    let _ = out.write_all(b"\n");
    read.map_err(|e| io(&e))?;
    restored.map_err(|e| io(&e))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

/// Replaces `path` with `text` atomically, keeping an existing file's mode and
/// owner (new files: 0600).
fn write(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "passwd".into());
    let temp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let previous = std::fs::metadata(path).ok();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)?;
    let result = (|| {
        f.write_all(text.as_bytes())?;
        if let Some(m) = &previous {
            f.set_permissions(std::fs::Permissions::from_mode(m.mode() & 0o7777))?;
            // Only root can give a file away; anyone else made the old one too.
            if let Err(e) = std::os::unix::fs::fchown(&f, Some(m.uid()), Some(m.gid()))
                && e.kind() != std::io::ErrorKind::PermissionDenied
            {
                return Err(e);
            }
        }
        f.sync_all()?;
        std::fs::rename(&temp, path)?;
        std::fs::File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_added_changed_and_deleted_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        let mut f = PasswordFile::default();
        f.set("a", Hash::new(b"1", 1));
        write(&file, &f.render()).unwrap();
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        f.set("b", Hash::new(b"2", 1));
        write(&file, &f.render()).unwrap();
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o640,
            "the mode of an existing file is kept"
        );
        let back = PasswordFile::parse(&std::fs::read_to_string(&file).unwrap()).unwrap();
        assert!(back.verify("a", b"1") && back.verify("b", b"2"));
        let mut cmd = PasswdCommand::new(file.clone(), "a".into());
        cmd.delete = true;
        run(&cmd).unwrap();
        let back = PasswordFile::parse(&std::fs::read_to_string(&file).unwrap()).unwrap();
        assert_eq!(back.len(), 1);
        assert!(run(&cmd).is_err(), "deleting an absent user is an error");
    }

    #[test]
    fn a_broken_file_is_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "not a password line\n").unwrap();
        let mut cmd = PasswdCommand::new(file.clone(), "a".into());
        cmd.delete = true;
        let e = run(&cmd).unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "not a password line\n"
        );
        let bad = PasswdCommand::new(file, "a:b".into());
        assert!(matches!(run(&bad), Err(PasswdError::Usage(_))));
    }
}
