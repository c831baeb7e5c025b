//! The Debian package (`make deb`, `scripts/deb`): built here from the test's own
//! (debug) binary with fast compression, its contents listed with `dpkg-deb -c`, its
//! control files read (maintainer scripts parsed, md5sums checked against the
//! extracted files), and installed into a scratch directory with `dpkg -x` (the
//! machine's dpkg database untouched), where the installed binary runs and the
//! installed units pass `systemd-analyze verify`.

mod common;

use std::path::Path;
use std::process::Command;

fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program).args(args).output().unwrap_or_else(|error| panic!("run {program}: {error}"));
    assert!(output.status.success(), "{program} {args:?}: {}", common::text(&output.stderr));
    common::text(&output.stdout)
}

#[test]
fn package_holds_the_binary_units_config_and_completions_and_installs_into_a_scratch_root() {
    if Command::new("dpkg-deb").arg("--version").output().is_err() {
        println!("skipped: dpkg-deb is not installed (Debian's dpkg package provides it)");
        return;
    }
    let out = tempfile::tempdir().expect("tempdir");
    let out_dir = out.path().display().to_string();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/deb");
    let started = std::time::Instant::now();
    let built = run(&script.display().to_string(), &["--binary", env!("CARGO_BIN_EXE_pacer"), "--out", &out_dir, "--fast"]);
    println!("scripts/deb --fast took {:?}", started.elapsed());
    let deb = built.trim().to_string();
    let arch = run("dpkg", &["--print-architecture"]).trim().to_string();
    assert_eq!(deb, format!("{out_dir}/pacer_{}_{arch}.deb", env!("CARGO_PKG_VERSION")));
    let leftovers: Vec<_> = std::fs::read_dir(out.path()).expect("read out dir").map(|entry| entry.expect("entry").file_name()).collect();
    assert_eq!(leftovers.len(), 1, "the staging tree is removed: {leftovers:?}");

    let listing = run("dpkg-deb", &["-c", &deb]);
    let files: Vec<&str> = listing.lines().filter_map(|line| line.split_whitespace().nth(5)).collect();
    for expected in [
        "./usr/bin/pacer",
        "./lib/systemd/system/pacer-agent.service",
        "./lib/systemd/system/pacer-scheduler.service",
        "./etc/pacer/config.yaml.example",
        "./etc/default/pacer",
        "./usr/share/bash-completion/completions/pacer",
        "./usr/share/zsh/vendor-completions/_pacer",
        "./usr/share/fish/vendor_completions.d/pacer.fish",
        "./usr/share/doc/pacer/README.md",
        "./usr/share/doc/pacer/copyright",
        "./usr/share/doc/pacer/changelog.gz",
        "./usr/lib/pacer/agents/ocf/pacer/witness",
        "./usr/lib/pacer/agents/fence/fence_pacer_local",
    ] {
        assert!(files.contains(&expected), "{expected} missing from the package:\n{listing}");
    }
    assert!(listing.lines().all(|line| line.contains(" root/root ")), "everything owned by root:\n{listing}");
    assert!(listing.lines().any(|line| line.starts_with("-rwxr-xr-x") && line.ends_with("./usr/bin/pacer")), "{listing}");

    assert_eq!(run("dpkg-deb", &["-f", &deb, "Package"]).trim(), "pacer");
    assert_eq!(run("dpkg-deb", &["-f", &deb, "Version"]).trim(), env!("CARGO_PKG_VERSION"));
    let control = tempfile::tempdir().expect("tempdir");
    run("dpkg-deb", &["-e", &deb, &control.path().display().to_string()]);
    let conffiles = std::fs::read_to_string(control.path().join("conffiles")).expect("conffiles");
    assert_eq!(conffiles.lines().collect::<Vec<_>>(), ["/etc/default/pacer", "/etc/pacer/config.yaml.example"]);
    let postinst = std::fs::read_to_string(control.path().join("postinst")).expect("postinst");
    assert!(postinst.contains("adduser --system --group") && postinst.contains("systemctl daemon-reload"), "{postinst}");
    // Nothing is enabled or started by the package; the agent is never stopped by it.
    assert!(!postinst.contains(" enable ") && !postinst.contains(" start "), "{postinst}");
    let prerm = std::fs::read_to_string(control.path().join("prerm")).expect("prerm");
    assert!(prerm.contains("deb-systemd-invoke stop pacer-scheduler.service"), "prerm stops the scheduler on removal: {prerm}");
    assert!(prerm.contains("systemctl is-active --quiet pacer-agent.service") && prerm.contains("exit 1"), "prerm refuses while the agent runs: {prerm}");
    assert!(!prerm.contains("stop pacer-agent.service"), "prerm never stops the agent: {prerm}");
    for script in ["postinst", "prerm", "postrm"] {
        run("sh", &["-n", &control.path().join(script).display().to_string()]);
    }

    let root = tempfile::tempdir().expect("tempdir");
    let root_dir = root.path().display().to_string();
    run("dpkg", &["-x", &deb, &root_dir]);
    // md5sums lists every file but the conffiles, with the right sums.
    let md5sums = std::fs::read_to_string(control.path().join("md5sums")).expect("md5sums");
    let summed: Vec<&str> = md5sums.lines().filter_map(|line| line.split_once("  ").map(|(_, path)| path)).collect();
    let shipped: Vec<&str> = files.iter().filter(|path| !path.ends_with('/') && !path.starts_with("./etc/")).map(|path| &path[2..]).collect();
    assert_eq!(summed.len(), shipped.len(), "md5sums:\n{md5sums}\nfiles: {shipped:?}");
    assert!(shipped.iter().all(|path| summed.contains(path)), "md5sums:\n{md5sums}\nfiles: {shipped:?}");
    let check = Command::new("md5sum").args(["--check", "--quiet", &control.path().join("md5sums").display().to_string()]).current_dir(root.path()).output();
    let check = check.expect("run md5sum");
    assert!(check.status.success(), "md5sum --check: {}{}", common::text(&check.stdout), common::text(&check.stderr));
    // The changelog's latest entry is this version.
    let changelog = Command::new("gzip").args(["-dc", &root.path().join("usr/share/doc/pacer/changelog.gz").display().to_string()]).output().expect("gunzip");
    assert!(common::text(&changelog.stdout).starts_with(&format!("pacer ({}) ", env!("CARGO_PKG_VERSION"))), "{}", common::text(&changelog.stdout));

    let installed = root.path().join("usr/bin/pacer");
    let version = run(&installed.display().to_string(), &["--version"]);
    assert_eq!(version.trim(), format!("pacer {}", env!("CARGO_PKG_VERSION")));
    let bash = std::fs::read_to_string(root.path().join("usr/share/bash-completion/completions/pacer")).expect("bash completion");
    assert!(bash.contains("complete") && bash.contains("pacer"), "{bash}");
    run("bash", &["-n", &root.path().join("usr/share/bash-completion/completions/pacer").display().to_string()]);

    // The installed units against the installed binary: verify needs the targets they
    // name, so the host's unit directory is copied into the scratch root.
    if Command::new("systemd-analyze").arg("--version").output().is_err() {
        println!("skipped systemd-analyze verify of the installed units: systemd-analyze is not installed");
        return;
    }
    let system_units = Path::new("/usr/lib/systemd/system");
    let copied = root.path().join("usr/lib/systemd");
    std::fs::create_dir_all(&copied).expect("create usr/lib/systemd");
    run("cp", &["-r", &system_units.display().to_string(), &copied.display().to_string()]);
    let output = Command::new("systemd-analyze")
        .args(["verify", "--man=no", &format!("--root={root_dir}"), "pacer-agent.service", "pacer-scheduler.service"])
        .output()
        .expect("run systemd-analyze");
    let said = format!("{}{}", common::text(&output.stdout), common::text(&output.stderr));
    assert!(output.status.success() && said.trim().is_empty(), "systemd-analyze verify --root: {said}");
}
