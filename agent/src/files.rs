//! What `check-config` (and `run`, before it starts anything) says about a file
//! the configuration names: missing, unreadable, not a file, not a directory,
//! not writable, not executable. One wording for every key.

use std::io;
use std::path::Path;

/// Why a named file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FileProblem {
    #[error("missing")]
    Missing,
    #[error("unreadable ({0})")]
    Unreadable(io::Error),
    #[error("not a file")]
    NotAFile,
    #[error("not a directory")]
    NotADirectory,
    #[error("not writable ({0})")]
    NotWritable(io::Error),
    #[error("not executable")]
    NotExecutable,
    /// The file reads but does not hold what the key wants.
    #[error("{0}")]
    Invalid(String),
}

impl FileProblem {
    /// A bounded label for the problem.
    pub fn kind(&self) -> &'static str {
        match self {
            FileProblem::Missing => "missing",
            FileProblem::Unreadable(_) => "unreadable",
            FileProblem::NotAFile => "not_a_file",
            FileProblem::NotADirectory => "not_a_directory",
            FileProblem::NotWritable(_) => "not_writable",
            FileProblem::NotExecutable => "not_executable",
            FileProblem::Invalid(_) => "invalid",
        }
    }
}

/// A file the configuration names, and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("`{key}`: {}: {problem}", path.display())]
pub struct FileError {
    /// The key path (`sources.ipmi.bmcs[0].password_file`).
    pub key: String,
    pub path: std::path::PathBuf,
    pub problem: FileProblem,
}

impl FileError {
    pub fn new(key: impl Into<String>, path: &Path, problem: FileProblem) -> Self {
        FileError {
            key: key.into(),
            path: path.to_owned(),
            problem,
        }
    }
}

fn metadata(path: &Path) -> Result<std::fs::Metadata, FileProblem> {
    std::fs::metadata(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => FileProblem::Missing,
        _ => FileProblem::Unreadable(e),
    })
}

/// A file that exists, is a file and can be read by this process.
pub fn readable_file(path: &Path) -> Result<(), FileProblem> {
    if !metadata(path)?.is_file() {
        return Err(FileProblem::NotAFile);
    }
    // Opening is the only honest test of "readable" (ACLs, capabilities, root).
    std::fs::File::open(path).map_err(FileProblem::Unreadable)?;
    Ok(())
}

/// A file that exists and has an execute bit (the agent runs it).
pub fn executable_file(path: &Path) -> Result<(), FileProblem> {
    use std::os::unix::fs::PermissionsExt;
    let meta = metadata(path)?;
    if !meta.is_file() {
        return Err(FileProblem::NotAFile);
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(FileProblem::NotExecutable);
    }
    Ok(())
}

/// A directory the agent writes to: it exists and a file can be created in it,
/// or it is missing and its nearest existing ancestor is such a directory (the
/// agent creates the rest at start).
pub fn writable_dir(path: &Path) -> Result<(), FileProblem> {
    let mut dir = path;
    loop {
        match std::fs::metadata(dir) {
            Ok(meta) if meta.is_dir() => break,
            Ok(_) => return Err(FileProblem::NotADirectory),
            Err(e) if e.kind() == io::ErrorKind::NotADirectory => {
                return Err(FileProblem::NotADirectory);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => match dir.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => dir = parent,
                _ => return Err(FileProblem::Missing),
            },
            Err(e) => return Err(FileProblem::Unreadable(e)),
        }
    }
    let probe = dir.join(format!(".sitewatch-check-{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map_err(FileProblem::NotWritable)?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_problem_is_told_apart() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        assert!(readable_file(&file).is_ok());
        assert_eq!(
            readable_file(&dir.path().join("nope")).unwrap_err().kind(),
            "missing"
        );
        assert_eq!(readable_file(dir.path()).unwrap_err().kind(), "not_a_file");
        assert_eq!(executable_file(&file).unwrap_err().kind(), "not_executable");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(executable_file(&file).is_ok());
        assert!(writable_dir(dir.path()).is_ok());
        // Missing, under a writable directory: created at start.
        assert!(writable_dir(&dir.path().join("a/b")).is_ok());
        assert_eq!(writable_dir(&file).unwrap_err().kind(), "not_a_directory");
        assert_eq!(
            writable_dir(&file.join("sub")).unwrap_err().kind(),
            "not_a_directory"
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "probe removed"
        );
    }
}
