//! `pacer wait` (until a resource is started, stopped or promoted) and `pacer
//! completion` (shell completion that knows the live resource and node names).

use std::time::Duration;

use anyhow::Context;

use crate::ops::wait::{WaitFor, wait_for};

use super::{Global, OutputFormat, complete};

#[derive(clap::Args, Debug)]
pub(super) struct WaitArgs {
    /// A Resource, Group or FenceDevice.
    #[arg(add = complete::resources())]
    resource: String,
    /// The state to wait for.
    #[arg(long = "for", value_enum)]
    state: WaitFor,
    /// Only on this node.
    #[arg(long, add = complete::nodes())]
    node: Option<String>,
    /// How long to wait: exit 1 if the state is not reached by then.
    #[arg(long, default_value = "60s")]
    timeout: crate::api::Duration,
    /// `table` (text, default) or `json`.
    #[arg(short, long, value_enum, default_value = "table")]
    output: OutputFormat,
}

/// `pacer wait`: exit 0 once the state holds, 1 at the timeout (saying where the
/// resource runs), 2 on error.
pub(super) async fn wait(global: &Global, args: &WaitArgs) -> anyhow::Result<u8> {
    let store = global.connect().await?;
    let timeout = Duration::from_millis(args.timeout.as_millis());
    let reached = wait_for(&store, &args.resource, args.state, args.node.as_deref(), timeout).await?;
    if args.output == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(&reached).context("encode the result")?);
    } else {
        let state = match reached.state {
            WaitFor::Started => "started",
            WaitFor::Stopped => "stopped",
            WaitFor::Promoted => "promoted",
        };
        let place = reached.node.as_deref().map(|node| format!(" on {node}")).unwrap_or_default();
        let running = if reached.nodes.is_empty() { String::new() } else { format!(" ({})", reached.nodes.join(", ")) };
        println!("{} {state}{place}{running} after {:.1}s", reached.resource, reached.seconds);
    }
    Ok(0)
}

/// The shells `completion` writes a registration for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(clap::Args, Debug)]
pub(super) struct CompletionArgs {
    shell: Shell,
}

/// `pacer completion SHELL`: the script that registers `pacer` for completion in that
/// shell. Completion itself is done by `pacer` (when the shell sets `COMPLETE`), so
/// it completes subcommands, flags, and the live cluster's resource and node names.
pub(super) fn completion(args: &CompletionArgs) -> anyhow::Result<u8> {
    use clap_complete::env::EnvCompleter;
    let program = std::env::current_exe().context("find the pacer executable")?;
    let program = program.to_string_lossy();
    let mut out = std::io::stdout().lock();
    let shell: &dyn EnvCompleter = match args.shell {
        Shell::Bash => &clap_complete::env::Bash,
        Shell::Zsh => &clap_complete::env::Zsh,
        Shell::Fish => &clap_complete::env::Fish,
    };
    shell.write_registration(complete::VAR, "pacer", "pacer", &program, &mut out).context("write the completion script")?;
    Ok(0)
}
