//! Console benchmark (`make bench-console`, part of `make bench`): the page of `pacer
//! console` in Debian's headless Chromium (`e2e/console/bench.mjs`, playwright-core),
//! on `pacer up --nodes 3` with, for each N in `PACER_BENCH_CONSOLE` (default
//! `10,10000`), N resources:
//! - ten Dummy resources that run (monitored every 10 s), and N - 10 more that a
//!   Location keeps off every node, never probed (`resourceDiscovery: Never`, so the
//!   agents do not run 3 × N probes): each is a row of the status page, stopped with
//!   its reason;
//! - time to first render: navigation until the HTML arrived, DOMContentLoaded, the
//!   first contentful paint, and until the event stream's first frame is on screen
//!   ("live"); the page's JS heap and DOM nodes once live (p50 of
//!   `PACER_BENCH_LOADS`, default 5, fresh loads); the console process's RSS;
//! - event-to-screen latency: a node's standby and unstandby asked of the console's
//!   API (`PACER_BENCH_ROUNDS`, default 10, of each), from the request until the
//!   node's new state is on screen, and until the API answered (the write done).
//!
//! Figures only (`target/bench-console.txt`).

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Resources that run in every size.
const RUNNING: usize = 10;
const TOKEN: &str = "bench-console-token-0123456789";

fn manifests(count: usize) -> String {
    let mut text = support::dummies(RUNNING, "10s");
    let stopped: Vec<String> = (RUNNING..count).map(|index| format!("s{index}")).collect();
    for name in &stopped {
        text.push_str(&format!("---\napiVersion: pacer.io/v1alpha1\nkind: Resource\nmetadata: {{name: {name}}}\nspec:\n  agent: ocf:heartbeat:Dummy\n"));
    }
    for (index, chunk) in stopped.chunks(1000).enumerate() {
        text.push_str(&format!(
            "---\napiVersion: pacer.io/v1alpha1\nkind: Location\nmetadata: {{name: nowhere-{index}}}\nspec:\n  resources: [{}]\n  resourceDiscovery: Never\n  rules: [{{score: -INFINITY, expression: {{attribute: '#uname', operation: Defined}}}}]\n",
            chunk.join(", ")
        ));
    }
    text
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().find_map(|line| line.strip_prefix("VmRSS:")).and_then(|value| value.split_whitespace().next()?.parse().ok()).unwrap_or(0)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    support::percentile(&values, 0.5)
}

fn run(count: usize, loads: usize, rounds: usize) -> Result<String, String> {
    let up = support::up(5, Duration::from_secs(60))?;
    let applied = support::pacer(&up.endpoint, &["apply", "-f", "-"], Some(&manifests(count)), Duration::from_secs(600));
    if !applied.success() {
        return Err(format!("apply: {}", applied.failure()));
    }
    // Until the ten run and every resource is in the view.
    let begun = Instant::now();
    loop {
        let view = support::status(&up.endpoint, Duration::from_secs(120));
        let resources = view["resources"].as_array().cloned().unwrap_or_default();
        let running = resources.iter().filter(|resource| resource["role"] == "Started").count();
        if resources.len() >= count && running >= RUNNING {
            break;
        }
        if begun.elapsed() > Duration::from_secs(600) {
            return Err(format!("{running} of {RUNNING} running, {} resources in the view after 600 s", resources.len()));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let token = up.dir.path().join("token");
    std::fs::write(&token, TOKEN).map_err(|error| format!("token: {error}"))?;
    std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o600)).map_err(|error| format!("token: {error}"))?;
    let address_file = up.dir.path().join("console.addr");
    let child = Command::new(env!("CARGO_BIN_EXE_pacer"))
        .args(["console", "--listen", "127.0.0.1:0", "--token-file"])
        .arg(&token)
        .arg("--address-file")
        .arg(&address_file)
        .env("PACER_ETCD", &up.endpoint)
        .env("PACER_PREFIX", support::PREFIX)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|error| format!("pacer console: {error}"))?;
    let pid = child.id();
    let mut console = support::Proc::new(child);
    let begun = Instant::now();
    let address = loop {
        if let Ok(address) = std::fs::read_to_string(&address_file) {
            break address.trim().to_string();
        }
        if begun.elapsed() > Duration::from_secs(120) {
            return Err("the console did not start".to_string());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e/console");
    let output = Command::new("node")
        .arg(scripts.join("bench.mjs"))
        .args([format!("http://{address}/"), TOKEN.to_string(), loads.to_string(), rounds.to_string()])
        .current_dir(&scripts)
        .output()
        .map_err(|error| format!("node: {error}"))?;
    let rss = rss_kib(pid);
    console.stop();
    if !output.status.success() {
        return Err(format!("bench.mjs: {}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)));
    }
    let result: Value = serde_json::from_slice(&output.stdout).map_err(|error| format!("bench.mjs printed no JSON: {error}"))?;
    let loads = result["loads"].as_array().cloned().unwrap_or_default();
    let of = |field: &str| median(loads.iter().filter_map(|load| load[field].as_f64()).collect());
    let latency = result["latency"].as_array().cloned().unwrap_or_default();
    let mut to_screen: Vec<f64> = latency.iter().filter_map(|round| round["toScreen"].as_f64()).collect();
    to_screen.sort_by(f64::total_cmp);
    let mut to_answer: Vec<f64> = latency.iter().filter_map(|round| round["toAnswer"].as_f64()).collect();
    to_answer.sort_by(f64::total_cmp);
    Ok(format!(
        "{count:>6} | {:>6.0} | {:>8.1} | {:>7.0} | {:>6.0} | {:>6.0} | {:>7.1} | {:>8.0} | {:>7.1} | {:>5.0} / {:>5.0} | {:>5.0} / {:>5.0}",
        of("rows"),
        of("bytes") / 1024.0,
        of("responseEnd"),
        of("domContentLoaded"),
        of("firstContentfulPaint"),
        of("live") / 1000.0,
        of("domNodes"),
        of("jsHeapUsed") / 1_048_576.0,
        support::percentile(&to_screen, 0.5),
        support::percentile(&to_screen, 0.99),
        support::percentile(&to_answer, 0.5),
        support::percentile(&to_answer, 0.99),
    ) + &format!(" | {:>7.1}", rss as f64 / 1024.0))
}

fn main() {
    let sizes: Vec<usize> = std::env::var("PACER_BENCH_CONSOLE")
        .unwrap_or_else(|_| "10,10000".to_string())
        .split(',')
        .filter_map(|size| size.trim().parse().ok())
        .map(|size: usize| size.max(RUNNING))
        .collect();
    let loads = std::env::var("PACER_BENCH_LOADS").ok().and_then(|text| text.parse().ok()).unwrap_or(5);
    let rounds = std::env::var("PACER_BENCH_ROUNDS").ok().and_then(|text| text.parse().ok()).unwrap_or(10);
    let mut report = String::from(
        "console page (p50 of fresh loads; latency in ms, p50 / p99)\n     N |   rows | HTML KiB | HTML ms | DCL ms | FCP ms | live s | DOM nodes | heap MiB | to screen     | API answered  | console RSS MiB\n",
    );
    for count in sizes {
        let line = match run(count, loads, rounds) {
            Ok(line) => line,
            Err(error) => format!("{count:>6} | failed: {error}"),
        };
        println!("{line}");
        report.push_str(&line);
        report.push('\n');
    }
    print!("{report}");
    let _ = std::fs::write(Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-console.txt"), &report);
}
