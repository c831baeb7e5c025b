//! `pacer history`: the leader's decisions, one shown, replayed on its stored input,
//! or two compared (`ops::history`); `pacer history fencing`: every fencing attempt.

use anyhow::Context;

use crate::ops::OpsError;
use crate::ops::history::{Entry, diff, fencing, list, replay, show};
use crate::store::Store;

use super::{EXIT_REFUSED, Global, OutputFormat, complete, output};

#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub(super) struct HistoryArgs {
    #[command(subcommand)]
    command: Option<HistoryCommand>,
    /// How many decisions to list, newest first.
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// `table` (text, default) or `json`.
    #[arg(short, long, value_enum, default_value = "table")]
    output: OutputFormat,
}

#[derive(clap::Subcommand, Debug)]
enum HistoryCommand {
    /// One decision: its record and a summary of its stored input.
    Show {
        /// The decision's input revision (as `pacer history` lists it), or `latest`.
        revision: String,
        #[arg(short, long, value_enum, default_value = "table")]
        output: OutputFormat,
    },
    /// Run the scheduler again on the stored input of a decision; exit 1 if it
    /// decides differently from the record (or the input was changed or damaged).
    Replay {
        /// The decision's input revision, or `latest`.
        revision: String,
        #[arg(short, long, value_enum, default_value = "table")]
        output: OutputFormat,
    },
    /// What changed between two decisions: in their inputs and in what they decided.
    Diff {
        from: String,
        to: String,
        #[arg(short, long, value_enum, default_value = "table")]
        output: OutputFormat,
    },
    /// Every fencing attempt kept (the newest 500 cluster-wide, and each node's last
    /// success), newest first: target, action, executor, devices, requester, reason,
    /// times, result and error (`stonith_admin --history`).
    Fencing {
        /// Only the attempts on this node.
        #[arg(long, add = complete::nodes())]
        node: Option<String>,
        #[arg(short, long, value_enum, default_value = "table")]
        output: OutputFormat,
    },
}

/// A revision as typed: a positive integer, or `latest` (the newest decision), else
/// refused with one line.
async fn revision(store: &Store, text: &str) -> Result<i64, OpsError> {
    if text.trim() == "latest" {
        let newest = list(store, 1).await?;
        return newest.first().map(|entry| entry.record.input_revision).ok_or_else(|| OpsError::NotFound("no decision recorded yet".to_string()));
    }
    text.trim()
        .parse::<i64>()
        .ok()
        .filter(|revision| *revision > 0)
        .ok_or_else(|| OpsError::Refused(format!("{text:?} is not a revision (see pacer history), nor `latest`")))
}

fn time(seconds: i64) -> String {
    let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(seconds).unwrap_or(0));
    humantime::format_rfc3339_seconds(when).to_string()
}

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value).context("encode")?);
    Ok(())
}

pub(super) async fn history(global: &Global, args: &HistoryArgs) -> anyhow::Result<u8> {
    let store = global.connect().await?;
    match &args.command {
        None => {
            let entries = list(&store, args.limit).await?;
            if args.output == OutputFormat::Json {
                print_json(&entries)?;
            } else {
                print_list(&entries);
            }
            Ok(0)
        }
        Some(HistoryCommand::Show { revision: text, output }) => {
            let shown = show(&store, revision(&store, text).await?).await?;
            if *output == OutputFormat::Json {
                print_json(&shown)?;
                return Ok(0);
            }
            let record = &shown.record;
            println!("decision at revision {} (term {}, {})", record.input_revision, record.term, time(record.time));
            println!("digest: {}", record.digest.as_deref().unwrap_or("(none)"));
            print_lines("actions", &record.actions);
            print_lines("not running", &record.not_running);
            if record.not_running_more > 0 {
                println!("  ... and {} more", record.not_running_more);
            }
            print_lines("fencing", &record.fencing);
            let input = &shown.input;
            println!("input: {} blobs, {} bytes stored; decision time {}, quorum {}", input.blobs, input.stored_bytes, time(input.now), input.quorum);
            if let Some(problem) = &input.problem {
                println!("  cannot be read: {problem}");
            } else {
                println!("  {} objects, {} histories", input.objects.unwrap_or(0), input.histories.unwrap_or(0));
                for (node, liveness) in &input.nodes {
                    println!("  node {node}: {liveness}");
                }
            }
            Ok(0)
        }
        Some(HistoryCommand::Replay { revision: text, output }) => {
            let replay = replay(&store, revision(&store, text).await?).await?;
            if *output == OutputFormat::Json {
                print_json(&replay)?;
            } else if replay.matches {
                println!("decision at revision {} replayed: the same decision ({})", replay.revision, replay.replayed_digest.as_deref().unwrap_or(""));
            } else {
                println!("decision at revision {} replayed: it differs from the record", replay.revision);
                for line in &replay.differences {
                    println!("  {line}");
                }
            }
            Ok(if replay.matches { 0 } else { EXIT_REFUSED })
        }
        Some(HistoryCommand::Fencing { node, output: format }) => {
            let (attempts, skipped) = fencing(&store, node.as_deref()).await?;
            output::warn_skipped(skipped.iter().map(|(key, reason)| (key.as_str(), reason.as_str())));
            if *format == OutputFormat::Json {
                print_json(&attempts)?;
                return Ok(0);
            }
            if attempts.is_empty() {
                println!("no fencing attempt recorded{}", node.as_ref().map(|node| format!(" for {node}")).unwrap_or_default());
            }
            for attempt in &attempts {
                println!("{}", super::status::fence_attempt_line(attempt));
                for line in &attempt.attempts {
                    println!("    {line}");
                }
            }
            Ok(0)
        }
        Some(HistoryCommand::Diff { from, to, output }) => {
            let diff = diff(&store, revision(&store, from).await?, revision(&store, to).await?).await?;
            if *output == OutputFormat::Json {
                print_json(&diff)?;
                return Ok(0);
            }
            println!("from revision {} to {}", diff.from, diff.to);
            print_lines("input", &diff.input);
            print_lines("decision", &diff.decision);
            Ok(0)
        }
    }
}

fn print_lines(label: &str, lines: &[String]) {
    if lines.is_empty() {
        println!("{label}: none");
        return;
    }
    println!("{label}:");
    for line in lines {
        println!("  {line}");
    }
}

fn print_list(entries: &[Entry]) {
    println!("{:<12} {:<6} {:<22} {:<7} SUMMARY", "REVISION", "TERM", "TIME", "INPUT");
    for entry in entries {
        let record = &entry.record;
        let mut summary: Vec<String> = record.actions.iter().take(3).cloned().collect();
        if record.actions.len() > 3 {
            summary.push(format!("… {} more", record.actions.len() - 3));
        }
        summary.extend(record.fencing.iter().map(|fencing| format!("fence {fencing}")));
        let summary = if summary.is_empty() { "(no action)".to_string() } else { summary.join("; ") };
        let input = if entry.input { "kept" } else { "-" };
        println!("{:<12} {:<6} {:<22} {:<7} {summary}", record.input_revision, record.term, time(record.time), input);
    }
}
