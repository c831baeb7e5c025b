//! The `pacer` binary: parses arguments and hands over to `pacer::cli`.

use std::ffi::{c_int, c_long};
use std::process::ExitCode;

/// mimalloc rather than glibc's malloc: a fraction of its cost per allocation, which
/// the offline scheduler on a large CIB makes millions of (Cargo.toml says more).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay`: its place in `mi_option_e` (`mimalloc.h`,
/// 2.x), which the `mimalloc` crate does not expose without a dependency the project
/// does not otherwise need. A test checks the option there has the purge delay's
/// default.
const MI_OPTION_PURGE_DELAY: c_int = 15;

unsafe extern "C" {
    fn mi_option_set(option: c_int, value: c_long);
    #[cfg(test)]
    fn mi_option_get(option: c_int) -> c_long;
}

/// For a command that reads files and exits (`simulate` offline, `import-cib`):
/// memory freed stays with the process. By default mimalloc returns freed ranges to
/// the system 10 ms later (madvise), and the next phase's allocations fault them in
/// again, cleared: 10–20 ms of system time on 1,000 × 10,000 (issue 19). The exit
/// returns everything anyway. Daemons keep the default, and their memory goes back.
fn keep_freed_memory() {
    // SAFETY: sets one of the allocator's options to a value it documents (-1: never
    // purge); mimalloc reads its options at each purge, so the change is safe at any
    // time, and no other thread exists yet.
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
}

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
    if let Some(code) = pacer::cli::run_without_runtime(&cli, keep_freed_memory) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The option `MI_OPTION_PURGE_DELAY` names is mimalloc's purge delay: 10 ms by
    /// default (unless the environment sets it), and set by `keep_freed_memory`.
    #[test]
    fn the_purge_delay_option_is_where_mimalloc_keeps_it() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            // SAFETY: reads an option of the global allocator.
            assert_eq!(unsafe { mi_option_get(MI_OPTION_PURGE_DELAY) }, 10);
        }
        keep_freed_memory();
        // SAFETY: as above.
        assert_eq!(unsafe { mi_option_get(MI_OPTION_PURGE_DELAY) }, -1);
    }
}
