//! The `pacer` binary: parses arguments and hands over to `pacer::cli`.

use std::process::ExitCode;

/// mimalloc rather than glibc's malloc: a fraction of its cost per allocation, which
/// the offline scheduler on a large CIB makes millions of (Cargo.toml says more).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Asked by a shell to complete (the `COMPLETE` variable is set): answer and exit,
    // before any runtime exists (completers read the cluster on one of their own).
    pacer::cli::complete_if_asked();
    let filter = tracing_subscriber::EnvFilter::try_from_env("PACER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,pacer::agent=info,pacer::daemon=info,pacer::store::lease=info,pacer::console=info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).init();
    let cli = match pacer::cli::parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    if !cli.is_daemon() {
        // A command whose reader went away (`pacer get rsc -o json | head`) ends
        // quietly, as Unix tools do, instead of panicking on the write. Daemons
        // keep ignoring SIGPIPE: a lost log reader must not kill them.
        // SAFETY: restoring a signal's default disposition before any thread
        // of ours exists.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    // Commands on files alone (an offline `simulate`) start no runtime and no threads.
    if let Some(code) = pacer::cli::run_without_runtime(&cli) {
        return code;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: start the async runtime: {error}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(pacer::cli::run(cli))
}
