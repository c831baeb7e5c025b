//! The example manifests apply cleanly to a real etcd, and re-applying them changes
//! nothing.

mod common;

use common::{TestEtcd, pacer, text};

#[tokio::test]
async fn examples_apply_and_reapply_unchanged() {
    let root = env!("CARGO_MANIFEST_DIR");
    let examples = format!("{root}/manifests/examples");
    let etcd = TestEtcd::start();
    let output = pacer(&etcd.endpoint(), "/examples", &["apply", "-f", &examples, "--applyset", "examples"], None);
    assert!(output.status.success(), "apply failed:\n{}", text(&output.stderr));
    let created = text(&output.stdout);
    let count = created.lines().count();
    assert!(count >= 20, "the examples hold the brief's scenarios ({count} objects):\n{created}");
    assert!(created.lines().all(|line| line.ends_with(" created")), "{created}");
    for needed in ["ClusterPolicy/cluster created", "FenceDevice/", "FencingTopology/", "Colocation/", "Order/", "Alert/"] {
        assert!(created.contains(needed), "the examples include {needed}:\n{created}");
    }
    let stored = etcd.objects("/examples").await;
    assert_eq!(stored.len(), count, "every object is stored");
    let again = pacer(&etcd.endpoint(), "/examples", &["apply", "-f", &examples, "--applyset", "examples", "--prune"], None);
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert!(text(&again.stdout).lines().all(|line| line.ends_with(" unchanged")), "{}", text(&again.stdout));
    let diff = pacer(&etcd.endpoint(), "/examples", &["diff", "-f", &examples, "--applyset", "examples"], None);
    assert_eq!(diff.status.code(), Some(0), "{}", text(&diff.stdout));
}
