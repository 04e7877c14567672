//! The per-session directory behind `tvm.rpc.server.upload` / `download` / `remove`.
//!
//! Names are confined to the directory: only plain relative components are accepted, so
//! absolute paths, `..` and the like are refused before any file system call. The directory is
//! created on first use and removed with the session.

use std::fs;
use std::path::{Component, Path, PathBuf};

use tempfile::TempDir;

use super::SessionError;

/// Longest file name (with its subdirectories) a client may use.
const MAX_NAME_LEN: usize = 1024;

#[derive(Debug, Default)]
pub struct Workspace {
    /// Where session directories are created; the system temp dir when `None`.
    parent: Option<PathBuf>,
    dir: Option<TempDir>,
}

impl Workspace {
    pub fn new(parent: Option<PathBuf>) -> Self {
        Workspace { parent, dir: None }
    }

    /// The session directory, if it has been created.
    pub fn path(&self) -> Option<&Path> {
        self.dir.as_ref().map(TempDir::path)
    }

    fn dir(&mut self) -> Result<&Path, SessionError> {
        if self.dir.is_none() {
            let mut builder = tempfile::Builder::new();
            builder.prefix("tensor-rpc-session-");
            let dir = match &self.parent {
                Some(parent) => builder.tempdir_in(parent),
                None => builder.tempdir(),
            }
            .map_err(|e| {
                SessionError::Workspace(format!("cannot create session directory: {e}"))
            })?;
            self.dir = Some(dir);
        }
        Ok(self.dir.as_ref().expect("just created").path())
    }

    /// The path of `name` inside the session directory, or an error if `name` could leave it.
    pub fn resolve(&mut self, name: &str) -> Result<PathBuf, SessionError> {
        check_name(name)?;
        Ok(self.dir()?.join(name))
    }

    pub fn write(&mut self, name: &str, data: &[u8]) -> Result<(), SessionError> {
        let path = self.resolve(name)?;
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|e| io_error("create directory for", name, e))?;
        }
        fs::write(&path, data).map_err(|e| io_error("write", name, e))
    }

    pub fn read(&mut self, name: &str) -> Result<Vec<u8>, SessionError> {
        let path = self.resolve(name)?;
        fs::read(&path).map_err(|e| io_error("read", name, e))
    }

    pub fn remove(&mut self, name: &str) -> Result<(), SessionError> {
        let path = self.resolve(name)?;
        let meta = fs::symlink_metadata(&path).map_err(|e| io_error("remove", name, e))?;
        if meta.is_dir() { fs::remove_dir_all(&path) } else { fs::remove_file(&path) }
            .map_err(|e| io_error("remove", name, e))
    }
}

fn io_error(action: &str, name: &str, e: std::io::Error) -> SessionError {
    SessionError::Workspace(format!("cannot {action} '{name}': {e}"))
}

/// Accepts only non-empty names made of plain components (`a.txt`, `lib/m.so`).
fn check_name(name: &str) -> Result<(), SessionError> {
    let refuse =
        |why: &str| Err(SessionError::Workspace(format!("refused file name '{name}': {why}")));
    if name.is_empty() {
        return refuse("empty");
    }
    if name.len() > MAX_NAME_LEN {
        return refuse("too long");
    }
    if name.contains('\0') {
        return refuse("contains NUL");
    }
    for component in Path::new(name).components() {
        match component {
            Component::Normal(_) => {}
            Component::ParentDir => return refuse("'..' leaves the session directory"),
            Component::RootDir | Component::Prefix(_) => {
                return refuse("absolute paths are not allowed");
            }
            Component::CurDir => return refuse("'.' components are not allowed"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_file_reads_back() {
        let mut ws = Workspace::default();
        ws.write("sub/greeting.txt", b"hello").unwrap();
        assert_eq!(ws.read("sub/greeting.txt").unwrap(), b"hello");
    }

    #[test]
    fn removed_file_is_gone() {
        let mut ws = Workspace::default();
        ws.write("f", b"x").unwrap();
        ws.remove("f").unwrap();
        assert!(ws.read("f").is_err());
    }

    #[test]
    fn names_that_leave_the_directory_are_refused() {
        let mut ws = Workspace::default();
        for name in ["../x", "a/../../x", "/etc/passwd", "", "./x", "a\0b"] {
            assert!(ws.resolve(name).is_err(), "{name:?}");
        }
    }

    #[test]
    fn directory_is_removed_with_the_workspace() {
        let mut ws = Workspace::default();
        ws.write("f", b"x").unwrap();
        let dir = ws.path().unwrap().to_path_buf();
        drop(ws);
        assert!(!dir.exists());
    }
}
