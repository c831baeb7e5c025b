//! `pacer move`, `pacer ban` and `pacer clear`: arguments and printing; the verbs are
//! `ops::placement`'s.

use anyhow::Context;

use crate::api::Duration;
use crate::ops::OpsError;
use crate::ops::placement::{BanRequest, ClearRequest, MoveRequest, PlacementChange, ban, clear, move_resource, wait};

use super::{ChangeArgs, Global, OutputFormat};

#[derive(clap::Args, Debug)]
pub(super) struct MoveArgs {
    /// The resource (or group) to move.
    resource: String,
    /// Where to. Without it: away from the node it runs on now.
    node: Option<String>,
    /// The constraint expires after this long (30s, 2min, 1h30m).
    #[arg(long, value_name = "DUR")]
    lifetime: Option<String>,
    /// Move the promoted instance of a promotable clone.
    #[arg(long)]
    promoted: bool,
    /// Leave the constraint in place once the resource has moved (by default the
    /// cluster removes it as soon as the resource runs where asked).
    #[arg(long)]
    keep: bool,
    #[command(flatten)]
    change: ChangeArgs,
}

#[derive(clap::Args, Debug)]
pub(super) struct BanArgs {
    /// The resource (or group, or clone) to ban.
    resource: String,
    /// From where. Without it: the node it runs on now.
    node: Option<String>,
    /// The ban expires after this long (30s, 2min, 1h30m).
    #[arg(long, value_name = "DUR")]
    lifetime: Option<String>,
    /// Ban only the promoted role of a promotable clone.
    #[arg(long)]
    promoted: bool,
    #[command(flatten)]
    change: ChangeArgs,
}

#[derive(clap::Args, Debug)]
pub(super) struct ClearArgs {
    /// The resource whose constraints made by `move` and `ban` go.
    resource: String,
    /// Only the constraints about this node.
    #[arg(long)]
    node: Option<String>,
    /// Only the constraints that have expired.
    #[arg(long)]
    expired: bool,
    #[command(flatten)]
    change: ChangeArgs,
}

/// A `--lifetime`, or a one-line refusal (exit 1) naming the flag.
fn lifetime(text: Option<&str>) -> anyhow::Result<Option<Duration>> {
    text.map(|text| text.parse::<Duration>().map_err(|error| OpsError::Refused(format!("--lifetime: {error}")))).transpose().map_err(anyhow::Error::from)
}

/// `pacer move`.
pub(super) async fn move_command(global: &Global, args: &MoveArgs) -> anyhow::Result<u8> {
    let request = MoveRequest {
        resource: args.resource.clone(),
        node: args.node.clone(),
        lifetime: lifetime(args.lifetime.as_deref())?,
        promoted: args.promoted,
        keep: args.keep,
        dry_run: args.change.dry_run,
    };
    let store = global.connect().await?;
    let change = move_resource(&store, &request).await?;
    finish(&store, change, &args.change).await
}

/// `pacer ban`.
pub(super) async fn ban_command(global: &Global, args: &BanArgs) -> anyhow::Result<u8> {
    let request = BanRequest {
        resource: args.resource.clone(),
        node: args.node.clone(),
        lifetime: lifetime(args.lifetime.as_deref())?,
        promoted: args.promoted,
        dry_run: args.change.dry_run,
    };
    let store = global.connect().await?;
    let change = ban(&store, &request).await?;
    finish(&store, change, &args.change).await
}

/// `pacer clear`.
pub(super) async fn clear_command(global: &Global, args: &ClearArgs) -> anyhow::Result<u8> {
    let request = ClearRequest { resource: args.resource.clone(), node: args.node.clone(), expired: args.expired, dry_run: args.change.dry_run };
    let store = global.connect().await?;
    let change = clear(&store, &request).await?;
    finish(&store, change, &args.change).await
}

/// Prints the change, waits when asked (not after a dry run), prints the wait.
async fn finish(store: &crate::store::Store, mut change: PlacementChange, args: &ChangeArgs) -> anyhow::Result<u8> {
    let json = args.output == OutputFormat::Json;
    if !json {
        print!("{}", change.describe());
    }
    for notice in &change.notices {
        eprintln!("notice: {notice}");
    }
    let mut code = 0;
    if let Some(limit) = args.wait.filter(|_| !change.dry_run) {
        match wait(store, &mut change, limit.as_std()).await {
            Ok(waited) => {
                if !json {
                    let what = match &change.wish {
                        Some(wish) if wish.prefer => format!("{} runs on {}", wish.resource, wish.node),
                        Some(wish) => format!("{} runs elsewhere than {}", wish.resource, wish.node),
                        None => "the cluster has settled".to_string(),
                    };
                    println!("{what} (waited {:.1}s)", waited.elapsed.as_secs_f64());
                }
            }
            Err(error @ OpsError::NotReached(_)) => {
                eprintln!("error: {error}");
                code = error.exit_code();
            }
            Err(error) => return Err(error.into()),
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&change).context("encode the change")?);
    }
    Ok(code)
}
