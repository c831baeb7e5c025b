//! `pacer events`: the cluster's events, oldest first, as a table (local time) or
//! JSON; `--watch` follows the log (`ops::events`).

use crate::runtime::now_usec;
use std::io::Write;

use anyhow::Context;

use crate::api::ocf;
use crate::api::records::{EventKind, EventRecord, ExecStatus};
use crate::api::yaml::to_yaml_string;
use crate::ops::events::{EventWatch, Events, Subject, filter, list};

use super::{Global, OutputFormat, output};

#[derive(clap::Args, Debug)]
pub(super) struct EventsArgs {
    /// Only the events of `resource/NAME` (with a clone's instances and a group's
    /// members) or of `node/NAME`.
    #[arg(long = "for", value_name = "KIND/NAME")]
    subject: Option<Subject>,
    /// Only the events of the last DUR (`90s`, `10m`, `1h30m`).
    #[arg(long, value_name = "DUR")]
    since: Option<crate::api::Duration>,
    /// After the events so far, print each new one as the leader records it, until
    /// interrupted.
    #[arg(short, long)]
    watch: bool,
    /// `table` (default), `json` (an array; with --watch one object a line) or `yaml`.
    #[arg(short, long, value_enum, default_value = "table")]
    output: OutputFormat,
}

const HEADER: [&str; 8] = ["SEQ", "TIME", "KIND", "NODE", "RESOURCE", "TASK", "REPORTER", "DESCRIPTION"];

pub(super) async fn events(global: &Global, args: &EventsArgs) -> anyhow::Result<u8> {
    let store = global.connect().await?;
    let since_usec = args.since.map(|since| now_usec().saturating_sub(i64::try_from(since.as_millis().saturating_mul(1000)).unwrap_or(i64::MAX)));
    let filter = filter(&store, args.subject.as_ref(), since_usec).await?;
    let listed = list(&store, &filter).await?;
    output::warn_skipped(listed.undecodable.iter().map(|skipped| (skipped.key.as_str(), skipped.reason.as_str())));
    let all: Vec<&EventRecord> = listed.sequenced.iter().chain(&listed.pending).collect();
    let mut out = std::io::stdout().lock();
    let widths = match args.output {
        OutputFormat::Json if args.watch => {
            for event in &all {
                writeln!(out, "{}", serde_json::to_string(event).context("encode an event")?)?;
            }
            None
        }
        OutputFormat::Json => {
            writeln!(out, "{}", serde_json::to_string_pretty(&all).context("encode the events")?)?;
            None
        }
        OutputFormat::Yaml if args.watch => {
            for event in &all {
                write!(out, "---\n{}", to_yaml_string(&serde_json::to_value(event).context("encode an event")?))?;
            }
            None
        }
        OutputFormat::Yaml => {
            write!(out, "{}", to_yaml_string(&serde_json::to_value(&all).context("encode the events")?))?;
            None
        }
        OutputFormat::Table | OutputFormat::Wide => {
            let rows: Vec<Vec<String>> = all.iter().map(|event| row(event)).collect();
            let widths = column_widths(&rows);
            if !rows.is_empty() || args.watch {
                write!(out, "{}", line(&HEADER.map(str::to_string), &widths))?;
            } else {
                eprintln!("no events");
            }
            for row in &rows {
                write!(out, "{}", line(row, &widths))?;
            }
            Some(widths)
        }
    };
    out.flush()?;
    drop(out);
    if args.watch {
        follow(&store, &listed, &filter, args.output, widths.as_deref()).await?;
    }
    Ok(0)
}

/// Prints each event sequenced from now on, as it comes (until interrupted: Ctrl-C, or
/// the reader of a pipe going away ends the process).
async fn follow(
    store: &crate::store::Store,
    listed: &Events,
    filter: &crate::ops::events::Filter,
    format: OutputFormat,
    widths: Option<&[usize]>,
) -> anyhow::Result<()> {
    let mut watch = EventWatch::after(store, listed, filter);
    let mut warned = false;
    loop {
        let events = match watch.next().await {
            Ok(events) => events,
            // etcd out of reach for a while: said once, followed again when it is back.
            Err(error) if !warned => {
                eprintln!("warning: {error}; still trying");
                warned = true;
                continue;
            }
            Err(_) => continue,
        };
        warned = false;
        let mut out = std::io::stdout().lock();
        for event in &events {
            match format {
                OutputFormat::Json => writeln!(out, "{}", serde_json::to_string(event).context("encode an event")?)?,
                OutputFormat::Yaml => write!(out, "---\n{}", to_yaml_string(&serde_json::to_value(event).context("encode an event")?))?,
                OutputFormat::Table | OutputFormat::Wide => write!(out, "{}", line(&row(event), widths.unwrap_or(&[])))?,
            }
        }
        out.flush()?;
    }
}

