//! `pacer console` against a real local cluster (`pacer up`, real agents): the page
//! and its event stream, actions with and without the token, the read-only console,
//! bad start-up input — and the whole console in Debian's headless Chromium, driven
//! by playwright-core (`e2e/console/console.test.mjs`) on the demo manifests.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{LOCAL_PREFIX, LocalCluster, text};
use serde_json::Value;

const MANIFESTS: &str = "
apiVersion: pacer.io/v1alpha1
kind: Resource
metadata: {name: web}
spec:
  agent: ocf:heartbeat:Dummy
  operations: [{name: monitor, interval: 2s}]
---
apiVersion: pacer.io/v1alpha1
kind: Resource
metadata: {name: everywhere}
spec:
  agent: ocf:heartbeat:Dummy
  clone: {}
";

const TOKEN: &str = "console-test-token-0123456789";

/// A `pacer console` process, ended by PID when dropped.
struct Console {
    child: Child,
    address: String,
}

impl Console {
    fn start(cluster: &LocalCluster, extra: &[&str]) -> Console {
        let address_file = cluster.dir.path().join(format!("console-{}.addr", extra.len()));
        let log = std::fs::File::create(cluster.dir.path().join(format!("console-{}.log", extra.len()))).expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_pacer"))
            .args(["console", "--listen", "127.0.0.1:0", "--address-file"])
            .arg(&address_file)
            .args(extra)
            .env("PACER_ETCD", &cluster.endpoint)
            .env("PACER_PREFIX", LOCAL_PREFIX)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start pacer console");
        let mut console = Console { child, address: String::new() };
        let started = Instant::now();
        while console.address.is_empty() {
            assert!(started.elapsed() < Duration::from_secs(30), "the console did not start");
            assert!(matches!(console.child.try_wait(), Ok(None)), "the console exited");
            console.address = std::fs::read_to_string(&address_file).unwrap_or_default().trim().to_string();
            std::thread::sleep(Duration::from_millis(50));
        }
        console
    }

    fn url(&self) -> String {
        format!("http://{}/", self.address)
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        pacer::local::child::terminate(&mut self.child, Duration::from_secs(10));
    }
}

/// One HTTP/1.0 request: status, headers (lower-case names) and body.
fn http(address: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, Vec<(String, String)>, String) {
    let mut stream = TcpStream::connect(address).unwrap_or_else(|error| panic!("connect to {address}: {error}"));
    stream.set_read_timeout(Some(Duration::from_secs(90))).expect("read timeout");
    let mut request = format!("{method} {path} HTTP/1.0\r\nContent-Length: {}\r\n", body.len());
    if !headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("host")) {
        request.push_str(&format!("Host: {address}\r\n"));
    }
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).expect("send the request");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read the answer");
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((answer.as_str(), ""));
    let mut lines = head.lines();
    let code = lines.next().and_then(|line| line.split_whitespace().nth(1)).and_then(|code| code.parse().ok()).unwrap_or(0);
    let headers = lines.filter_map(|line| line.split_once(':')).map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string())).collect();
    (code, headers, body.to_string())
}

