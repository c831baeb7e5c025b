//! Secret parameters on a real cluster (`pacer up`: private etcd, scheduler, agent,
//! `ocf:pacer:witness` recording the parameters it receives): a parameter read from
//! an owner-only file reaches the agent, and its text is nowhere in etcd — the spec,
//! plans, statuses, events, the decision archive (decompressed) — nor in `pacer get
//! -o yaml` or `pacer status`; a plain parameter with a secret's name is warned about
//! at apply and redacted by `get` and `diff`; a group-readable secret file makes the
//! start fail with a reason naming the parameter and the file, never the content.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{LOCAL_PREFIX, LocalCluster, text};

/// The text kept in the secret file; it must reach the agent and nothing else.
const SECRET: &str = "s3cret-from-file-8d2f";
/// The text of the group-readable file; it must reach nothing.
const LEAKY_SECRET: &str = "leaky-s3cret-5be1";
/// A plain value under a secret's name: stored in the spec (as written), but never shown.
const PLAIN: &str = "plain-pw-in-etcd-77ab";

fn secret_file(path: &Path, content: &str, mode: u32) {
    std::fs::write(path, content).expect("write the secret file");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn wait_for<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>, describe: impl Fn() -> String) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(started.elapsed() < limit, "no {what} within {limit:?}: {}", describe());
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Every key and value under `prefix`, as bytes.
async fn dump(endpoint: &str, prefix: &str) -> Vec<(String, Vec<u8>)> {
    let mut client = etcd_client::Client::connect([endpoint], None).await.expect("connect");
    let response = client.get(prefix, Some(etcd_client::GetOptions::new().with_prefix())).await.expect("read etcd");
    response.kvs().iter().map(|kv| (String::from_utf8_lossy(kv.key()).to_string(), kv.value().to_vec())).collect()
}

