//! The store survives bad and big data: a value under `spec/` that does not decode is
//! skipped with a warning by every command that reads the spec; a spec larger than
//! one gRPC message (the client's 4 MiB default) is read back in pages; and apply
//! refuses a change that would grow the spec past `MAX_SPEC_BYTES`, so what it
//! accepts can always be read back. Each test starts its own etcd and runs the binary.

mod common;

use std::process::Output;

use common::{TestEtcd, pacer, text};
use pacer::api::Object;
use pacer::store::{MAX_SPEC_BYTES, Store};
use serde_json::{Value, json};

const PREFIX: &str = "/pacer";
const BAD_KEY: &str = "/pacer/spec/nodes/n9";

/// The client's default limit on one answer, which a listing used to be bound by.
const CLIENT_DEFAULT_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

fn node(name: &str) -> String {
    format!("apiVersion: pacer.io/v1alpha1\nkind: Node\nmetadata: {{name: {name}}}\n")
}

fn resource(name: &str) -> String {
    format!("apiVersion: pacer.io/v1alpha1\nkind: Resource\nmetadata: {{name: {name}}}\nspec: {{agent: \"ocf:heartbeat:Dummy\"}}\n")
}

/// A resource whose params hold `params` values of `bytes` characters each (a value
/// may hold at most 65,536).
fn big_resource(name: &str, params: usize, bytes: usize) -> String {
    let mut text = format!("apiVersion: pacer.io/v1alpha1\nkind: Resource\nmetadata: {{name: {name}}}\nspec:\n  agent: ocf:heartbeat:Dummy\n  params:\n");
    for index in 0..params {
        let filler: String = (0..bytes).map(|offset| char::from(b'a' + ((offset + index) % 26) as u8)).collect();
        text.push_str(&format!("    p{index}: {filler}\n"));
    }
    text
}

fn run(etcd: &TestEtcd, args: &[&str], stdin: Option<&str>) -> (Output, String, String) {
    let output = pacer(&etcd.endpoint(), PREFIX, args, stdin);
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    (output, stdout, stderr)
}

