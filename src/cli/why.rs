//! `pacer why RSC`: every node's score for a resource and what made it (`ops::why`).

use crate::ops::why::{render, why as explain_why};

use super::{Global, OutputFormat};

#[derive(clap::Args, Debug)]
pub(super) struct WhyArgs {
    /// A resource, group, clone or fence device.
    resource: String,
    /// `table` (text, default) or `json`.
    #[arg(short, long, value_enum, default_value = "table")]
    output: OutputFormat,
}

/// Prints where the resource runs and why there, or why it is stopped.
pub(super) async fn why(global: &Global, args: &WhyArgs) -> anyhow::Result<u8> {
    let store = global.connect().await?;
    let why = explain_why(&store, &args.resource).await?;
    match args.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&why)?),
        OutputFormat::Yaml => print!("{}", crate::api::yaml::to_yaml_string(&serde_json::to_value(&why)?)),
        OutputFormat::Table | OutputFormat::Wide => print!("{}", render(&why)),
    }
    Ok(0)
}
