//! The bad-input corpus: every file in tests/bad-input/ must be refused by
//! `pacer apply` with exit code 1, exactly the problems in its `.errors` file
//! (`FILE:LINE:COL: Kind/name: field.path: reason`), and nothing written to etcd.
//!
//! A case may come with `NAME.stored.yaml`, applied first (and required to succeed), so
//! that a change can be checked against stored objects. `UPDATE_EXPECT=1` rewrites the
//! `.errors` files from what pacer prints; review the diff before committing.

mod common;

use std::path::{Path, PathBuf};

use common::{TestEtcd, pacer, text};

fn cases(directory: &Path) -> Vec<PathBuf> {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(directory)
        .expect("read tests/bad-input")
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| {
            let name = path.file_name().and_then(|name| name.to_str()).unwrap_or_default();
            name.ends_with(".yaml") && !name.ends_with(".stored.yaml")
        })
        .collect();
    cases.sort();
    cases
}

#[tokio::test]
async fn every_bad_input_is_refused_with_its_location_and_nothing_is_written() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let directory = root.join("tests/bad-input");
    let cases = cases(&directory);
    assert!(cases.len() >= 30, "the corpus has {} cases; it should have at least 30", cases.len());
    let etcd = TestEtcd::start();
    let update = std::env::var_os("UPDATE_EXPECT").is_some();
    let mut failures = Vec::new();
    for (index, case) in cases.iter().enumerate() {
        let name = case.file_stem().and_then(|stem| stem.to_str()).unwrap_or_default().to_string();
        let prefix = format!("/bad-input/{index}-{name}");
        let relative = case.strip_prefix(root).unwrap_or(case).display().to_string();
        let stored = case.with_file_name(format!("{name}.stored.yaml"));
        let before = if stored.exists() {
            let stored_relative = stored.strip_prefix(root).unwrap_or(&stored).display().to_string();
            let output = pacer(&etcd.endpoint(), &prefix, &["apply", "-f", &stored_relative], None);
            assert!(output.status.success(), "{name}: applying {stored_relative} failed: {}", text(&output.stderr));
            etcd.dump(&prefix).await
        } else {
            Vec::new()
        };
        // Run from the repository root so file names in messages are stable.
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_pacer"))
            .current_dir(root)
            .args(["apply", "-f", &relative])
            .env("PACER_ETCD", etcd.endpoint())
            .env("PACER_PREFIX", &prefix)
            .output()
            .expect("run pacer");
        let stderr = text(&output.stderr);
        let expected_path = case.with_extension("errors");
        if output.status.code() != Some(1) {
            failures.push(format!("{name}: exit code {:?}, expected 1; stderr:\n{stderr}", output.status.code()));
        }
        if !stderr.lines().any(|line| line.starts_with(&format!("{relative}:"))) {
            failures.push(format!("{name}: no problem is located in {relative}; stderr:\n{stderr}"));
        }
        if update {
            std::fs::write(&expected_path, &stderr).expect("write .errors");
        } else {
            let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
            if expected != stderr {
                failures.push(format!("{name}: stderr differs from {}:\n--- expected\n{expected}--- actual\n{stderr}", expected_path.display()));
            }
        }
        let after = etcd.dump(&prefix).await;
        if after != before {
            failures.push(format!("{name}: etcd changed although the apply was refused: {} keys before, {} after", before.len(), after.len()));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n\n{}", failures.len(), cases.len(), failures.join("\n\n"));
}
