//! `embgeom`: measure the geometry of learned embeddings.
//!
//! A thin front end: parse the command line, load the inputs (`embgeom-io`), compute
//! (`embgeom-geometry`), print a table or JSON, or write reports. Errors go to stderr with exit
//! status 2; a failed `track --fail-if` check exits with status 1.

mod analyze;
mod inputs;
mod output;
mod progress;
mod report;
mod track;

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
    /// Measure saved embeddings: alignment, uniformity, class and dimensional collapse.
    Analyze(analyze::AnalyzeArgs),
    /// Draw the diagnostic figures and write a self-contained HTML report (no input: the demo).
    Report(report::ReportArgs),
    /// Follow every metric over a series of training checkpoints (cached, with CKA and plots).
    Track(track::TrackArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Analyze(args) => analyze::run(&args).map(|()| true),
        Command::Report(args) => report::run(&args).map(|()| true),
        Command::Track(args) => track::run(&args),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}
