//! Apply benchmark: validation and all-or-nothing writes of 1,000 and 10,000 objects
//! to a private etcd (`make bench`). Prints wall-clock figures; asserts only that
//! every apply landed.

use std::time::Instant;

use pacer::api::manifest::{Source, load};
use pacer::local::etcd::EtcdServer;
use pacer::store::Store;
use pacer::store::apply::{ApplyOutcome, ApplyRequest, apply};

/// A cluster-shaped manifest of about `count` objects: nodes, resources (some
/// cloned), groups, locations, colocations and orders.
fn manifest(count: usize, marker: &str) -> String {
    let nodes = (count / 100).max(2);
    let per_block = 6;
    let blocks = (count - nodes) / per_block;
    let mut documents = Vec::with_capacity(count);
    for node in 0..nodes {
        documents.push(format!("apiVersion: pacer.io/v1alpha1\nkind: Node\nmetadata: {{name: node{node}}}\nspec:\n  attributes: {{rack: r{}}}\n", node % 8));
    }
    for block in 0..blocks {
        let node = block % nodes;
        documents.push(format!(
            "apiVersion: pacer.io/v1alpha1\nkind: Resource\nmetadata: {{name: ip{block}}}\nspec:\n  agent: ocf:heartbeat:IPaddr2\n  params: {{ip: 10.{}.{}.{}, cidr_netmask: 24, marker: {marker}}}\n  operations:\n  - {{name: monitor, interval: 10s, timeout: 20s}}\n",
            block / 65536 % 256,
            block / 256 % 256,
            block % 256
        ));
        documents.push(format!(
            "apiVersion: pacer.io/v1alpha1\nkind: Resource\nmetadata: {{name: svc{block}}}\nspec:\n  agent: lsb:service{block}\n  operations:\n  - {{name: monitor, interval: 30s}}\n"
        ));
        documents.push(format!("apiVersion: pacer.io/v1alpha1\nkind: Group\nmetadata: {{name: grp{block}}}\nspec: {{members: [ip{block}, svc{block}]}}\n"));
        documents.push(format!(
            "apiVersion: pacer.io/v1alpha1\nkind: Location\nmetadata: {{name: loc{block}}}\nspec: {{resource: grp{block}, node: node{node}, score: 100}}\n"
        ));
        documents.push(format!(
            "apiVersion: pacer.io/v1alpha1\nkind: Resource\nmetadata: {{name: ping{block}}}\nspec:\n  agent: ocf:pacemaker:ping\n  params: {{host_list: 10.0.0.1}}\n  clone: {{interleave: true}}\n"
        ));
        documents.push(format!(
            "apiVersion: pacer.io/v1alpha1\nkind: Order\nmetadata: {{name: ord{block}}}\nspec: {{first: ping{block}, then: grp{block}, kind: Optional}}\n"
        ));
    }
    documents.join("---\n")
}

fn seconds(start: Instant) -> String {
    format!("{:.3}s", start.elapsed().as_secs_f64())
}

async fn run(store: &Store, text: &str) -> (usize, String, String) {
    let started = Instant::now();
    let loaded = load(&[Source { name: "bench.yaml".into(), text: text.to_string() }]);
    let parsed = seconds(started);
    assert!(loaded.diagnostics.is_empty(), "bench manifests are valid: {:?}", loaded.diagnostics.first());
    let objects = loaded.manifests.len();
    let outcome = apply(store, &ApplyRequest { loaded, ..Default::default() }).await;
    match outcome {
        Ok(ApplyOutcome::Planned(report)) => assert!(report.revision.is_some() || !report.changed()),
        other => panic!("apply failed: {other:?}"),
    }
    (objects, parsed, seconds(started))
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let directory = tempfile::tempdir().expect("temporary directory");
    let etcd = EtcdServer::start(&directory.path().join("etcd"), &["--quota-backend-bytes=8589934592"]).expect("start etcd (run scripts/install-deps)");
    runtime.block_on(async {
        println!("{:>8}  {:<26} {:>10} {:>12}", "objects", "apply", "parse+schema", "total");
        for count in [1_000, 10_000] {
            let store = Store::connect(&[etcd.endpoint()], &format!("/bench{count}")).await.expect("connect");
            let original = manifest(count, "a");
            let (objects, parsed, total) = run(&store, &original).await;
            println!("{objects:>8}  {:<26} {parsed:>10} {total:>12}", "create");
            let (_, parsed, total) = run(&store, &original).await;
            println!("{objects:>8}  {:<26} {parsed:>10} {total:>12}", "re-apply, nothing changed");
            let (_, parsed, total) = run(&store, &manifest(count, "b")).await;
            println!("{objects:>8}  {:<26} {parsed:>10} {total:>12}", "update (1 in 6 changed)");
            let listing = store.list_objects().await.expect("list");
            assert_eq!(listing.objects.len(), objects, "every object landed");
        }
    });
}