fn action(console: &Console, token: Option<&str>, body: &str) -> (u16, Value) {
    let bearer = token.map(|token| format!("Bearer {token}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(bearer) = &bearer {
        headers.push(("Authorization", bearer.as_str()));
    }
    let (code, _, body) = http(&console.address, "POST", "/api/action", &headers, body);
    (code, serde_json::from_str(&body).unwrap_or_else(|error| panic!("action answer {body:?}: {error}")))
}

/// What the event stream shows, read until `done` holds of it (or the time is up:
/// None): the whole fragment of a `status` event, or for a `patch` event the HTML it
/// brings (the head, the tail, the rows set), so the test sees what the page would.
fn stream_until(address: &str, limit: Duration, done: impl Fn(&str) -> bool) -> Option<String> {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(1))).expect("read timeout");
    write!(stream, "GET /status/stream HTTP/1.0\r\nHost: {address}\r\nAccept: text/event-stream\r\n\r\n").expect("send");
    let mut reader = BufReader::new(stream);
    let started = Instant::now();
    let (mut kind, mut data) = (String::new(), String::new());
    while started.elapsed() < limit {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) => return None,
            Ok(_) => {}
            Err(_) => continue,
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if let Some(name) = line.strip_prefix("event:") {
            kind = name.trim().to_string();
        } else if let Some(chunk) = line.strip_prefix("data:") {
            data.push_str(chunk.strip_prefix(' ').unwrap_or(chunk));
            data.push('\n');
        } else if line.is_empty() && !kind.is_empty() {
            let shown = if kind == "patch" {
                let patch: Value = serde_json::from_str(&data).expect("a patch is JSON");
                let rows: Vec<&str> = patch["set"].as_array().into_iter().flatten().filter_map(|pair| pair[1].as_str()).collect();
                format!("{}{}{}", patch["head"]["html"].as_str().unwrap_or_default(), patch["tail"].as_str().unwrap_or_default(), rows.join(""))
            } else {
                data.clone()
            };
            if done(&shown) {
                return Some(shown);
            }
            kind.clear();
            data.clear();
        }
    }
    None
}

fn token_file(dir: &Path, mode: u32) -> PathBuf {
    let path = dir.join(format!("token-{mode:o}"));
    std::fs::write(&path, format!("{TOKEN}\n")).expect("write the token");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    path
}

