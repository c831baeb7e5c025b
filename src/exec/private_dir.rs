//! Directories only this process's user may change: the agent's state dir and the
//! executor's work dir (where the shims agents run as root live). A directory another
//! user created first, or a symlink planted in its place, is refused, never used.

use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why a directory is not private.
#[derive(Debug, thiserror::Error)]
pub enum PrivateDirError {
    /// It could not be created or examined (permissions, full disk).
    #[error("prepare {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    /// It exists but is not ours alone: a symlink, not a directory, owned by another
    /// user, or writable by others. Not retryable: an administrator must look.
    #[error("refuse {path}: {reason}")]
    NotPrivate { path: PathBuf, reason: String },
}

/// What to do with a directory of ours that others may read or write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loose {
    /// Set it to 0700 (a directory only we use, such as the work dir).
    Tighten,
    /// Refuse it if group or others may write (the state dir: the administrator chose
    /// it and should know).
    RefuseWritable,
}

/// Creates `path` (and missing parents) with mode 0700 when it does not exist, then
/// checks it is a real directory (not a symlink) owned by our effective uid.
pub fn ensure_private_dir(path: &Path, loose: Loose) -> Result<(), PrivateDirError> {
    let io_error = |source| PrivateDirError::Io { path: path.to_path_buf(), source };
    let refused = |reason: String| PrivateDirError::NotPrivate { path: path.to_path_buf(), reason };
    match std::fs::symlink_metadata(path) {
        Ok(_) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(path).map_err(io_error)?;
        }
        Err(error) => return Err(io_error(error)),
    }
    let metadata = std::fs::symlink_metadata(path).map_err(io_error)?;
    if metadata.file_type().is_symlink() {
        return Err(refused("it is a symlink".into()));
    }
    if !metadata.is_dir() {
        return Err(refused("it is not a directory".into()));
    }
    // SAFETY: geteuid(2) takes nothing and cannot fail.
    let uid = unsafe { libc::geteuid() };
    if metadata.uid() != uid {
        return Err(refused(format!("it is owned by uid {}, not by this process's uid {uid}", metadata.uid())));
    }
    let mode = metadata.mode() & 0o7777;
    match loose {
        Loose::Tighten if mode & 0o077 != 0 => {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).map_err(io_error)?;
        }
        Loose::RefuseWritable if mode & 0o022 != 0 => {
            return Err(refused(format!("group or others may write it (mode {mode:o})")));
        }
        _ => {}
    }
    Ok(())
}

/// Writes `text` to `path` as a new file with `mode`, replacing what was there by a
/// rename: a symlink planted at `path` is replaced, never followed. The temporary
/// file is created with O_EXCL (which does not follow a symlink either).
pub fn replace_file(path: &Path, text: &str, mode: u32) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let Some(name) = path.file_name() else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "no file name"));
    };
    let temporary = path.with_file_name(format!(".{}.new-{}", name.to_string_lossy(), std::process::id()));
    match std::fs::remove_file(&temporary) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(error),
    }
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&temporary)?;
    let written = file.write_all(text.as_bytes()).and_then(|()| file.set_permissions(std::fs::Permissions::from_mode(mode)));
    if let Err(error) = written.and_then(|()| std::fs::rename(&temporary, path)) {
        let _ = std::fs::remove_file(&temporary);
        return Err(error);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_dir_is_made_private_and_a_loose_one_is_tightened_or_refused() {
        let root = tempfile::tempdir().expect("tempdir");
        let fresh = root.path().join("a/b");
        ensure_private_dir(&fresh, Loose::RefuseWritable).expect("created");
        assert_eq!(std::fs::metadata(&fresh).expect("stat").mode() & 0o777, 0o700);
        std::fs::set_permissions(&fresh, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        assert!(matches!(ensure_private_dir(&fresh, Loose::RefuseWritable), Err(PrivateDirError::NotPrivate { .. })));
        ensure_private_dir(&fresh, Loose::Tighten).expect("tightened");
        assert_eq!(std::fs::metadata(&fresh).expect("stat").mode() & 0o777, 0o700);
        let link = root.path().join("link");
        std::os::unix::fs::symlink(&fresh, &link).expect("symlink");
        assert!(matches!(ensure_private_dir(&link, Loose::Tighten), Err(PrivateDirError::NotPrivate { .. })));
    }

    #[test]
    fn a_file_is_replaced_not_written_through_a_symlink() {
        let root = tempfile::tempdir().expect("tempdir");
        let victim = root.path().join("victim");
        std::fs::write(&victim, "keep").expect("write");
        let path = root.path().join("shim");
        std::os::unix::fs::symlink(&victim, &path).expect("symlink");
        replace_file(&path, "new", 0o755).expect("replace");
        assert_eq!(std::fs::read_to_string(&victim).expect("read"), "keep");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "new");
        assert!(!std::fs::symlink_metadata(&path).expect("stat").file_type().is_symlink());
        assert_eq!(std::fs::metadata(&path).expect("stat").mode() & 0o777, 0o755);
    }
}