/// The decision archive's blobs, each put together from its pieces and decompressed.
fn archive_blobs(keys: &[(String, Vec<u8>)]) -> Vec<(String, Vec<u8>)> {
    let mut pieces: BTreeMap<String, BTreeMap<u64, Vec<u8>>> = BTreeMap::new();
    for (key, value) in keys {
        let Some(rest) = key.split_once("/blobs/").map(|(_, rest)| rest) else { continue };
        let Some((digest, index)) = rest.split_once('/') else { continue };
        pieces.entry(digest.to_string()).or_default().insert(index.parse().unwrap_or(0), value.clone());
    }
    pieces
        .into_iter()
        .map(|(digest, parts)| {
            let compressed: Vec<u8> = parts.into_values().flatten().collect();
            (digest, zstd::decode_all(compressed.as_slice()).unwrap_or(compressed))
        })
        .collect()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_file_reaches_the_agent_and_nothing_else() {
    let cluster = LocalCluster::start(1, &["--fencing", "off"]);
    let dir = cluster.dir.path();
    let secret = dir.join("vault-passwd");
    secret_file(&secret, &format!("{SECRET}\n"), 0o600);
    let leaky = dir.join("leaky-passwd");
    secret_file(&leaky, LEAKY_SECRET, 0o640);
    let seen = dir.join("vault-params");
    let leaky_seen = dir.join("leaky-params");
    let manifest = format!(
        "apiVersion: pacer.io/v1alpha1\nkind: Resource\nmetadata: {{name: vault}}\nspec:\n  agent: ocf:pacer:witness\n  params:\n    record_params: {}\n    passwd: {{secretFile: {}}}\n    admin_password: {PLAIN}\n---\napiVersion: pacer.io/v1alpha1\nkind: Resource\nmetadata: {{name: leaky}}\nspec:\n  agent: ocf:pacer:witness\n  params:\n    record_params: {}\n    passwd: {{secretFile: {}}}\n",
        seen.display(),
        secret.display(),
        leaky_seen.display(),
        leaky.display(),
    );
    let applied = cluster.pacer(&["apply", "-f", "-"], Some(&manifest));
    assert!(applied.status.success(), "apply: {}", text(&applied.stderr));
    // The plain one is stored as written, with a warning naming where it is.
    let warnings = text(&applied.stderr);
    assert!(
        warnings
            .lines()
            .any(|line| line.starts_with("warning: -:") && line.contains("Resource/vault: spec.params.admin_password") && line.contains("secretFile")),
        "{warnings}"
    );
    assert!(!warnings.contains(PLAIN), "{warnings}");

    // The agent received the value of the file, without its trailing newline.
    let received = wait_for(
        "start of vault",
        Duration::from_secs(60),
        || std::fs::read_to_string(&seen).ok().filter(|text| !text.is_empty()),
        || text(&cluster.pacer(&["status"], None).stdout),
    );
    assert!(received.lines().any(|line| line == format!("OCF_RESKEY_passwd={SECRET}")), "{received}");
    assert!(received.lines().any(|line| line == format!("OCF_RESKEY_admin_password={PLAIN}")), "{received}");

    // The group-readable file: the start fails, its reason names parameter and file.
    let status_key = format!("{LOCAL_PREFIX}/status/n1/leaky");
    let reason = wait_for(
        "failure of leaky",
        Duration::from_secs(60),
        || {
            let runtime = tokio::runtime::Handle::current();
            let keys = tokio::task::block_in_place(|| runtime.block_on(dump(&cluster.endpoint, &status_key)));
            let (_, value) = keys.into_iter().next()?;
            let status: serde_json::Value = serde_json::from_slice(&value).ok()?;
            status.get("failureReason").and_then(serde_json::Value::as_str).map(str::to_string)
        },
        || text(&cluster.pacer(&["status"], None).stdout),
    );
    assert!(reason.contains(&format!("read secret parameter passwd from {}", leaky.display())), "{reason}");
    assert!(reason.contains("mode 0640 gives group or others access"), "{reason}");
    assert!(!leaky_seen.exists(), "the agent ran with a group-readable secret");

    // Let a few decisions be recorded with both resources in them.
    std::thread::sleep(Duration::from_secs(3));

    // Nothing in etcd holds either file's text: spec, plans, statuses, events, archive.
    let mut everything = Vec::new();
    for prefix in [LOCAL_PREFIX.to_string(), format!("{LOCAL_PREFIX}.events"), format!("{LOCAL_PREFIX}.archive")] {
        everything.extend(dump(&cluster.endpoint, &prefix).await);
    }
    let blobs = archive_blobs(&everything);
    assert!(!blobs.is_empty(), "the decision archive is empty");
    for (key, value) in everything.iter().chain(blobs.iter()) {
        for needle in [SECRET, LEAKY_SECRET] {
            assert!(!contains(value, needle), "{key} holds the secret: {}", String::from_utf8_lossy(value));
        }
    }
    // The reference is what travels: in the plan, the status and the archived input.
    let plan = everything.iter().find(|(key, _)| key == &format!("{LOCAL_PREFIX}/plans/n1")).expect("the plan of n1");
    assert!(contains(&plan.1, &secret.display().to_string()), "{}", String::from_utf8_lossy(&plan.1));
    assert!(blobs.iter().any(|(_, blob)| contains(blob, &secret.display().to_string())), "the archive has no input with the reference");

    // The outputs: the reference shown, the plain secret redacted, neither secret anywhere.
    let yaml = text(&cluster.pacer(&["get", "rsc", "-o", "yaml"], None).stdout);
    assert!(yaml.contains(&format!("secretFile: {}", secret.display())), "{yaml}");
    assert!(yaml.contains("admin_password: (redacted)"), "{yaml}");
    let json = text(&cluster.pacer(&["get", "rsc", "vault", "-o", "json"], None).stdout);
    let status = text(&cluster.pacer(&["status"], None).stdout);
    let status_json = text(&cluster.pacer(&["status", "-o", "json"], None).stdout);
    let changed = manifest.replace(PLAIN, "another-plain-pw-91c3");
    let diff = cluster.pacer(&["diff", "-f", "-"], Some(&changed));
    let diff_text = text(&diff.stdout);
    assert!(diff_text.contains("+    admin_password: (redacted, changed)"), "{diff_text}");
    for (what, output) in [("get -o yaml", &yaml), ("get -o json", &json), ("status", &status), ("status -o json", &status_json), ("diff", &diff_text)] {
        for needle in [SECRET, LEAKY_SECRET, PLAIN, "another-plain-pw-91c3"] {
            assert!(!output.contains(needle), "{what} shows {needle}: {output}");
        }
    }
}
