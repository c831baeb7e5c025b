//! Reading manifest files: files, directories (recursively) and standard input.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::api::manifest::{Diagnostic, Source};

fn is_manifest(path: &Path) -> bool {
    matches!(path.extension().and_then(|ext| ext.to_str()), Some("yaml" | "yml" | "json"))
}

fn collect(path: &Path, found: &mut Vec<PathBuf>, problems: &mut Vec<Diagnostic>) {
    let problem = |message: String| Diagnostic { file: path.display().to_string(), position: None, object: None, path: None, message };
    let metadata = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(error) => return problems.push(problem(format!("read: {error}"))),
    };
    if !metadata.is_dir() {
        found.push(path.to_path_buf());
        return;
    }
    let entries = match std::fs::read_dir(path) {
        Ok(entries) => entries,
        Err(error) => return problems.push(problem(format!("read directory: {error}"))),
    };
    let mut children: Vec<PathBuf> = entries.filter_map(|entry| entry.ok().map(|entry| entry.path())).collect();
    children.sort();
    for child in children {
        if child.is_dir() {
            collect(&child, found, problems);
        } else if is_manifest(&child) {
            found.push(child);
        }
    }
}

/// Reads every manifest named by `paths`: a file, a directory (its .yaml, .yml and
/// .json files, recursively, in name order) or `-` for standard input. Files that
/// cannot be read are reported as diagnostics.
pub fn read_sources(paths: &[String]) -> (Vec<Source>, Vec<Diagnostic>) {
    let mut sources = Vec::new();
    let mut problems = Vec::new();
    for path in paths {
        if path == "-" {
            let mut text = String::new();
            match std::io::stdin().read_to_string(&mut text) {
                Ok(_) => sources.push(Source { name: "-".into(), text }),
                Err(error) => problems.push(Diagnostic::stored(None, None, format!("read standard input: {error}"))),
            }
            continue;
        }
        let mut files = Vec::new();
        collect(Path::new(path), &mut files, &mut problems);
        for file in files {
            match std::fs::read(&file) {
                Ok(bytes) => match String::from_utf8(bytes) {
                    Ok(text) => sources.push(Source { name: file.display().to_string(), text }),
                    Err(_) => problems.push(Diagnostic {
                        file: file.display().to_string(),
                        position: None,
                        object: None,
                        path: None,
                        message: "not UTF-8 text".into(),
                    }),
                },
                Err(error) => {
                    problems.push(Diagnostic { file: file.display().to_string(), position: None, object: None, path: None, message: format!("read: {error}") })
                }
            }
        }
    }
    (sources, problems)
}
