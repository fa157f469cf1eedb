//! `embgeom`: measure the geometry of learned embeddings.
//!
//! A thin front end: parse the command line, load the inputs (`embgeom-io`), compute
//! (`embgeom-geometry`), print a table or JSON. Errors go to stderr with exit status 2.

mod analyze;
mod inputs;
mod output;
mod progress;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Measure the geometry of learned embeddings: alignment, uniformity and class structure.
#[derive(Parser)]
#[command(name = "embgeom", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Alignment and uniformity (Wang & Isola 2020) of saved embeddings, exact at any N.
    Analyze(analyze::AnalyzeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Analyze(args) => analyze::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}