#[test]
fn actions_need_the_token_and_a_read_only_console_refuses_them() {
    let cluster = LocalCluster::start(3, &["--fencing", "off"]);
    let applied = cluster.pacer(&["apply", "-f", "-"], Some(MANIFESTS));
    assert!(applied.status.success(), "apply: {}", text(&applied.stderr));
    let token = token_file(cluster.dir.path(), 0o600);
    let console = Console::start(&cluster, &["--token-file", token.to_str().expect("path")]);
    let read_only = Console::start(&cluster, &["--read-only"]);

    // The page: every node, with actions; the headers that keep other sites' scripts out.
    let (code, headers, page) = http(&console.address, "GET", "/", &[], "");
    assert_eq!(code, 200);
    for node in ["n1", "n2", "n3"] {
        assert!(page.contains(&format!("<tr data-node=\"{node}\"")), "{node} listed: {page}");
    }
    assert!(page.contains("data-action=\"standby\""), "actions offered");
    let header = |name: &str| headers.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone()).unwrap_or_default();
    assert!(header("content-security-policy").contains("script-src 'self'"), "CSP: {headers:?}");
    assert_eq!(header("x-frame-options"), "DENY");
    assert!(!page.contains(TOKEN), "the token is never rendered");

    // Without the token, or a wrong one: 401 and nothing written.
    let (code, answer) = action(&console, None, r#"{"verb":"standby","node":"n1"}"#);
    assert_eq!(code, 401, "{answer}");
    let (code, _) = action(&console, Some("console-test-token-wrong-value"), r#"{"verb":"standby","node":"n1"}"#);
    assert_eq!(code, 401);
    // Bad input: the field named, nothing written.
    let (code, answer) = action(&console, Some(TOKEN), r#"{"verb":"move","resource":"web","node":"n1 n2"}"#);
    assert_eq!((code, answer["message"].as_str()), (400, Some("move: `node` is not a valid name")));
    let (code, answer) = action(&console, Some(TOKEN), r#"{"verb":"move","resource":"nothing","node":"n2"}"#);
    assert_eq!(code, 404, "{answer}");

    // The read-only console: no action rendered, and a forged request with the right
    // token refused.
    let (_, _, page) = http(&read_only.address, "GET", "/", &[], "");
    assert!(!page.contains("data-action") && !page.contains("data-open-actions") && !page.contains("token-form"), "read-only page: {page}");
    let (code, answer) = action(&read_only, Some(TOKEN), r#"{"verb":"standby","node":"n1"}"#);
    assert_eq!(code, 403, "{answer}");

    let show = cluster.pacer(&["get", "node", "n1", "-o", "yaml"], None);
    assert!(!text(&show.stdout).contains("standby: true"), "refused actions wrote nothing: {}", text(&show.stdout));

    // With the token: the command that does the same, and the change on every stream
    // (here the read-only console's: both follow etcd, not each other).
    let (code, answer) = action(&console, Some(TOKEN), r#"{"verb":"standby","node":"n1"}"#);
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["command"], "pacer node standby n1");
    assert_eq!(answer["message"], "Node/n1: set spec.standby: true\n");
    // What the stream has shown so far: n1 in standby, and the node of web's latest row.
    let standby = std::cell::Cell::new(false);
    let web_on = std::cell::RefCell::new(String::new());
    let shown = stream_until(&read_only.address, Duration::from_secs(30), |fragment| {
        standby.set(standby.get() || fragment.contains(r#"data-node="n1" data-state="standby""#));
        if let Some(at) = fragment.find(r#"data-instance="web" data-node=""#) {
            let rest = &fragment[at + r#"data-instance="web" data-node=""#.len()..];
            *web_on.borrow_mut() = rest.split('"').next().unwrap_or_default().to_string();
        }
        standby.get() && !web_on.borrow().is_empty() && *web_on.borrow() != "n1"
    });
    assert!(shown.is_some(), "the stream shows n1 in standby with web moved away (web last on {:?})", web_on.borrow());

    let (code, answer) = action(&console, Some(TOKEN), r#"{"verb":"ban","resource":"web","node":"n2","lifetime":"10min"}"#);
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["command"], "pacer ban web n2 --lifetime 10min");
    let (code, answer) = action(&console, Some(TOKEN), r#"{"verb":"clear","resource":"web"}"#);
    assert_eq!((code, answer["command"].as_str()), (200, Some("pacer clear web")), "{answer}");

    // `/api/status` is pacer status's JSON.
    let (code, _, body) = http(&console.address, "GET", "/api/status", &[], "");
    assert_eq!(code, 200);
    let status: Value = serde_json::from_str(&body).expect("status JSON");
    let states: Vec<&str> = status["status"]["nodes"].as_array().expect("nodes").iter().filter_map(|node| node["state"].as_str()).collect();
    assert_eq!(states, ["standby", "online", "online"]);
}

/// The key every spec write bumps: unchanged means nothing was applied.
async fn spec_version(cluster: &LocalCluster) -> i64 {
    let mut client = etcd_client::Client::connect([cluster.endpoint.clone()], None).await.expect("connect");
    let response = client.get(format!("{LOCAL_PREFIX}/spec/version"), None).await.expect("read");
    response.kvs().first().map(|kv| kv.mod_revision()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn history_why_sandbox_and_configuration_pages() {
    let cluster = LocalCluster::start(3, &["--fencing", "off"]);
    let applied = cluster.pacer(&["apply", "-f", "-"], Some(MANIFESTS));
    assert!(applied.status.success(), "apply: {}", text(&applied.stderr));
    let waited = cluster.pacer(&["wait", "web", "--for", "started", "--timeout", "60s"], None);
    assert!(waited.status.success(), "wait: {}", text(&waited.stderr));
    let token = token_file(cluster.dir.path(), 0o600);
    let console = Console::start(&cluster, &["--token-file", token.to_str().expect("path")]);
    let read_only = Console::start(&cluster, &["--read-only"]);
    let address = console.address.clone();
    let get = move |path: &str| {
        let (code, _, body) = http(&address, "GET", path, &[], "");
        assert_eq!(code, 200, "GET {path}: {body}");
        body
    };

    // History: the decisions pacer history lists, each replayable; a replay decides the same.
    let listed = cluster.pacer(&["history", "-o", "json"], None);
    let decisions: Value = serde_json::from_slice(&listed.stdout).expect("history JSON");
    let newest = decisions[0]["inputRevision"].as_i64().expect("a decision");
    let page = get("/history");
    assert!(page.contains(&format!(r#"<tr data-revision="{newest}">"#)), "{page}");
    let page = get(&format!("/history/{newest}/replay"));
    assert!(page.contains(r#"data-matches="true""#), "the replay decides the same: {page}");
    let page = get(&format!("/history/{newest}"));
    assert!(page.contains(&format!("Decision at input revision {newest}")), "{page}");
    let (code, _, page) = http(&console.address, "GET", "/history/1", &[], "");
    assert_eq!(code, 404, "an unknown decision: {page}");

    // Why: every node's score for web.
    let page = get("/why/web");
    for node in ["n1", "n2", "n3"] {
        assert!(page.contains(&format!(r#"<tr data-node="{node}">"#)), "{page}");
    }
    assert!(page.contains("starting score"), "{page}");

    // The sandbox: n1 fails; web (if on n1) and n1's clone instance move or stop in the
    // simulation, and nothing is written — on a read-only console too.
    let before = spec_version(&cluster).await;
    let placed = cluster.pacer(&["status", "-o", "json"], None);
    let view: Value = serde_json::from_slice(&placed.stdout).expect("status");
    let web_node = view["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .find(|resource| resource["name"] == "web")
        .and_then(|web| web["node"].as_str())
        .expect("web runs")
        .to_string();
    let body = format!(r#"{{"nodeFail":["{web_node}"]}}"#);
    let (code, _, fragment) = http(&read_only.address, "POST", "/api/simulate", &[("Content-Type", "application/json")], &body);
    assert_eq!(code, 200, "{fragment}");
    assert!(!fragment.contains(&format!(r#"<tr data-node="{web_node}" data-state="online">"#)), "{web_node} is lost: {fragment}");
    // Fencing is off here: the lost node's resources are started elsewhere.
    assert!(fragment.contains(r#"data-resource="web"><strong>Start</strong>"#), "web starts elsewhere in the simulation: {fragment}");
    assert!(!fragment.contains(&format!(r#"<tr data-instance="web" data-node="{web_node}">"#)), "{fragment}");
    assert_eq!(spec_version(&cluster).await, before, "the sandbox wrote nothing");
    let status = cluster.pacer(&["status", "-o", "json"], None);
    let view: Value = serde_json::from_slice(&status.stdout).expect("status");
    assert!(view["nodes"].as_array().expect("nodes").iter().all(|node| node["state"] == "online"), "every node still online: {view}");
    let (code, _, fragment) = http(&console.address, "POST", "/api/simulate", &[], r#"{"opFail":"web:monitor"}"#);
    assert_eq!(code, 400);
    assert!(fragment.contains("expected RESOURCE:OPERATION:NODE=RC"), "{fragment}");

    // Configuration: every object (a plain secret-named parameter redacted, as pacer
    // get shows it), the picture, a diff that names file, line and field.
    let vault = "apiVersion: pacer.io/v1alpha1\nkind: Resource\nmetadata: {name: vault}\nspec:\n  agent: ocf:heartbeat:Dummy\n  params: {passwd: console-plain-secret}\n";
    let applied = cluster.pacer(&["apply", "-f", "-"], Some(vault));
    assert!(applied.status.success(), "apply: {}", text(&applied.stderr));
    let before = spec_version(&cluster).await;
    let page = get("/config");
    assert!(page.contains(r#"data-key="Resource/vault""#) && !page.contains("console-plain-secret"), "the secret is redacted: {page}");
    assert!(page.contains(r#"data-key="Resource/web""#) && page.contains(r#"data-key="Resource/everywhere""#), "{page}");
    let svg = get("/config/graph.svg");
    assert!(svg.contains(r#"data-box="web""#) && svg.contains(r#"data-box="everywhere""#), "{svg}");
    let body = |manifests: &str| serde_json::json!({ "manifests": manifests }).to_string();
    let bad = body("apiVersion: pacer.io/v1alpha1\nkind: Resource\nmetadata: {name: web}\nspec:\n  agent: ocf:heartbeat:Dummy\n  stickiness: lots\n");
    let bad = bad.as_str();
    let (code, _, fragment) = http(&console.address, "POST", "/api/diff", &[], bad);
    assert_eq!(code, 422, "{fragment}");
    assert!(fragment.contains("manifests:") && fragment.contains("Resource/web") && fragment.contains("nothing was written"), "{fragment}");
    let change = body("apiVersion: pacer.io/v1alpha1\nkind: Resource\nmetadata: {name: extra}\nspec:\n  agent: ocf:heartbeat:Dummy\n");
    let change = change.as_str();
    let (code, _, fragment) = http(&console.address, "POST", "/api/diff", &[], change);
    assert_eq!(code, 200, "{fragment}");
    assert!(fragment.contains("+kind: Resource") && fragment.contains(r#"data-verb="Start" data-resource="extra""#), "{fragment}");
    assert_eq!(spec_version(&cluster).await, before, "a diff writes nothing");

    // Apply: the token, never on a read-only console, then the same checks as pacer apply.
    let bearer = format!("Bearer {TOKEN}");
    let (code, _, _) = http(&console.address, "POST", "/api/apply", &[], change);
    assert_eq!(code, 401);
    let (code, _, _) = http(&read_only.address, "POST", "/api/apply", &[("Authorization", bearer.as_str())], change);
    assert_eq!(code, 403);
    let (code, _, answer) = http(&console.address, "POST", "/api/apply", &[("Authorization", bearer.as_str())], bad);
    assert_eq!(code, 422, "{answer}");
    assert_eq!(spec_version(&cluster).await, before, "refused applies wrote nothing");
    let (code, _, answer) = http(&console.address, "POST", "/api/apply", &[("Authorization", bearer.as_str())], change);
    assert_eq!(code, 200, "{answer}");
    let answer: Value = serde_json::from_str(&answer).expect("apply answer");
    assert_eq!(answer["message"], "Resource/extra created\n");
    let shown = cluster.pacer(&["get", "resource", "extra"], None);
    assert!(shown.status.success(), "the console's apply stored it: {}", text(&shown.stderr));
}

/// A slow resource (the witness agent waits 2 s in each start and stop) for a restart
/// whose browser goes away.
const SLOW: &str = "apiVersion: pacer.io/v1alpha1\nkind: Resource\nmetadata: {name: slow}\nspec:\n  agent: ocf:pacer:witness\n  params: {delay: '2'}\n";

#[tokio::test(flavor = "multi_thread")]
async fn requests_a_browser_should_not_be_able_to_make() {
    let cluster = LocalCluster::start(3, &["--fencing", "off"]);
    let applied = cluster.pacer(&["apply", "-f", "-"], Some(SLOW));
    assert!(applied.status.success(), "apply: {}", text(&applied.stderr));
    let waited = cluster.pacer(&["wait", "slow", "--for", "started", "--timeout", "60s"], None);
    assert!(waited.status.success(), "wait: {}", text(&waited.stderr));
    let token = token_file(cluster.dir.path(), 0o600);
    let console = Console::start(&cluster, &["--token-file", token.to_str().expect("path")]);

    // A page that rebinds its own name to 127.0.0.1 sends its own Host: refused.
    let (code, _, body) = http(&console.address, "GET", "/api/status", &[("Host", "attacker.example")], "");
    assert_eq!(code, 421, "{body}");
    let (code, _, _) = http(&console.address, "GET", "/api/status", &[("Host", "localhost:7070")], "");
    assert_eq!(code, 200);

    // Comparing a guessed password with the stored one, without the token: refused.
    let before = spec_version(&cluster).await;
    let guess = serde_json::json!({ "manifests": "apiVersion: pacer.io/v1alpha1\nkind: Resource\nmetadata: {name: slow}\nspec:\n  agent: ocf:pacer:witness\n  params: {delay: '2', passwd: hunter2-value}\n" }).to_string();
    let (code, _, fragment) = http(&console.address, "POST", "/api/diff", &[], &guess);
    assert_eq!(code, 403, "{fragment}");
    assert!(fragment.contains("spec.params.passwd") && !fragment.contains("hunter2-value"), "{fragment}");
    let (code, _, _) = http(&console.address, "POST", "/api/simulate", &[], &guess);
    assert_eq!(code, 403);
    let bearer = format!("Bearer {TOKEN}");
    let (code, _, fragment) = http(&console.address, "POST", "/api/diff", &[("Authorization", bearer.as_str())], &guess);
    assert_eq!(code, 200, "with the token: {fragment}");
    assert_eq!(spec_version(&cluster).await, before);

    // A restart whose browser goes away before the answer: it still ends with the
    // resource running again (the verb runs on, and undoes its stop).
    let mut stream = TcpStream::connect(&console.address).expect("connect");
    let body = r#"{"verb":"restart","resource":"slow"}"#;
    write!(stream, "POST /api/action HTTP/1.0\r\nHost: {}\r\nAuthorization: {bearer}\r\nContent-Length: {}\r\n\r\n{body}", console.address, body.len())
        .expect("send");
    std::thread::sleep(Duration::from_millis(500));
    drop(stream);
    let started = Instant::now();
    let mut stopped_seen = false;
    loop {
        let status = cluster.pacer(&["status", "-o", "json"], None);
        let view: Value = serde_json::from_slice(&status.stdout).unwrap_or(Value::Null);
        let slow = view["resources"].as_array().into_iter().flatten().find(|resource| resource["name"] == "slow").cloned().unwrap_or(Value::Null);
        stopped_seen |= slow["role"] == "Stopped";
        let shown = cluster.pacer(&["get", "resource", "slow", "-o", "yaml"], None);
        if stopped_seen && slow["role"] == "Started" && !text(&shown.stdout).contains("targetRole") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "slow was not started again after the browser went away: {slow}\n{}", text(&shown.stdout));
        std::thread::sleep(Duration::from_millis(250));
    }

    // A node in standby and in maintenance: the page offers to end both.
    for flag in ["standby", "maintenance"] {
        let (code, answer) = action(&console, Some(TOKEN), &format!(r#"{{"verb":"{flag}","node":"n2"}}"#));
        assert_eq!(code, 200, "{answer}");
    }
    let shown = stream_until(&console.address, Duration::from_secs(30), |fragment| fragment.contains(r#"data-action="unmaintenance" data-node="n2""#));
    let shown = shown.expect("n2's maintenance shown");
    assert!(shown.contains(r#"data-action="unstandby" data-node="n2""#), "{shown}");
}

#[test]
fn bad_start_up_input_is_refused_before_anything_connects() {
    let dir = tempfile::tempdir().expect("tempdir");
    // etcd is never reached: the endpoint is a closed port.
    let console = |args: &[&str]| common::pacer("http://127.0.0.1:9", "/pacer", &[&["console", "--listen", "127.0.0.1:0"], args].concat(), None);
    let open = token_file(dir.path(), 0o644);
    let refused = console(&["--token-file", open.to_str().expect("path")]);
    assert!(!refused.status.success());
    let message = text(&refused.stderr);
    assert!(message.contains(&open.display().to_string()) && message.contains("mode 0644"), "{message}");

    // A token one character short: refused, and not echoed.
    let short = dir.path().join("short");
    std::fs::write(&short, "fifteen-chars-x\n").expect("write");
    std::fs::set_permissions(&short, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let refused = console(&["--token-file", short.to_str().expect("path")]);
    let message = text(&refused.stderr);
    assert!(message.contains("at least 16 characters") && !message.contains("fifteen-chars-x"), "{message}");

    let missing = console(&["--token-file", "/nonexistent/token"]);
    assert!(text(&missing.stderr).contains("/nonexistent/token"), "{}", text(&missing.stderr));

    // Neither a token nor --read-only: a usage error naming the flag.
    let neither = console(&[]);
    assert_eq!(neither.status.code(), Some(2));
    assert!(text(&neither.stderr).contains("--token-file"), "{}", text(&neither.stderr));
}

/// The console in a real browser (see `e2e/console/console.test.mjs` for each check).
/// Screenshots go to `target/console-screenshots/`.
#[test]
fn console_in_headless_chromium() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let scripts = root.join("e2e/console");
    assert!(scripts.join("node_modules/playwright-core").is_dir(), "playwright-core is not installed: run `npm ci --prefix e2e/console` (make test does)");
    assert!(Path::new("/usr/bin/chromium").exists(), "Debian's chromium is not installed: run scripts/install-deps");

    let cluster = LocalCluster::start(3, &[]);
    let applied = cluster.pacer(&["apply", "-f", root.join("manifests/demo").to_str().expect("path")], None);
    assert!(applied.status.success(), "apply the demo: {}", text(&applied.stderr));
    let token = token_file(cluster.dir.path(), 0o600);
    let console = Console::start(&cluster, &["--token-file", token.to_str().expect("path")]);
    let read_only = Console::start(&cluster, &["--read-only"]);

    // What `pacer status` shows once everything that can run does: the page must show the same.
    let started = Instant::now();
    let expected = loop {
        let status = cluster.pacer(&["status", "-o", "json"], None);
        let view: Value = serde_json::from_slice(&status.stdout).unwrap_or(Value::Null);
        let resources = view["resources"].as_array().cloned().unwrap_or_default();
        let waiting = resources.iter().any(|resource| resource["role"] == "Stopped" && resource["reason"].is_null());
        if !resources.is_empty() && !waiting {
            break view;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the demo did not start: {}", text(&status.stdout));
        std::thread::sleep(Duration::from_millis(250));
    };
    let names = |list: &str, field: &str| -> Vec<String> {
        expected[list].as_array().into_iter().flatten().filter_map(|item| item[field].as_str().map(String::from)).collect()
    };
    let instances = names("resources", "name");
    let movable: Vec<&String> = instances.iter().filter(|name| !name.contains(':')).collect();
    let expected = serde_json::json!({ "nodes": names("nodes", "name"), "instances": instances, "movable": movable });

    let screenshots = root.join("target/console-screenshots");
    let output = Command::new("node")
        .arg(scripts.join("console.test.mjs"))
        .current_dir(&scripts)
        .env("CONSOLE_URL", console.url())
        .env("READONLY_URL", read_only.url())
        .env("CONSOLE_TOKEN", TOKEN)
        .env("STATE_DIR", &cluster.state_dir)
        .env("EXPECTED", expected.to_string())
        .env("SCREENSHOTS", &screenshots)
        .output()
        .expect("run node (scripts/install-deps installs it)");
    let printed = format!("{}{}", text(&output.stdout), text(&output.stderr));
    println!("{printed}");
    assert!(output.status.success(), "the browser test failed:\n{printed}");
    assert!(printed.contains("all checks passed"), "{printed}");
    for shot in [
        "status-1280.png",
        "standby-1280.png",
        "after-fencing-1280.png",
        "status-390.png",
        "read-only-1280.png",
        "sandbox-1280.png",
        "history-1280.png",
        "why-1280.png",
        "config-1280.png",
    ] {
        assert!(screenshots.join(shot).is_file(), "screenshot {shot}");
    }
}