/// Runs a command that must succeed and name the bad key exactly once, with nothing
/// else on stderr; returns its stdout.
fn succeeds_warning_once(etcd: &TestEtcd, args: &[&str], stdin: Option<&str>) -> String {
    let (output, stdout, stderr) = run(etcd, args, stdin);
    assert_eq!(output.status.code(), Some(0), "pacer {args:?}: stdout:\n{stdout}\nstderr:\n{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "pacer {args:?}: one line on stderr, the warning; got:\n{stderr}");
    assert!(lines[0].starts_with(&format!("warning: skipping {BAD_KEY}: not JSON")), "pacer {args:?}: {stderr}");
    stdout
}

async fn put_raw(etcd: &TestEtcd, key: &str, value: &str) {
    etcd.client().await.put(key, value, None).await.expect("write a raw value");
}

/// etcd's current revision: it moves with every write.
async fn revision(etcd: &TestEtcd) -> i64 {
    let response = etcd.client().await.get("/pacer/spec/version", None).await.expect("read etcd");
    response.header().map(|header| header.revision()).expect("a header")
}

async fn exists(etcd: &TestEtcd, key: &str) -> bool {
    etcd.dump(key).await.iter().any(|(found, _)| found == key)
}

#[tokio::test]
async fn a_value_that_does_not_decode_is_named_and_everything_else_works() {
    let etcd = TestEtcd::start();
    let manifests = [node("n1"), resource("web"), resource("db")].join("---\n");
    let (output, _, stderr) = run(&etcd, &["apply", "-f", "-"], Some(&manifests));
    assert!(output.status.success(), "{stderr}");
    put_raw(&etcd, BAD_KEY, "not json").await;

    let resources = succeeds_warning_once(&etcd, &["get", "resources"], None);
    assert!(resources.contains("web") && resources.contains("db"), "{resources}");
    let nodes = succeeds_warning_once(&etcd, &["get", "nodes"], None);
    assert!(nodes.contains("n1") && !nodes.contains("n9"), "{nodes}");
    let status = succeeds_warning_once(&etcd, &["status"], None);
    assert!(status.contains("n1") && status.contains("web") && status.contains("db"), "{status}");
    let unchanged = succeeds_warning_once(&etcd, &["diff", "-f", "-"], Some(&manifests));
    assert_eq!(unchanged, "", "nothing differs");
    let applied = succeeds_warning_once(&etcd, &["apply", "-f", "-"], Some(&node("n2")));
    assert_eq!(applied, "Node/n2 created\n");

    let deleted = succeeds_warning_once(&etcd, &["delete", "resource", "web"], None);
    assert_eq!(deleted, "Resource/web deleted\n");
    assert!(!exists(&etcd, "/pacer/spec/resources/web").await, "web is gone");
    assert!(exists(&etcd, "/pacer/spec/resources/db").await, "db stays");
    assert!(exists(&etcd, BAD_KEY).await, "the bad key is left for a person to look at");
    let json = succeeds_warning_once(&etcd, &["get", "resources", "-o", "json"], None);
    let names = item_names(&json);
    assert_eq!(names, ["db"]);
}

fn item_names(json: &str) -> Vec<String> {
    let list: Value = serde_json::from_str(json).expect("get -o json prints JSON");
    let items = list["items"].as_array().expect("a List");
    items.iter().map(|item| item["metadata"]["name"].as_str().unwrap_or_default().to_string()).collect()
}

#[tokio::test]
async fn a_spec_larger_than_one_message_is_read_back_whole() {
    let etcd = TestEtcd::start();
    // 25 resources of about 180 KB each: each well under MAX_OBJECT_BYTES, together
    // more than one answer of the client's default size.
    let documents: Vec<String> = (0..25).map(|index| big_resource(&format!("big{index:02}"), 4, 45_000)).collect();
    let manifests = [vec![node("n1")], documents].concat().join("---\n");
    assert!(manifests.len() > CLIENT_DEFAULT_MESSAGE_BYTES, "the spec must outgrow one default answer: {} bytes", manifests.len());
    let (output, stdout, stderr) = run(&etcd, &["apply", "-f", "-"], Some(&manifests));
    assert!(output.status.success(), "apply: {stderr}");
    assert_eq!(stdout.lines().filter(|line| line.ends_with(" created")).count(), 26, "{stdout}");

    let (output, json, stderr) = run(&etcd, &["get", "resources", "-o", "json"], None);
    assert!(output.status.success(), "get: {stderr}");
    let names = item_names(&json);
    assert_eq!(names.len(), 25, "{names:?}");
    let list: Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(list["items"][24]["spec"]["params"]["p3"].as_str().map(str::len), Some(45_000), "values come back whole");

    let (output, status, stderr) = run(&etcd, &["status", "-o", "json"], None);
    assert!(output.status.success(), "status: {stderr}");
    let status: Value = serde_json::from_str(&status).expect("status -o json prints JSON");
    assert_eq!(status["resources"].as_array().map(Vec::len), Some(25), "{status}");

    let (output, stdout, stderr) = run(&etcd, &["delete", "resource", "big07"], None);
    assert!(output.status.success(), "delete: {stderr}");
    assert_eq!(stdout, "Resource/big07 deleted\n");
    let (_, json, _) = run(&etcd, &["get", "resources", "-o", "json"], None);
    let names = item_names(&json);
    assert_eq!(names.len(), 24);
    assert!(!names.contains(&"big07".to_string()));
}

/// A resource as the store would hold it, with `bytes` characters of params split
/// over four values: its size is `bytes` plus an overhead that depends on the name
/// only.
fn stored_resource(name: &str, bytes: usize) -> String {
    let params: serde_json::Map<String, Value> =
        (0..4).map(|index| (format!("p{index}"), Value::String("x".repeat(bytes / 4 + usize::from(index < bytes % 4))))).collect();
    let value =
        json!({"apiVersion": "pacer.io/v1alpha1", "kind": "Resource", "metadata": {"name": name}, "spec": {"agent": "ocf:heartbeat:Dummy", "params": params}});
    Store::encode_object(&Object::from_value(value).expect("a valid resource"))
}

#[tokio::test]
async fn apply_refuses_to_grow_the_spec_past_its_limit() {
    let etcd = TestEtcd::start();
    let (output, _, stderr) = run(&etcd, &["apply", "-f", "-"], Some(&node("n1")));
    assert!(output.status.success(), "{stderr}");
    let mut total: usize = etcd.dump("/pacer/spec/").await.iter().map(|(_, value)| value.len()).sum();
    // Fill the spec to 100 KB under the limit, written directly: applying 64 MiB of
    // manifests would take the test far longer and prove nothing more.
    let margin = 100_000;
    let target = MAX_SPEC_BYTES - margin;
    let overhead = stored_resource("fill000", 0).len();
    let full = overhead + 240_000;
    let mut sizes = Vec::new();
    while target - total - sizes.iter().sum::<usize>() >= 2 * full {
        sizes.push(full);
    }
    // What is left, between one and two full objects, in two.
    let left = target - total - sizes.iter().sum::<usize>();
    sizes.extend([left / 2, left - left / 2]);
    let mut client = etcd.client().await;
    for (index, size) in sizes.iter().enumerate() {
        let value = stored_resource(&format!("fill{index:03}"), size - overhead);
        assert_eq!(value.len(), *size);
        client.put(format!("/pacer/spec/resources/fill{index:03}"), value, None).await.expect("fill");
        total += size;
    }
    assert_eq!(total, MAX_SPEC_BYTES - margin);
    let revision_before = revision(&etcd).await;

    // 180 KB more would pass the limit: refused, exit 1, nothing written.
    let (output, stdout, stderr) = run(&etcd, &["apply", "-f", "-"], Some(&big_resource("over", 4, 45_000)));
    assert_eq!(output.status.code(), Some(1), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stderr.starts_with("-:1:1: Resource/over: the spec would be "), "{stderr}");
    assert!(stderr.contains(&format!("more than the limit of {MAX_SPEC_BYTES}; this object adds ")), "{stderr}");
    assert!(stderr.ends_with("error: 1 problem found; nothing was written\n"), "{stderr}");
    assert_eq!(revision(&etcd).await, revision_before, "nothing was written");

    // A small one still fits, and the whole spec reads back.
    let (output, _, stderr) = run(&etcd, &["apply", "-f", "-"], Some(&resource("small")));
    assert!(output.status.success(), "a change within the limit is accepted: {stderr}");
    let (output, json, stderr) = run(&etcd, &["get", "resources", "-o", "json"], None);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(item_names(&json).len(), sizes.len() + 1);
}