/// An event's time in the local time zone, to the second.
fn local_time(time_usec: i64) -> String {
    use chrono::TimeZone;
    match chrono::Local.timestamp_micros(time_usec) {
        chrono::LocalResult::Single(time) | chrono::LocalResult::Ambiguous(time, _) => time.format("%Y-%m-%d %H:%M:%S").to_string(),
        chrono::LocalResult::None => "-".to_string(),
    }
}

/// One event as a table row (`HEADER`); a pending event's sequence is `-`.
fn row(event: &EventRecord) -> Vec<String> {
    let dash = |text: Option<&str>| text.filter(|text| !text.is_empty()).unwrap_or("-").to_string();
    let task = match event.task.as_deref() {
        Some(task) if event.interval_ms > 0 => format!("{task}/{}", crate::api::Duration::from_millis(event.interval_ms)),
        task => dash(task),
    };
    vec![
        if event.sequence == 0 { "-".to_string() } else { event.sequence.to_string() },
        local_time(event.time_usec),
        event.kind.as_str().to_string(),
        dash(event.node.as_deref()),
        dash(event.resource.as_deref()),
        task,
        event.reporter.clone(),
        description(event),
    ]
}

/// What happened, in one phrase: the event's own description, and for an operation
/// that answered other than expected, what was expected (`not running (expected
/// ok)`, a probe's `ok (expected not running)`).
fn description(event: &EventRecord) -> String {
    let unexpected =
        event.kind == EventKind::Resource && event.status == Some(ExecStatus::Done) && event.rc.zip(event.target_rc).is_some_and(|(rc, target)| rc != target);
    match event.target_rc {
        Some(target) if unexpected => format!("{} (expected {})", event.desc, ocf::describe(target)),
        _ => event.desc.clone(),
    }
}

/// Each column as wide as its title and its widest cell (the last is not padded).
fn column_widths(rows: &[Vec<String>]) -> Vec<usize> {
    let mut widths: Vec<usize> = HEADER.iter().map(|title| title.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    widths
}

/// A row padded to `widths`, columns three spaces apart (as kubectl and `get` print);
/// a cell wider than its column (a row that came later) pushes the rest along.
fn line(cells: &[String], widths: &[usize]) -> String {
    let last = cells.len().saturating_sub(1);
    let mut text = String::new();
    for (column, cell) in cells.iter().enumerate() {
        text.push_str(cell);
        if column < last {
            let pad = widths.get(column).copied().unwrap_or(0).saturating_sub(cell.chars().count()) + 3;
            text.push_str(&" ".repeat(pad));
        }
    }
    format!("{}\n", text.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_print_as_a_table() {
        let mut start = EventRecord::new(EventKind::Resource, "n1", 1_700_000_000_000_000, "ok");
        start.sequence = 12;
        start.node = Some("n1".into());
        start.resource = Some("web:0".into());
        start.task = Some("start".into());
        start.rc = Some(0);
        start.target_rc = Some(0);
        start.status = Some(ExecStatus::Done);
        let mut failed = start.clone();
        failed.sequence = 0;
        failed.task = Some("monitor".into());
        failed.interval_ms = 10_000;
        failed.rc = Some(7);
        failed.desc = "not running".into();
        let mut attribute = EventRecord::new(EventKind::Attribute, "n2", 1_700_000_000_000_000, "Attribute 'master-db' on node 'n2' was updated to '10'");
        attribute.node = Some("n2".into());
        let rows: Vec<Vec<String>> = [&start, &failed, &attribute]
            .map(row)
            .into_iter()
            .map(|mut row| {
                // The time depends on the reader's zone.
                row[1] = "TIME".into();
                row
            })
            .collect();
        let widths = column_widths(&rows);
        let text: String = std::iter::once(line(&HEADER.map(str::to_string), &widths)).chain(rows.iter().map(|row| line(row, &widths))).collect();
        expect_test::expect![[r#"
            SEQ   TIME   KIND        NODE   RESOURCE   TASK          REPORTER   DESCRIPTION
            12    TIME   resource    n1     web:0      start         n1         ok
            -     TIME   resource    n1     web:0      monitor/10s   n1         not running (expected ok)
            -     TIME   attribute   n2     -          -             n2         Attribute 'master-db' on node 'n2' was updated to '10'
        "#]]
        .assert_eq(&text);
    }
}
