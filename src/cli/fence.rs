//! `pacer fence confirm NODE`: the manual fencing path — a person vouches that a lost
//! node is down, so its resources may be recovered without a fence device.

use anyhow::Context;
use clap::Subcommand;

use crate::agent::events::{EventIds, fencing_event};
use crate::api::records::{FenceRequestRecord, FenceResultRecord};

use super::{EXIT_REFUSED, Global};

#[derive(Subcommand, Debug)]
pub(super) enum FenceCommand {
    /// Confirm that NODE is down: what it reported running is forgotten.
    Confirm { node: String },
}

/// Records a successful "off" for the node's pending request (or request 0), its
/// fencing event (reporter `pacer`), and forgets what the node reported, in one
/// transaction; refused (exit 1) while its agent holds its lease.
pub(super) async fn confirm(global: &Global, node: &str) -> anyhow::Result<u8> {
    let store = global.connect().await?;
    let (_, requests) = store.read_records::<FenceRequestRecord>(&store.keys().fence_request(node)).await?;
    let request = requests.first().map_or(0, |(_, request, _)| request.id);
    let user = std::env::var("USER").unwrap_or_else(|_| "a person".into());
    let result = FenceResultRecord {
        request,
        target: node.to_string(),
        action: "off".to_string(),
        succeeded: true,
        by: format!("confirmed by {user}"),
        finished: i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|elapsed| elapsed.as_secs()).unwrap_or(0))
            .unwrap_or(i64::MAX),
        attempts: Vec::new(),
    };
    // The event, under the target's pending events, in the same transaction.
    let time_usec = crate::runtime::now_usec();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|name| name.trim().to_string()).unwrap_or_else(|_| "localhost".into());
    let event = fencing_event(&result, "pacer", &format!("a human ({user})"), &format!("pacer@{host}"), time_usec);
    let id = EventIds::default().next(time_usec, i64::from(std::process::id()));
    let key = store.keys().pending_event(node, &id);
    let also = vec![(key, serde_json::to_string(&event).context("encode the event")?)];
    if !store.confirm_fenced(node, &result, also).await.context("record the confirmation")? {
        eprintln!("error: node {node} is alive (its agent holds its lease); confirm only a node you know is down");
        return Ok(EXIT_REFUSED);
    }
    println!("node {node} confirmed down: its resources may be recovered elsewhere");
    Ok(0)
}
