//! `pacer up --secure` end to end: etcd with mutual TLS and client-certificate auth,
//! each component as its own identity. Clients without a certificate or with one from
//! another CA are refused; a node cannot write another node's keys, the plans, the
//! spec or the election key, and the reader writes nothing (etcd answers permission
//! denied); `pacer --config DIR/config.yaml status` works; and failover still does (a
//! node powered off with the local fence agent, fenced, its resource back elsewhere).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const PREFIX: &str = "/pacer";

/// `pacer up`, ended by PID when dropped.
struct Up(Child);

impl Drop for Up {
    fn drop(&mut self) {
        pacer::local::child::terminate(&mut self.0, Duration::from_secs(60));
    }
}

/// `pacer --config CONFIG ARGS`, with no other cluster settings in the environment.
fn pacer_with_config(config: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pacer"));
    command.arg("--config").arg(config).args(args);
    for variable in ["PACER_ETCD", "PACER_PREFIX", "PACER_ETCD_CA", "PACER_ETCD_CERT", "PACER_ETCD_KEY"] {
        command.env_remove(variable);
    }
    common::run(&mut command, stdin)
}

fn status(config: &Path) -> Value {
    let output = pacer_with_config(config, &["status", "-o", "json"], None);
    assert!(output.status.success(), "{}", common::text(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("status JSON")
}

fn node_of(view: &Value, resource: &str) -> Option<String> {
    view["resources"]
        .as_array()?
        .iter()
        .find(|entry| entry["name"] == resource && entry["role"] != "Stopped")
        .and_then(|entry| entry["node"].as_str().map(str::to_string))
}

fn wait(config: &Path, what: &str, limit: Duration, condition: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let view = status(config);
        if condition(&view) {
            return view;
        }
        assert!(started.elapsed() < limit, "timed out waiting for {what}: {view}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A raw etcd client over TLS: the CA, and a client certificate if given.
async fn client(endpoint: &str, ca: &Path, identity: Option<(&Path, &Path)>) -> Result<etcd_client::Client, etcd_client::Error> {
    let mut tls = etcd_client::TlsOptions::new().ca_certificate(etcd_client::Certificate::from_pem(std::fs::read(ca).expect("ca")));
    if let Some((cert, key)) = identity {
        tls = tls.identity(etcd_client::Identity::from_pem(std::fs::read(cert).expect("cert"), std::fs::read(key).expect("key")));
    }
    let options = etcd_client::ConnectOptions::new().with_tls(tls).with_connect_timeout(Duration::from_secs(3)).with_timeout(Duration::from_secs(5));
    etcd_client::Client::connect([endpoint], Some(options)).await
}

/// The client of an identity of the local cluster (`DIR/pki/NAME.{crt,key}`).
async fn as_identity(endpoint: &str, pki: &Path, name: &str) -> etcd_client::Client {
    let (cert, key) = (pki.join(format!("{name}.crt")), pki.join(format!("{name}.key")));
    client(endpoint, &pki.join("ca.crt"), Some((&cert, &key))).await.expect("connect")
}

fn permission_denied(result: Result<etcd_client::PutResponse, etcd_client::Error>, what: &str) {
    match result {
        Err(error) => assert!(error.to_string().contains("permission denied"), "{what}: {error}"),
        Ok(_) => panic!("{what}: the write was accepted"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secure_cluster_refuses_strangers_and_foreign_writes_and_still_fails_over() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state_dir = dir.path().join("up");
    let root = env!("CARGO_MANIFEST_DIR");
    let log = std::fs::File::create(dir.path().join("up.log")).expect("log");
    let mut up = Up(Command::new(env!("CARGO_BIN_EXE_pacer"))
        .args(["up", "--secure", "--nodes", "3", "--lease-ttl", "2", "--state-dir"])
        .arg(&state_dir)
        .arg("--agents-dir")
        .arg(Path::new(root).join("agents"))
        .env("PACER_PREFIX", PREFIX)
        .env_remove("PACER_ETCD")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("start pacer up"));
    let started = Instant::now();
    let components = ["etcd", "scheduler", "n1", "n2", "n3"];
    while !components.iter().all(|component| state_dir.join("pids").join(component).exists()) {
        assert!(started.elapsed() < Duration::from_secs(60), "pacer up did not start its components");
        assert!(matches!(up.0.try_wait(), Ok(None)), "pacer up exited: {}", std::fs::read_to_string(dir.path().join("up.log")).unwrap_or_default());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let endpoint = std::fs::read_to_string(state_dir.join("endpoint")).expect("endpoint").trim().to_string();
    assert!(endpoint.starts_with("https://"), "{endpoint}");
    let pki: PathBuf = state_dir.join("pki");
    let config = state_dir.join("config.yaml");
    for name in ["n1", "n2", "n3", "scheduler", "admin", "reader"] {
        let key = pki.join(format!("{name}.key"));
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key).expect("key").permissions());
        assert_eq!(mode & 0o777, 0o600, "{}", key.display());
    }

    // The administrator's config file works, and the cluster comes up.
    wait(&config, "three nodes online", Duration::from_secs(60), |view| {
        view["nodes"].as_array().is_some_and(|nodes| nodes.iter().filter(|node| node["state"] == "online").count() == 3)
    });

    // Without a client certificate, or with one from another CA: refused.
    let mut anonymous = client(&endpoint, &pki.join("ca.crt"), None).await.expect("a lazy connection");
    let refused = anonymous.get("/pacer/spec/", None).await.expect_err("a client without a certificate is refused");
    println!("without a certificate: {refused}");
    let stranger = dir.path().join("stranger");
    pacer::pki::init(&stranger).expect("another CA");
    pacer::pki::issue(&stranger, &pacer::pki::IssueRequest { name: "n1", role: pacer::pki::Role::Node, hosts: &[], validity: pacer::pki::Validity::Years(1) })
        .expect("a certificate of another CA");
    let refused = match client(&endpoint, &pki.join("ca.crt"), Some((&stranger.join("n1.crt"), &stranger.join("n1.key")))).await {
        Ok(mut stranger) => stranger.get("/pacer/spec/", None).await.expect_err("a certificate of another CA is refused"),
        Err(error) => error,
    };
    println!("with another CA's certificate: {refused}");
    let output = Command::new(env!("CARGO_BIN_EXE_pacer"))
        .args(["status", "--etcd", &endpoint, "--etcd-ca"])
        .arg(pki.join("ca.crt"))
        .args(["--etcd-cert"])
        .arg(stranger.join("n1.crt"))
        .args(["--etcd-key"])
        .arg(stranger.join("n1.key"))
        .env("PACER_CONFIG", "/dev/null")
        .output()
        .expect("pacer status");
    assert!(!output.status.success(), "{}", common::text(&output.stdout));

    // n1 writes its own keys only.
    let mut n1 = as_identity(&endpoint, &pki, "n1").await;
    n1.delete("/pacer/status/n1/nothing-here", None).await.expect("n1 may write its own statuses");
    n1.get("/pacer/spec/", Some(etcd_client::GetOptions::new().with_prefix())).await.expect("n1 reads the spec");
    for key in [
        "/pacer/status/n2/web",
        "/pacer/nodes/n2/lease",
        "/pacer/attributes/n2/x",
        "/pacer/plans/n1",
        "/pacer/plans/n2",
        "/pacer/spec/nodes/n2",
        "/pacer/spec/version",
        "/pacer/election/scheduler",
        "/pacer.events/pending/n2/x",
        "/pacer/fencing/n2/request",
        "/pacer/fence-results/n2/n1",
        "/pacer/fence-confirmations/n2",
    ] {
        permission_denied(n1.put(key, "{}", None).await, &format!("n1 writes {key}"));
    }
    // The reader reads and writes nothing.
    let mut reader = as_identity(&endpoint, &pki, "reader").await;
    reader.get("/pacer/", Some(etcd_client::GetOptions::new().with_prefix())).await.expect("the reader reads");
    for key in
        ["/pacer/status/n1/web", "/pacer/plans/n1", "/pacer/spec/nodes/n9", "/pacer/election/scheduler", "/pacer.events/log/1", "/pacer.archive/inputs/1"]
    {
        permission_denied(reader.put(key, "{}", None).await, &format!("the reader writes {key}"));
    }
    let output = Command::new(env!("CARGO_BIN_EXE_pacer"))
        .args(["node", "standby", "n1", "--etcd", &endpoint, "--etcd-ca"])
        .arg(pki.join("ca.crt"))
        .arg("--etcd-cert")
        .arg(pki.join("reader.crt"))
        .arg("--etcd-key")
        .arg(pki.join("reader.key"))
        .env("PACER_CONFIG", "/dev/null")
        .output()
        .expect("pacer node standby");
    assert!(!output.status.success());
    assert!(common::text(&output.stderr).contains("permission denied"), "{}", common::text(&output.stderr));

    // Failover, every component as itself.
    let witness = dir.path().join("witness.log");
    let manifest = format!(
        "apiVersion: pacer.io/v1alpha1\nkind: Resource\nmetadata: {{name: web}}\nspec:\n  agent: ocf:pacer:witness\n  params: {{log: {}}}\n  operations:\n    - {{name: monitor, interval: 2s}}\n",
        witness.display()
    );
    let output = pacer_with_config(&config, &["apply", "-f", "-"], Some(&manifest));
    assert!(output.status.success(), "{}", common::text(&output.stderr));
    let view = wait(&config, "web to run", Duration::from_secs(60), |view| node_of(view, "web").is_some());
    let victim = node_of(&view, "web").expect("web runs");
    let mut fence = Command::new(Path::new(root).join("agents/fence/fence_pacer_local")).stdin(Stdio::piped()).spawn().expect("fence agent");
    std::io::Write::write_all(fence.stdin.as_mut().expect("stdin"), format!("action=off\nport={victim}\nstate_dir={}\n", state_dir.display()).as_bytes())
        .expect("write");
    drop(fence.stdin.take());
    assert!(fence.wait().expect("fence agent").success());
    let powered_off = Instant::now();
    let view = wait(&config, "web to run elsewhere", Duration::from_secs(60), |view| node_of(view, "web").is_some_and(|node| node != victim));
    println!("secure: node powered off -> web running elsewhere (lease TTL 2 s): {:?}", powered_off.elapsed());
    let fenced = view["fencing"].as_array().into_iter().flatten().any(|entry| entry["node"] == victim.as_str() && entry["state"] == "succeeded");
    assert!(fenced, "{view}");
    for component in ["scheduler", "n1", "n2", "n3"] {
        let log = std::fs::read_to_string(state_dir.join("logs").join(format!("{component}.log"))).unwrap_or_default();
        assert!(!log.contains("permission denied"), "{component} was refused a write it needs:\n{log}");
    }
}

/// Bad TLS input and bad config files: one line naming the file, exit 1, before
/// anything connects (the endpoint here has no server at all).
#[test]
fn bad_tls_files_and_config_files_are_refused_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = dir.path().join("pki");
    pacer::pki::init(&pki).expect("CA");
    let issue = |name: &str, validity| {
        pacer::pki::issue(&pki, &pacer::pki::IssueRequest { name, role: pacer::pki::Role::Node, hosts: &[], validity }).expect("issue");
    };
    issue("n1", pacer::pki::Validity::Years(1));
    issue("n2", pacer::pki::Validity::Years(1));
    issue("old", pacer::pki::Validity::Between((2001, 1, 1), (2002, 1, 1)));
    issue("future", pacer::pki::Validity::Between((2100, 1, 1), (2101, 1, 1)));
    let config = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write config");
        path
    };
    let unknown = config("unknown.yaml", "endpoints: https://127.0.0.1:9\nca: pki/ca.crt\ncacert: pki/ca.crt\n");
    let good = |cert: &str, key: &str| format!("endpoints: https://127.0.0.1:9\nca: pki/ca.crt\ncert: pki/{cert}.crt\nkey: pki/{key}.key\n");
    let cases: Vec<(PathBuf, &str)> = vec![
        (unknown, "unknown.yaml:3:1: unknown field \"cacert\""),
        (config("mismatch.yaml", &good("n1", "n2")), "n2.key: key does not match certificate"),
        (config("expired.yaml", &good("old", "old")), "old.crt: certificate CN=old"),
        (config("future.yaml", &good("future", "future")), "future.crt: certificate CN=future"),
        (config("missing.yaml", &good("absent", "n1")), "absent.crt"),
        (dir.path().join("no-such-config.yaml"), "no-such-config.yaml"),
    ];
    for (path, expected) in cases {
        let output = Command::new(env!("CARGO_BIN_EXE_pacer")).arg("--config").arg(&path).arg("status").env_remove("PACER_ETCD").output().expect("pacer");
        let stderr = common::text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{}: {stderr}", path.display());
        assert!(stderr.contains(expected), "{}: expected {expected:?} in {stderr}", path.display());
        assert!(!stderr.contains("reach etcd"), "{}: refused before connecting: {stderr}", path.display());
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    }
}

/// `pacer auth bootstrap` against one etcd with client-certificate auth, for two
/// clusters (`/a` and `/b`) sharing it: each has roles of its own
/// (`pacer:<prefix>:…`); run again it converges — a permission granted by hand on a
/// Pacer role and roles granted by hand to a node's user are revoked, and it says so
/// — without taking anything from the other cluster; a third run changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_bootstrap_converges_and_keeps_two_prefixes_apart() {
    use pacer::pki::{IssueRequest, Role, Validity};
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = dir.path().join("pki");
    pacer::pki::init(&pki).expect("init the CA");
    let issue = |name: &str, role: Role, hosts: &[String]| {
        pacer::pki::issue(&pki, &IssueRequest { name, role, hosts, validity: Validity::Years(1) }).expect("issue");
    };
    issue("etcd-server", Role::Node, &["127.0.0.1".to_string()]);
    issue("admin", Role::Admin, &[]);
    issue("n1", Role::Node, &[]);
    issue("n2", Role::Node, &[]);
    let tls = pacer::local::etcd::ServerTls { cert: pki.join("etcd-server.crt"), key: pki.join("etcd-server.key"), ca: pki.join("ca.crt") };
    let etcd = pacer::local::etcd::EtcdServer::start_secure(&dir.path().join("etcd"), tls, &[]).expect("start etcd with TLS");
    let endpoint = etcd.endpoint();
    let bootstrap = |prefix: &str, nodes: &[&str]| -> (String, String) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_pacer"));
        command.args(["auth", "bootstrap", "--etcd", &endpoint, "--prefix", prefix, "--etcd-ca"]).arg(pki.join("ca.crt"));
        command.arg("--etcd-cert").arg(pki.join("admin.crt")).arg("--etcd-key").arg(pki.join("admin.key")).env("PACER_CONFIG", "/dev/null");
        for node in nodes {
            command.args(["--node", node]);
        }
        let output = common::run(&mut command, None);
        assert!(output.status.success(), "auth bootstrap {prefix}: {}", common::text(&output.stderr));
        (common::text(&output.stdout), common::text(&output.stderr))
    };
    let (first, warnings) = bootstrap("/a", &["n1"]);
    // An etcd that lets any user renew any lease is named, with the fixed version.
    let version = Command::new(std::env::var("PACER_ETCD_BIN").unwrap_or_else(|_| "etcd".into())).arg("--version").output().expect("etcd --version");
    let version = common::text(&version.stdout).lines().next().and_then(|line| line.strip_prefix("etcd Version: ")).unwrap_or_default().to_string();
    if pacer::store::rights::renews_any_lease(&version) == Some(true) {
        assert!(warnings.contains(&format!("etcd {version} lets any user renew any lease")) && warnings.contains("3.5.28 or later"), "{warnings}");
    }
    assert!(first.contains("added role pacer:/a:node:n1"), "{first}");
    let (other, _) = bootstrap("/b", &["n1", "n2"]);
    assert!(other.contains("added role pacer:/b:node:n1"), "{other}");

    // By hand, as the administrator: a stale grant on a Pacer role, and roles on n1's user.
    let mut admin = as_identity(&endpoint, &pki, "admin").await;
    admin.role_grant_permission("pacer:/a:node:n1", etcd_client::Permission::write("/a/fencing/").with_prefix()).await.expect("grant by hand");
    admin.user_grant_role("n1", "pacer:/a:scheduler").await.expect("grant by hand");
    admin.user_grant_role("n1", "root").await.expect("grant by hand");
    let mut n1 = as_identity(&endpoint, &pki, "n1").await;
    n1.put("/a/fencing/n2/request", "{}", None).await.expect("the stale grant works before bootstrap");

    let (converged, _) = bootstrap("/a", &["n1"]);
    for change in
        ["revoked from role pacer:/a:node:n1: write on /a/fencing/*", "revoked from user n1: role pacer:/a:scheduler", "revoked from user n1: role root"]
    {
        assert!(converged.contains(change), "{change:?} not in:\n{converged}");
    }
    assert!(!converged.contains("pacer:/b"), "bootstrapping /a touched /b:\n{converged}");
    let mut n1 = as_identity(&endpoint, &pki, "n1").await;
    for key in ["/a/fencing/n2/request", "/a/plans/n1", "/a/spec/nodes/n1", "/b/status/n2/web"] {
        permission_denied(n1.put(key, "{}", None).await, &format!("n1 writes {key}"));
    }
    // n1 keeps its rights in both clusters; n2, a node of /b only, has none in /a.
    n1.put("/a/status/n1/web", "{}", None).await.expect("n1 writes its statuses in /a");
    n1.put("/b/status/n1/web", "{}", None).await.expect("n1 writes its statuses in /b");
    let mut n2 = as_identity(&endpoint, &pki, "n2").await;
    n2.put("/b/status/n2/web", "{}", None).await.expect("n2 writes its statuses in /b");
    permission_denied(n2.put("/a/status/n2/web", "{}", None).await, "n2 writes in /a");

    let (again, _) = bootstrap("/a", &["n1"]);
    assert!(again.contains("nothing changed"), "not idempotent:\n{again}");
}
