//! `embgeom report`: analyse, draw the figures, write a self-contained HTML report.

use crate::inputs::{run_analysis, InputArgs, MetricArgs, RunOptions};
use crate::output::{to_json, InputSummary, OutputArgs};
use anyhow::{Context, Result};
use clap::Args;
use embgeom_geometry::Analysis;
use embgeom_report::{write_report, Report};
use std::path::{Path, PathBuf};

/// The bundled demo `embgeom report` analyses when given no input: the last checkpoint of a
/// SupCon run on Fashion-MNIST (see data/README.md).
pub const DEMO: &str = "data/fashion-supcon/ckpt_epoch_0012.safetensors";

/// Inputs and parameters of `embgeom report`.
#[derive(Args, Debug)]
pub struct ReportArgs {
    #[command(flatten)]
    pub inputs: InputArgs,

    #[command(flatten)]
    pub metrics: MetricArgs,

    #[command(flatten)]
    pub output: OutputArgs,
}

/// The demo checkpoint from the working directory, else from the source tree.
fn demo_path() -> PathBuf {
    let local = PathBuf::from(DEMO);
    if local.exists() {
        local
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(DEMO)
    }
}

fn input_rows(analysis: &Analysis, s: &InputSummary) -> Vec<(String, String)> {
    let mut rows = Vec::new();
    let mut add = |label: &str, value: Option<String>| {
        if let Some(v) = value {
            rows.push((label.to_string(), v));
        }
    };
    add("embeddings", s.embeddings.clone());
    add("views", (!s.views.is_empty()).then(|| s.views.join(", ")));
    add("labels", s.labels.clone());
    add("classifier", s.classifier.clone());
    add("split", s.split.clone());
    add("subclasses", s.subclasses.clone());
    add("rows N", Some(analysis.n.to_string()));
    add("dimension D", Some(analysis.dim.to_string()));
    add("classes C", analysis.num_classes.map(|c| c.to_string()));
    add("stored dtype", Some(s.dtype.clone()));
    add(
        "rows L2-normalised",
        Some(
            if s.normalized {
                "yes"
            } else {
                "no (--no-normalize)"
            }
            .into(),
        ),
    );
    rows
}

/// Run `embgeom report`.
pub fn run(args: &ReportArgs) -> Result<()> {
    args.metrics.apply_threads()?;
    let mut inputs = args.inputs.clone();
    let demo = inputs.embeddings.is_none() && inputs.views.is_empty();
    if demo {
        inputs.embeddings = Some(demo_path());
    }
    let (name, dir) = args.output.resolve(|| match demo {
        true => "demo".into(),
        false => inputs
            .embeddings
            .as_ref()
            .or(inputs.views.first())
            .and_then(|p| p.file_stem())
            .map_or_else(|| "report".into(), |s| s.to_string_lossy().into_owned()),
    });
    let options = RunOptions {
        figures: true,
        progress: true,
        ..RunOptions::default()
    };
    let run = run_analysis(&inputs, &args.metrics, options)?;
    let json = to_json(&run.analysis, &run.summary);
    let figures = run.figures.context("figure data was asked for")?;
    let mut notes = Vec::new();
    if !run.summary.normalized {
        notes.push("The rows were not L2-normalised (--no-normalize): alignment, uniformity, angles and the spectrum are on the rows as stored.".into());
    }
    let report = Report {
        title: format!("embgeom report: {name}"),
        analysis: &run.analysis,
        data: &figures,
        json: &json,
        inputs: input_rows(&run.analysis, &run.summary),
        notes,
        signature: serde_json::to_string(&json["inputs"]).expect("JSON serialises")
            + &format!("{:?}", args.metrics),
    };
    let written = write_report(&dir, &report, args.output.force)?;
    println!(
        "wrote {} ({} files)",
        written.index.display(),
        written.files.len()
    );
    for (figure, why) in &written.skipped {
        println!("  not drawn: {} ({why})", figure.title());
    }
    Ok(())
}
