//! Secret parameters (`{secretFile: PATH}`): read from files on this host just before
//! a run, never earlier and never kept. The value goes into the agent's environment or
//! stdin and nowhere else: errors name the parameter and the file, never the content,
//! and what the agent prints is scrubbed of it (`Secrets::scrub`) before it becomes a
//! failure reason.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};

/// The largest secret file read.
pub const MAX_SECRET_BYTES: u64 = 64 * 1024;

/// Values shorter than this are not scrubbed from an agent's output: replacing every
/// `a` of a one-letter password would make the output unreadable and hide nothing.
const MIN_SCRUBBED_LEN: usize = 4;

/// Secret values read for one run, by parameter name. `Debug` shows the names only.
#[derive(Default)]
pub struct Secrets(Vec<(String, String)>);

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.iter().map(|(name, _)| name)).finish()
    }
}

impl Secrets {
    /// Name and value of each secret.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(name, value)| (name.as_str(), value.as_str()))
    }

    /// Replaces every secret value in `text` (an agent's output, an exit reason) by
    /// `(redacted)`.
    pub fn scrub(&self, text: &mut String) {
        for (_, value) in &self.0 {
            if value.len() >= MIN_SCRUBBED_LEN && text.contains(value.as_str()) {
                *text = text.replace(value.as_str(), crate::api::params::REDACTED);
            }
        }
    }
}

/// Reads every secret file of a run (parameter name to path); the first that cannot
/// be used is the error, naming it.
pub fn read_secret_files(files: &BTreeMap<String, String>) -> Result<Secrets, String> {
    let mut secrets = Vec::with_capacity(files.len());
    for (param, path) in files {
        let value = read_secret_file(path).map_err(|reason| format!("read secret parameter {param} from {path}: {reason}"))?;
        secrets.push((param.clone(), value));
    }
    Ok(Secrets(secrets))
}

/// One secret file: a regular file (not a symbolic link, FIFO or device: opened with
/// `O_NOFOLLOW` and `O_NONBLOCK`, checked on the open descriptor), owned by root or
/// this process's user, granting nothing to group or others, at most
/// `MAX_SECRET_BYTES` of UTF-8 without NUL. One trailing newline (`\n` or `\r\n`)
/// is not part of the value. The error says why, never what the file holds.
pub fn read_secret_file(path: &str) -> Result<String, String> {
    let file =
        std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path).map_err(|error| match error.raw_os_error() {
            Some(libc::ENOENT) => "it does not exist on this host".to_string(),
            Some(libc::ELOOP) => "it is a symbolic link; give the file's own path".to_string(),
            _ => error.to_string(),
        })?;
    let metadata = file.metadata().map_err(|error| error.to_string())?;
    if !metadata.file_type().is_file() {
        return Err("it is not a regular file".to_string());
    }
    let mode = metadata.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(format!("its mode {mode:04o} gives group or others access; allow its owner only (chmod 600)"));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let own_user = unsafe { libc::geteuid() };
    if metadata.uid() != 0 && metadata.uid() != own_user {
        return Err(format!("it is owned by uid {}, neither root nor this agent's user (uid {own_user})", metadata.uid()));
    }
    let mut bytes = Vec::new();
    file.take(MAX_SECRET_BYTES + 1).read_to_end(&mut bytes).map_err(|error| error.to_string())?;
    if bytes.len() as u64 > MAX_SECRET_BYTES {
        return Err(format!("it is larger than {MAX_SECRET_BYTES} bytes"));
    }
    let text = String::from_utf8(bytes).map_err(|_| "it is not UTF-8 text".to_string())?;
    if text.contains('\0') {
        return Err("it holds a NUL byte".to_string());
    }
    let value = text.strip_suffix('\n').map(|rest| rest.strip_suffix('\r').unwrap_or(rest)).unwrap_or(&text);
    Ok(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn secret_file(dir: &std::path::Path, name: &str, content: &str, mode: u32) -> String {
        let path = dir.join(name);
        std::fs::write(&path, content).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        path.display().to_string()
    }

    #[test]
    fn an_owner_only_file_gives_its_content_less_the_trailing_newline() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(read_secret_file(&secret_file(dir.path(), "a", "s3cret-pw\n", 0o600)).as_deref(), Ok("s3cret-pw"));
        assert_eq!(read_secret_file(&secret_file(dir.path(), "b", "pw\r\n", 0o400)).as_deref(), Ok("pw"));
        assert_eq!(read_secret_file(&secret_file(dir.path(), "c", "two\nlines\n\n", 0o600)).as_deref(), Ok("two\nlines\n"));
    }

    #[test]
    fn unsafe_files_are_refused_without_quoting_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cases = [
            (secret_file(dir.path(), "group", "s3cret-pw", 0o640), "mode 0640 gives group or others access"),
            (secret_file(dir.path(), "world", "s3cret-pw", 0o604), "mode 0604"),
            (secret_file(dir.path(), "nul", "s3\0cret-pw", 0o600), "NUL"),
            (dir.path().join("missing").display().to_string(), "does not exist"),
            (dir.path().display().to_string(), "not a regular file"),
        ];
        for (path, expected) in &cases {
            let error = read_secret_file(path).expect_err(path);
            assert!(error.contains(expected), "{path}: {error}");
            assert!(!error.contains("s3cret"), "{error}");
        }
        let target = secret_file(dir.path(), "target", "s3cret-pw", 0o600);
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        let error = read_secret_file(&link.display().to_string()).expect_err("a symlink");
        assert!(error.contains("symbolic link"), "{error}");
    }

    #[test]
    fn errors_name_the_parameter_and_file_and_outputs_are_scrubbed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bad = secret_file(dir.path(), "bad", "s3cret-pw", 0o660);
        let error = read_secret_files(&BTreeMap::from([("passwd".to_string(), bad.clone())])).expect_err("group-writable");
        assert!(error.starts_with(&format!("read secret parameter passwd from {bad}: ")), "{error}");
        let good = secret_file(dir.path(), "good", "s3cret-pw\n", 0o600);
        let secrets = read_secret_files(&BTreeMap::from([("passwd".to_string(), good)])).expect("readable");
        assert_eq!(format!("{secrets:?}"), "[\"passwd\"]");
        let mut output = "login failed for admin:s3cret-pw".to_string();
        secrets.scrub(&mut output);
        assert_eq!(output, "login failed for admin:(redacted)");
    }
}
