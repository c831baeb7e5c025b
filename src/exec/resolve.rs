//! From an agent name to a file: only inside the configured agent directories.
//!
//! Each name part must be one plain file name (no `/`, no `..`, no leading `.`); the
//! candidate is then canonicalized and must still lie inside the canonicalized agent
//! directory, so a symlink cannot lead an agent name out of it either.

use std::path::PathBuf;

/// Why an agent name did not resolve to a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unresolved {
    /// A name part is not a plain file name; nothing was looked up.
    BadName(String),
    /// No directory holds the agent.
    Missing,
    /// The file exists but leads outside its agent directory (symlink).
    Outside(PathBuf),
}

/// Checks one name part as `api::agent` does, again: the executor does not trust
/// that every caller parsed its names.
pub(crate) fn check_part(part: &str) -> Result<(), Unresolved> {
    let bad = part.is_empty() || part.contains('/') || part.contains("..") || part.starts_with('.') || part.chars().any(|c| c.is_control() || c == '\0');
    if bad { Err(Unresolved::BadName(part.to_string())) } else { Ok(()) }
}

/// Finds `parts` joined under the first directory of `roots` that holds them.
pub(crate) fn resolve(roots: &[PathBuf], parts: &[&str]) -> Result<PathBuf, Unresolved> {
    for part in parts {
        check_part(part)?;
    }
    for root in roots {
        let mut candidate = root.clone();
        for part in parts {
            candidate.push(part);
        }
        if !candidate.exists() {
            continue;
        }
        let (Ok(real_root), Ok(real_candidate)) = (root.canonicalize(), candidate.canonicalize()) else {
            continue;
        };
        if !real_candidate.starts_with(&real_root) || real_candidate == real_root {
            return Err(Unresolved::Outside(candidate));
        }
        return Ok(candidate);
    }
    Err(Unresolved::Missing)
}

/// The directories searched, for messages.
pub(crate) fn describe(roots: &[PathBuf]) -> String {
    roots.iter().map(|root| root.display().to_string()).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_walk_out_are_refused_before_any_lookup() {
        let roots = vec![PathBuf::from("/usr/lib/ocf/resource.d")];
        for bad in [&["..", "x"][..], &["heartbeat", "../../../bin/sh"], &["heartbeat", "a/b"], &["", "x"], &[".hidden", "x"], &["p", "x\0y"]] {
            assert!(matches!(resolve(&roots, bad), Err(Unresolved::BadName(_))), "{bad:?} accepted");
        }
    }

    #[test]
    fn a_symlink_out_of_the_directory_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("root");
        std::fs::create_dir(&root).expect("mkdir");
        std::os::unix::fs::symlink("/bin/sh", root.join("escape")).expect("symlink");
        std::fs::write(root.join("inside"), "#!/bin/sh\n").expect("write");
        assert!(matches!(resolve(std::slice::from_ref(&root), &["escape"]), Err(Unresolved::Outside(_))));
        assert_eq!(resolve(std::slice::from_ref(&root), &["inside"]), Ok(root.join("inside")));
        assert_eq!(resolve(std::slice::from_ref(&root), &["absent"]), Err(Unresolved::Missing));
    }
}
