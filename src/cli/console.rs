//! `pacer console`: the web console (`console::serve`), with the TLS and config
//! options of every command.

use std::path::PathBuf;

use anyhow::Context;

use crate::console::{Options, Token, prepare};

use super::Global;

#[derive(clap::Args, Debug)]
pub(super) struct ConsoleArgs {
    /// Where to serve the console (IP:PORT; port 0: any free port). Serve it on
    /// loopback or a management network: it speaks plain HTTP (put a TLS proxy in front
    /// for anything else).
    #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:7070")]
    listen: std::net::SocketAddr,
    /// Show the cluster only: no action is offered, and action requests are refused
    /// with 403.
    #[arg(long, conflicts_with = "token_file")]
    read_only: bool,
    /// The token actions need (the file's first line, 16 characters or more; the
    /// file must be 0600). Required unless --read-only.
    #[arg(long, value_name = "FILE", required_unless_present = "read_only")]
    token_file: Option<PathBuf>,
    /// Once serving, write the address (IP:PORT) to this file.
    #[arg(long, value_name = "FILE")]
    address_file: Option<PathBuf>,
    /// A host name browsers reach the console by (the `Host` they send), besides its
    /// address; repeatable. On loopback only loopback names are answered otherwise
    /// (so no web page can reach the console by rebinding its own name to
    /// 127.0.0.1); elsewhere, once one is given, only those and IP addresses.
    #[arg(long = "allowed-host", value_name = "NAME")]
    allowed_hosts: Vec<String>,
}

pub(super) async fn console(global: &Global, args: &ConsoleArgs) -> anyhow::Result<u8> {
    // Bad input first, before anything connects or listens.
    let token = args.token_file.as_deref().map(Token::read).transpose()?;
    let listener = tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("listen for the console on {}", args.listen))?;
    let store = global.connect().await?;
    let bound = listener.local_addr().context("read the console's address")?;
    let shutdown = super::daemons::termination()?;
    let options = Options { read_only: args.read_only, token, allowed_hosts: args.allowed_hosts.clone() };
    // The first view of the cluster before the address is told to anyone.
    let prepared = prepare(store, options).await?;
    if let Some(file) = &args.address_file {
        let temporary = file.with_extension("new");
        std::fs::write(&temporary, format!("{bound}\n"))
            .and_then(|()| std::fs::rename(&temporary, file))
            .with_context(|| format!("write {}", file.display()))?;
    }
    eprintln!("pacer console: serving http://{bound}/{}", if args.read_only { " (read-only)" } else { "" });
    prepared.serve(listener, shutdown).await?;
    Ok(0)
}
