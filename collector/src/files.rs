//! What `check-config` says about a file a configuration names: missing,
//! unreadable, not a file, not a directory, not writable. One wording for every
//! key, so that an operator reads the same words whatever the file is for.

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
        }
    }
}

/// An I/O error in the same words: `missing`, `unreadable (permission denied)`.
pub fn describe(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "missing".to_owned(),
        io::ErrorKind::PermissionDenied => "unreadable (permission denied)".to_owned(),
        io::ErrorKind::IsADirectory => "not a file".to_owned(),
        _ => e.to_string(),
    }
}

/// A file that exists, is a file and can be read by this process.
pub fn readable_file(path: &Path) -> Result<(), FileProblem> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => FileProblem::Missing,
        _ => FileProblem::Unreadable(e),
    })?;
    if !meta.is_file() {
        return Err(FileProblem::NotAFile);
    }
    // Opening is the only honest test of "readable" (ACLs, capabilities, root).
    std::fs::File::open(path).map_err(FileProblem::Unreadable)?;
    Ok(())
}

/// A directory that exists and in which this process can create a file
/// (tested by creating and removing one).
pub fn writable_dir(path: &Path) -> Result<(), FileProblem> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => FileProblem::Missing,
        _ => FileProblem::Unreadable(e),
    })?;
    if !meta.is_dir() {
        return Err(FileProblem::NotADirectory);
    }
    let probe = path.join(format!(".sitewatch-check-{}", std::process::id()));
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
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        assert!(readable_file(&file).is_ok());
        assert_eq!(
            readable_file(&dir.path().join("nope")).unwrap_err().kind(),
            "missing"
        );
        assert_eq!(readable_file(dir.path()).unwrap_err().kind(), "not_a_file");
        assert!(writable_dir(dir.path()).is_ok());
        assert_eq!(writable_dir(&file).unwrap_err().kind(), "not_a_directory");
        assert_eq!(
            writable_dir(&dir.path().join("nope")).unwrap_err().kind(),
            "missing"
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "probe removed"
        );
    }
}
