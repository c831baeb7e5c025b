//! The `pacer` binary: parses arguments and hands over to `pacer::cli`.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PACER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,pacer::agent=info,pacer::daemon=info,pacer::store::lease=info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).init();
    let cli = match pacer::cli::Cli::try_parse() {
        Ok(cli) => cli,
        // A value that does not parse (a duration, say) is bad input: one line, exit 1,
        // as the commands refuse what they cannot use. Usage errors stay clap's (exit 2).
        Err(error) if matches!(error.kind(), clap::error::ErrorKind::InvalidValue | clap::error::ErrorKind::ValueValidation) => {
            let text = error.to_string();
            eprintln!("{}", text.lines().next().unwrap_or("error: invalid value"));
            return ExitCode::from(1);
        }
        Err(error) => error.exit(),
    };
    pacer::cli::run(cli).await
}
