//! `embgeom analyze`: load, validate, compute, print a table or JSON.

use crate::inputs::{run_analysis, InputArgs, MetricArgs, RunOptions};
use crate::output::{print_table, to_json};
use anyhow::{bail, Context, Result};
use clap::Args;
use std::io::Write;
use std::path::PathBuf;

/// Inputs and parameters of `embgeom analyze`.
#[derive(Args, Debug)]
pub struct AnalyzeArgs {
    #[command(flatten)]
    pub inputs: InputArgs,

    #[command(flatten)]
    pub metrics: MetricArgs,

    /// Write the results as JSON to PATH, or to stdout with '-'.
    #[arg(long, value_name = "PATH|-")]
    pub json: Option<String>,

    /// Replace an existing --json file.
    #[arg(long)]
    pub force: bool,
}

/// Run `embgeom analyze`.
pub fn run(args: &AnalyzeArgs) -> Result<()> {
    args.metrics.apply_threads()?;
    let json_file = match args.json.as_deref() {
        Some("-") | None => None,
        Some(path) => Some(PathBuf::from(path)),
    };
    if let Some(path) = &json_file {
        if path.exists() && !args.force {
            bail!("{} exists; pass --force to replace it", path.display());
        }
    }
    let options = RunOptions {
        progress: true,
        ..RunOptions::default()
    };
    let run = run_analysis(&args.inputs, &args.metrics, options)?;
    let (analysis, summary) = (run.analysis, run.summary);
    let json = to_json(&analysis, &summary);
    match (&args.json, &json_file) {
        (Some(_), None) => println!("{}", serde_json::to_string_pretty(&json)?),
        (_, Some(path)) => {
            let mut file = std::fs::File::create(path)
                .with_context(|| format!("cannot write {}", path.display()))?;
            writeln!(file, "{}", serde_json::to_string_pretty(&json)?)?;
            print_table(&analysis, &summary);
        }
        (None, None) => print_table(&analysis, &summary),
    }
    Ok(())
}
