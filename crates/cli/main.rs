//! `embgeom`: measure the geometry of learned embeddings.
//!
//! A thin front end: parse the command line, build the libraries' option structs, call
//! `embgeom-pipeline`, `embgeom-report` and `embgeom-track`, and print. Errors go to stderr
//! with exit status 2; a failed `track --fail-if` check exits with status 1.

mod args;
mod progress;

use anyhow::{bail, Context, Result};
use args::{AnalysisFlags, InputFlags, MetricFlags, OutputFlags};
use clap::{Parser, Subcommand};
use embgeom_geometry::sharded::DEFAULT_SAMPLE_ROWS;
use embgeom_geometry::{
    AnalysisOptions, ObjectiveParameters, SampleOptions, DEFAULT_MUTUAL_K, DEFAULT_NEIGHBOUR_ROWS,
    DEFAULT_PER_POINT_ROWS, DEFAULT_RBF_ROWS,
};
use embgeom_io::{would_replace, write_output};
use embgeom_pipeline::{
    analysis_document, machine_rates, modalities_document, modalities_table, run_analysis,
    run_modalities, text_table, timings_document, timings_table, write_per_point, CrossOptions,
    Extras, MemoryWatch, ModalityJobs, ModalitySpec, PairFile, Run, ShardJob, ShardedDataset,
};
use embgeom_report::{
    compare, report, report_modalities, CompareInput, CompareOptions, ReportOptions,
};
use embgeom_track::{run_names, Check, RoundOutcome, TrackOptions, Watch};
use progress::TerminalProgress;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

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
    Analyze(AnalyzeArgs),
    /// Draw the diagnostic figures and write a self-contained HTML report (no input: the demo).
    Report(ReportArgs),
    /// Follow every metric over a series of training checkpoints (cached, with CKA and plots).
    Track(TrackArgs),
    /// Compare embedding sets side by side: metrics, differences, figures, CKA (no input: the
    /// bundled SupCon and SimCLR runs).
    Compare(CompareArgs),
}

/// Inputs and parameters of `embgeom compare`.
#[derive(clap::Args, Debug)]
struct CompareArgs {
    /// Embedding files or checkpoints to compare (two or more; none: the demo).
    inputs: Vec<PathBuf>,
    /// Name of each input, in order [default: the file stems, made unique].
    #[arg(long = "name", value_name = "NAME")]
    names: Vec<String>,
    /// Labels of each input, in order (one per input), when they are not stored with it;
    /// --labels gives one file for all.
    #[arg(long = "labels-of", value_name = "FILE")]
    labels_of: Vec<PathBuf>,
    #[command(flatten)]
    inputs_flags: InputFlags,
    #[command(flatten)]
    metrics: MetricFlags,
    /// Output folder [default: reports/compare-NAME1-vs-NAME2...].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Replace an output folder that holds something else, and an existing --json file.
    #[arg(long)]
    force: bool,
    /// Also write the comparison document (embgeom.compare/1) to PATH, or to stdout with '-'.
    #[arg(long, value_name = "PATH|-")]
    json: Option<String>,
    /// Keys of two modalities every input holds ('image text', a two-tower run's 'top
    /// bottom'): the first's metrics and figures, the second's metrics, and the two measured
    /// together (gap, cones, retrieval both ways, objectives), input by input.
    #[arg(long, num_args = 2, value_names = ["KEY", "KEY"])]
    modalities: Vec<String>,
    #[command(flatten)]
    similarity: SimilarityFlags,
    /// Time the similarity family's stages (each input's moments and samples, each pair's
    /// cross moments) against their bounds on this machine: `similarity.timings` in the
    /// document.
    #[arg(long)]
    timings: bool,
    /// Compute only the similarity family between every pair of inputs (no analysis of each
    /// input: no metric table, overlaid figures or per-class changes); the inputs must hold the
    /// same items in the same order. For many layers or checkpoints at a fraction of the time.
    #[arg(long)]
    similarity_only: bool,
}

/// How the sampled similarity measures of inputs that hold the same items sample.
#[derive(clap::Args, Debug)]
struct SimilarityFlags {
    /// Rows of the seeded sample RBF CKA uses (its M x M kernel is kept per input; 0 leaves
    /// RBF CKA out).
    #[arg(long, default_value_t = DEFAULT_RBF_ROWS, value_name = "N")]
    rbf_rows: usize,
    /// Rows of the seeded sample mutual kNN and CKNNA use: each row's neighbours among them
    /// (0 leaves both out).
    #[arg(long, default_value_t = DEFAULT_NEIGHBOUR_ROWS, value_name = "N")]
    neighbour_rows: usize,
    /// Neighbours k of mutual kNN and CKNNA (platonic-rep's topk).
    #[arg(long, default_value_t = DEFAULT_MUTUAL_K, value_name = "K")]
    mutual_k: usize,
    /// Huh et al.'s preprocessing before mutual kNN and CKNNA: clamp every entry at the mean
    /// per-row 0.95 quantile of |x|, then L2-normalise.
    #[arg(long)]
    platonic: bool,
}

impl SimilarityFlags {
    /// The sampling options, seeded like the analysis's kNN queries.
    fn options(&self, seed: u64) -> SampleOptions {
        SampleOptions {
            rbf_rows: self.rbf_rows,
            neighbour_rows: self.neighbour_rows,
            k: self.mutual_k,
            platonic: self.platonic,
            seed,
            ..SampleOptions::default()
        }
    }
}

/// Inputs and parameters of `embgeom analyze`.
#[derive(clap::Args, Debug)]
struct AnalyzeArgs {
    #[command(flatten)]
    analysis: AnalysisFlags,
    /// Write the results as JSON to PATH, or to stdout with '-'.
    #[arg(long, value_name = "PATH|-")]
    json: Option<String>,
    /// Replace an existing --json file.
    #[arg(long)]
    force: bool,
    /// Report the wall time of every stage (loading, normalising, each metric) against its
    /// bound on this machine (flops over the measured GEMM rate, or bytes over the memory
    /// bandwidth); in the JSON under "timings".
    #[arg(long)]
    timings: bool,
    /// Sharded datasets (EMBEDDINGS is a directory of numbered shards): rows of the seeded
    /// sample whose pairs give the uniformity above --max-exact rows.
    #[arg(long, default_value_t = DEFAULT_SAMPLE_ROWS, value_name = "N")]
    sample_rows: usize,
    /// Sharded datasets: run the shard tasks on a Ray cluster at ADDRESS ('auto': the
    /// running cluster; 'local': a new one on this machine) through the Python package
    /// (the interpreter in $EMBGEOM_PYTHON, else python3, with embgeom and ray installed).
    #[arg(long, value_name = "ADDRESS")]
    ray: Option<String>,
    #[command(flatten)]
    modalities: ModalityFlags,
    /// Write per-point diagnostics of the rows (class-mean distance, k-occurrence, nearest
    /// same- and other-class cosine, kNN vote, local intrinsic dimension, a 2-D projection and
    /// the exact neighbours) to FILE as Parquet, in the form Apple's embedding-atlas opens:
    /// `embedding-atlas FILE --x projection_x --y projection_y --neighbors neighbors`.
    #[arg(long, value_name = "FILE")]
    per_point: Option<PathBuf>,
    /// Rows the per-point table describes: a seeded sample (every row at or below N); each
    /// row's neighbours are searched among them.
    #[arg(long, default_value_t = DEFAULT_PER_POINT_ROWS, value_name = "N")]
    per_point_rows: usize,
}

/// Paired modalities (image and text embeddings of the same items).
#[derive(clap::Args, Debug)]
struct ModalityFlags {
    /// Two or more modalities of the same items, one file each, or FILE:KEY for a key of a
    /// file holding several (row i of each the same item, or paired by --pair-map): each
    /// analysed, then their gap, retrieval both ways, the contrastive objectives and the shift
    /// experiment.
    #[arg(long, num_args = 2.., value_name = "FILE", conflicts_with_all = ["embeddings", "views"])]
    modalities: Vec<PathBuf>,
    /// Names of the modalities, in order [default: the file stems].
    #[arg(long, num_args = 1.., value_name = "NAME")]
    modality_names: Vec<String>,
    /// For each row of the second modality, its row of the first (integers; several rows may
    /// share one, e.g. five captions per image).
    #[arg(long, value_name = "FILE")]
    pair_map: Option<PathBuf>,
    /// InfoNCE's temperature over all pairs (CLIP's 1 / logit_scale).
    #[arg(long, default_value_t = 0.01, value_name = "TAU")]
    temperature: f64,
    /// SigLIP's logit scale t.
    #[arg(long, default_value_t = 10.0, value_name = "T")]
    siglip_scale: f64,
    /// SigLIP's logit bias b.
    #[arg(long, default_value_t = -10.0, value_name = "B", allow_negative_numbers = true)]
    siglip_bias: f64,
    /// Retrieval's queries: a seeded subset of at most N rows of each modality, ranked exactly
    /// against every row of the other (the objectives, which need every row, left out)
    /// [default: every row].
    #[arg(long, value_name = "N")]
    retrieval_queries: Option<usize>,
    /// The shift experiment's fractions of the gap closed, comma separated (none: '').
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0.25,0.5,0.75,1",
        value_name = "FRACTIONS"
    )]
    shifts: Vec<String>,
}

/// A `--modalities` entry: `FILE`, or `FILE:KEY` (a key of a file that holds several
/// modalities, as a two-tower checkpoint does) when no file has the whole name.
fn modality_source(entry: &Path) -> (PathBuf, Option<String>) {
    let text = entry.to_string_lossy();
    match text.rsplit_once(':') {
        Some((file, key)) if !entry.exists() && Path::new(file).is_file() && !key.is_empty() => {
            (PathBuf::from(file), Some(key.to_string()))
        }
        _ => (entry.to_path_buf(), None),
    }
}

impl ModalityFlags {
    /// The modalities' specs (the analysis flags' inputs with each file, and key, as the
    /// embeddings) and names.
    fn specs(&self, inputs: &InputFlags) -> Result<Vec<ModalitySpec>> {
        let sources: Vec<(PathBuf, Option<String>)> =
            self.modalities.iter().map(|m| modality_source(m)).collect();
        let names: Vec<String> = match self.modality_names.is_empty() {
            false if self.modality_names.len() != self.modalities.len() => bail!(
                "--modality-names gives {} names for {} modalities",
                self.modality_names.len(),
                self.modalities.len()
            ),
            false => self.modality_names.clone(),
            true => sources
                .iter()
                .map(|(path, key)| match key {
                    Some(key) => key.clone(),
                    None => path.file_stem().map_or_else(
                        || path.display().to_string(),
                        |s| s.to_string_lossy().into_owned(),
                    ),
                })
                .collect(),
        };
        let mut seen = std::collections::HashSet::new();
        if let Some(twice) = names.iter().find(|n| !seen.insert(n.as_str())) {
            bail!("two modalities are named {twice:?}; give --modality-names");
        }
        Ok(sources
            .into_iter()
            .zip(names)
            .map(|((path, key), name)| {
                let mut spec = inputs.spec(Some(path));
                if key.is_some() {
                    spec.key = key;
                }
                ModalitySpec { name, spec }
            })
            .collect())
    }

    /// The cross-modal options.
    fn cross(&self) -> Result<CrossOptions> {
        let shifts = self
            .shifts
            .iter()
            .filter(|s| !s.trim().is_empty())
            .map(|s| {
                s.trim()
                    .parse::<f64>()
                    .with_context(|| format!("--shifts: {s:?} is not a number"))
            })
            .collect::<Result<Vec<f64>>>()?;
        Ok(CrossOptions {
            pairs: self.pair_map.clone().map(PairFile::Path),
            parameters: ObjectiveParameters {
                temperature: self.temperature,
                scale: self.siglip_scale,
                bias: self.siglip_bias,
            },
            shifts,
            figures: false,
            sample_rows: DEFAULT_SAMPLE_ROWS,
            queries: self.retrieval_queries,
        })
    }
}

/// Inputs and parameters of `embgeom report`.
#[derive(clap::Args, Debug)]
struct ReportArgs {
    #[command(flatten)]
    analysis: AnalysisFlags,
    #[command(flatten)]
    output: OutputFlags,
    #[command(flatten)]
    modalities: ModalityFlags,
}

/// Inputs and parameters of `embgeom track`.
#[derive(clap::Args, Debug)]
struct TrackArgs {
    /// Run directories of checkpoints (each with an optional manifest.json or manifest.csv
    /// listing step and path), or quoted globs of checkpoint files; several runs share the
    /// plots (one colour each) and metrics.csv gets a run column.
    #[arg(required = true, value_name = "RUN")]
    runs: Vec<String>,
    #[command(flatten)]
    inputs: InputFlags,
    #[command(flatten)]
    metrics: MetricFlags,
    #[command(flatten)]
    output: OutputFlags,
    /// Checkpoints analysed at once, each held in memory [default: the core count, at most 4].
    #[arg(long, value_name = "N")]
    jobs: Option<usize>,
    /// A check for CI, on the last checkpoint ('rankme < 10'), the trend from the first to the
    /// last ('nc1 increased'), or between runs ('nc1 of supcon > nc1 of simclr'; 'METRIC of
    /// RUN' names one run, a metric without a run applies to every run); repeatable; exit
    /// status 1 when one fails (its condition holds).
    #[arg(long = "fail-if", value_name = "CHECK")]
    fail_if: Vec<String>,
    /// Keep polling the run for new checkpoints and update the outputs.
    #[arg(long)]
    watch: bool,
    /// Seconds between polls with --watch.
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    interval: u64,
    /// With --watch, stop after this many polls (for scripts and tests).
    #[arg(long, value_name = "N")]
    watch_rounds: Option<usize>,
    /// Keys of two modalities every checkpoint holds ('top bottom', 'image text'): each one's
    /// metrics (as KEY.METRIC), and the two together: the gap, the cones, exact retrieval both
    /// ways and the objectives over all pairs (at analyze's default temperature, scale and bias).
    #[arg(long, num_args = 2, value_names = ["KEY", "KEY"])]
    modalities: Vec<String>,
}

/// The bundled demo `embgeom report` analyses when given no input: the last checkpoint of a
/// SupCon run on Fashion-MNIST (see data/README.md).
const DEMO: &str = "data/fashion-supcon/ckpt_epoch_0012.safetensors";

/// The demo checkpoint from the working directory, else from the source tree.
fn demo_path() -> PathBuf {
    let local = PathBuf::from(DEMO);
    match local.exists() {
        true => local,
        false => Path::new(env!("CARGO_MANIFEST_DIR")).join(DEMO),
    }
}

fn analyze_command(args: &AnalyzeArgs) -> Result<()> {
    let flags = &args.analysis;
    let options = flags.metrics.options()?;
    let json_file = match args.json.as_deref() {
        Some("-") | None => None,
        Some(path) => Some(PathBuf::from(path)),
    };
    if let Some(path) = &json_file {
        if would_replace(path) && !args.force {
            bail!("{} exists; pass --force to replace it", path.display());
        }
    }
    if let Some(path) = &args.per_point {
        if would_replace(path) && !args.force {
            bail!("{} exists; pass --force to replace it", path.display());
        }
    }
    if !args.modalities.modalities.is_empty() {
        if args.per_point.is_some() {
            bail!("--per-point describes one set of rows: analyse each modality's file on its own");
        }
        return modalities_command(args, &options, json_file.as_deref());
    }
    let spec = flags.inputs.spec(flags.embeddings.clone());
    let sharded = flags
        .embeddings
        .as_deref()
        .filter(|p| ShardedDataset::is_sharded(p));
    if sharded.is_some() && args.per_point.is_some() {
        bail!("--per-point needs the rows in one file, not a directory of shards");
    }
    let (mut document, mut table) = match (sharded, &args.ray) {
        (None, Some(_)) => bail!("--ray analyses a directory of shards; give one as EMBEDDINGS"),
        (None, None) => {
            let watch = args.timings.then(MemoryWatch::start);
            let extras = Extras {
                per_point_rows: args.per_point.as_ref().map(|_| args.per_point_rows),
                ..Extras::default()
            };
            let run = run_analysis(&spec, &options, extras, &TerminalProgress::stderr())?;
            if let (Some(path), Some(table)) = (&args.per_point, &run.per_point) {
                let names: Vec<String> = run
                    .analysis
                    .per_class
                    .iter()
                    .map(|c| c.name.clone())
                    .collect();
                write_per_point(path, table, &names)?;
                eprintln!(
                    "wrote {} ({} rows): embedding-atlas {} --x projection_x --y projection_y --neighbors neighbors",
                    path.display(),
                    table.rows.len(),
                    path.display()
                );
            }
            let (mut document, mut table) = rendered(&run);
            if let Some(watch) = watch {
                let input_bytes = spec
                    .embeddings
                    .iter()
                    .chain(&spec.views)
                    .filter_map(|p| std::fs::metadata(p).ok())
                    .map(|m| m.len())
                    .sum();
                let memory = watch.finish(input_bytes);
                let rates = machine_rates();
                document["timings"] = timings_document(&run.timings, &rates, memory.as_ref());
                table.push_str(&timings_table(&run.timings, &rates, memory.as_ref()));
            }
            (document, table)
        }
        (Some(dir), ray) => {
            let dataset = ShardedDataset::discover(dir, &spec)?;
            let job = ShardJob::new(dataset, &options, args.sample_rows)?;
            match ray {
                None => rendered(&job.run(&TerminalProgress::stderr())?),
                Some(address) => run_on_ray(&job.to_json(), address)?,
            }
        }
    };
    if args.timings && sharded.is_some() {
        table.push_str("\nstage timings are not measured for sharded datasets\n");
        document["timings"] = serde_json::Value::Null;
    }
    let json = serde_json::to_string_pretty(&document)?;
    match (&args.json, &json_file) {
        (Some(_), None) => emit(&format!("{json}\n")),
        (_, Some(path)) => {
            write_output(path, format!("{json}\n").as_bytes())?;
            emit(&table)
        }
        (None, None) => emit(&table),
    }
}

/// `analyze --modalities`: each modality's analysis and the cross-modal measurements.
fn modalities_command(
    args: &AnalyzeArgs,
    options: &AnalysisOptions,
    json_file: Option<&Path>,
) -> Result<()> {
    let specs = args.modalities.specs(&args.analysis.inputs)?;
    let cross = CrossOptions {
        sample_rows: args.sample_rows,
        ..args.modalities.cross()?
    };
    let (mut document, mut table, run) = match &args.ray {
        Some(address) => {
            let Some(jobs) = ModalityJobs::of(&specs, options, &cross)? else {
                bail!("--ray measures modalities held as directories of shards (--modalities DIR_A DIR_B)");
            };
            let (document, table) = run_on_ray(&jobs.to_json(), address)?;
            (document, table, None)
        }
        None => {
            let run = run_modalities(&specs, options, &cross, &TerminalProgress::stderr())?;
            (modalities_document(&run), modalities_table(&run), Some(run))
        }
    };
    if let (true, Some(run)) = (args.timings, &run) {
        let rates = machine_rates();
        document["timings"] = timings_document(&run.timings, &rates, None);
        table.push_str(&timings_table(&run.timings, &rates, None));
    }
    let json = serde_json::to_string_pretty(&document)?;
    match (&args.json, json_file) {
        (Some(_), None) => emit(&format!("{json}\n")),
        (_, Some(path)) => {
            write_output(path, format!("{json}\n").as_bytes())?;
            emit(&table)
        }
        (None, None) => emit(&table),
    }
}

/// The analysis document and text table of a run.
fn rendered(run: &Run) -> (serde_json::Value, String) {
    (
        analysis_document(&run.analysis, &run.summary),
        text_table(&run.analysis, &run.summary),
    )
}

/// Run a sharded job's tasks on Ray through `python -m embgeom.ray`: the job goes to its
/// standard input and the analysis document and table come back as the last line of its
/// standard output (JSON), with no file between; its standard error is the user's.
fn run_on_ray(job: &str, address: &str) -> Result<(serde_json::Value, String)> {
    use std::io::Write;
    use std::process::Stdio;
    let python = std::env::var("EMBGEOM_PYTHON").unwrap_or_else(|_| "python3".into());
    let mut child = std::process::Command::new(&python)
        .args([
            "-m",
            "embgeom.ray",
            "--address",
            address,
            "--job",
            "-",
            "--out",
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| {
            format!("cannot run {python} (set EMBGEOM_PYTHON to a Python with embgeom and ray)")
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A child that exits early closes the pipe: its own error says why.
        let _ = stdin.write_all(job.as_bytes());
    }
    let output = child.wait_with_output()?;
    if !output.status.success() {
        bail!("the Ray run failed ({}); its error is above", output.status);
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    let output: serde_json::Value = serde_json::from_str(last)
        .with_context(|| format!("{python} -m embgeom.ray did not end with its result"))?;
    let table = output["table"].as_str().unwrap_or_default().to_string();
    Ok((output["document"].clone(), table))
}

/// The bundled runs `embgeom compare` compares when given no input.
const COMPARE_DEMO: [(&str, &str); 2] = [
    ("supcon", "data/fashion-supcon/ckpt_epoch_0012.safetensors"),
    ("simclr", "data/fashion-simclr/ckpt_epoch_0012.safetensors"),
];

/// A bundled file from the working directory, else from the source tree.
fn bundled(path: &str) -> PathBuf {
    let local = PathBuf::from(path);
    match local.exists() {
        true => local,
        false => Path::new(env!("CARGO_MANIFEST_DIR")).join(path),
    }
}

fn compare_command(args: &CompareArgs) -> Result<()> {
    let options = args.metrics.options()?;
    let demo = args.inputs.is_empty();
    let (paths, default_names): (Vec<PathBuf>, Vec<String>) = match demo {
        true => COMPARE_DEMO
            .iter()
            .map(|(name, path)| (bundled(path), name.to_string()))
            .unzip(),
        false => {
            let stems: Vec<String> = args
                .inputs
                .iter()
                .map(|p| {
                    p.file_stem()
                        .map_or_else(|| "input".into(), |s| s.to_string_lossy().into_owned())
                })
                .collect();
            let unique = stems
                .iter()
                .enumerate()
                .map(|(i, s)| match stems.iter().filter(|t| *t == s).count() {
                    1 => s.clone(),
                    _ => format!("{s}-{}", i + 1),
                })
                .collect();
            (args.inputs.clone(), unique)
        }
    };
    if paths.len() == 1 {
        bail!("compare needs two or more inputs");
    }
    if !args.names.is_empty() && args.names.len() != paths.len() {
        bail!(
            "{} --name for {} inputs: give one per input, or none",
            args.names.len(),
            paths.len()
        );
    }
    if !args.labels_of.is_empty() && args.labels_of.len() != paths.len() {
        bail!(
            "{} --labels-of for {} inputs: give one per input, or none",
            args.labels_of.len(),
            paths.len()
        );
    }
    let names = match args.names.is_empty() {
        true => default_names,
        false => args.names.clone(),
    };
    let inputs: Vec<CompareInput> = paths
        .iter()
        .zip(&names)
        .enumerate()
        .map(|(i, (path, name))| {
            let mut spec = args.inputs_flags.spec(Some(path.clone()));
            if let Some(labels) = args.labels_of.get(i) {
                spec.labels = Some(labels.clone());
            }
            CompareInput {
                name: name.clone(),
                spec,
            }
        })
        .collect();
    let dir = match (&args.out, demo) {
        (Some(dir), _) => dir.clone(),
        (None, true) => PathBuf::from("reports/compare-demo"),
        (None, false) => PathBuf::from(format!("reports/compare-{}", names.join("-vs-"))),
    };
    let output = CompareOptions {
        title: format!("embgeom compare: {}", names.join(" vs ")),
        dir,
        force: args.force,
        modalities: args.modalities.clone(),
        similarity: args.similarity.options(options.knn.seed),
        timings: args.timings,
        similarity_only: args.similarity_only,
    };
    if let Some(path) = args.json.as_deref().filter(|p| *p != "-") {
        if would_replace(Path::new(path)) && !args.force {
            bail!("{path} exists; pass --force to replace it");
        }
    }
    let compared = compare(&inputs, &options, &output, &TerminalProgress::stderr())?;
    let json = serde_json::to_string_pretty(&compared.document)?;
    match args.json.as_deref() {
        Some("-") => emit(&format!("{json}\n"))?,
        Some(path) => {
            write_output(Path::new(path), format!("{json}\n").as_bytes())?;
            emit(&compared.table)?;
        }
        None => emit(&compared.table)?,
    }
    eprintln!("wrote {}", compared.written.index.display());
    Ok(())
}

fn report_command(args: &ReportArgs) -> Result<()> {
    let flags = &args.analysis;
    let options = flags.metrics.options()?;
    if !args.modalities.modalities.is_empty() {
        return modalities_report_command(args, &options);
    }
    let demo = flags.embeddings.is_none() && flags.inputs.views.is_empty();
    let embeddings = match demo {
        true => Some(demo_path()),
        false => flags.embeddings.clone(),
    };
    let default_name = match demo {
        true => "demo".into(),
        false => embeddings
            .as_ref()
            .or(flags.inputs.views.first())
            .and_then(|p| p.file_stem())
            .map_or_else(|| "report".into(), |s| s.to_string_lossy().into_owned()),
    };
    let (name, dir) = args.output.resolve(default_name);
    let output = ReportOptions {
        dir,
        name,
        force: args.output.force,
    };
    let spec = flags.inputs.spec(embeddings);
    let written = report(&spec, &options, &output, &TerminalProgress::stderr())?;
    let mut text = format!(
        "wrote {} ({} files)\n",
        written.index.display(),
        written.files.len()
    );
    for (figure, why) in &written.skipped {
        text += &format!("  not drawn: {} ({why})\n", figure.title());
    }
    emit(&text)
}

/// `report --modalities`: the page of the modalities measured together, and each one's own.
fn modalities_report_command(args: &ReportArgs, options: &AnalysisOptions) -> Result<()> {
    let flags = &args.analysis;
    let specs = args.modalities.specs(&flags.inputs)?;
    let cross = args.modalities.cross()?;
    let default_name = specs
        .iter()
        .map(|m| m.name.as_str())
        .collect::<Vec<_>>()
        .join("-");
    let (name, dir) = args.output.resolve(default_name);
    let output = ReportOptions {
        dir,
        name,
        force: args.output.force,
    };
    let written = report_modalities(
        &specs,
        options,
        &cross,
        &output,
        &TerminalProgress::stderr(),
    )?;
    emit(&format!(
        "wrote {} ({} files)\n",
        written.index.display(),
        written.files.len()
    ))
}

/// Write to stdout; a closed stdout (`embgeom ... | head -1`) ends the program quietly with
/// status 0, as Unix tools do, and any other write error names stdout.
fn emit(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        other => other.context("cannot write to stdout"),
    }
}

fn print_round(outcome: &RoundOutcome, watching: bool) -> Result<()> {
    for (path, why) in &outcome.failed {
        match watching {
            true => eprintln!(
                "note: skipped {} ({why}); retried on the next poll",
                path.display()
            ),
            false => eprintln!("failed: {why}"),
        }
    }
    let mut text = String::new();
    for check in &outcome.checks {
        let word = if check.passed { "ok" } else { "fail" };
        text += &format!("{word}: {} ({})\n", check.check, check.detail);
    }
    text += &format!(
        "tracked {} checkpoints ({} analysed, {} from the cache) -> {}\n",
        outcome.checkpoints,
        outcome.analysed,
        outcome.cached,
        outcome.index.display()
    );
    emit(&text)
}

/// `Ok(false)` when a `--fail-if` check failed.
fn track_command(args: &TrackArgs) -> Result<bool> {
    let analysis = args.metrics.options()?;
    let checks = args
        .fail_if
        .iter()
        .map(|text| text.parse::<Check>())
        .collect::<Result<Vec<_>, _>>()?;
    let (name, out) = args.output.resolve(run_names(&args.runs).join("-vs-"));
    let options = TrackOptions {
        runs: args.runs.clone(),
        inputs: args.inputs.spec(None),
        analysis,
        out,
        name,
        jobs: args.jobs,
        checks,
        force: args.output.force,
        modalities: args.modalities.clone(),
        objectives: Default::default(),
    };
    let progress = TerminalProgress::stderr();
    let outcome = match args.watch {
        false => {
            let outcome = embgeom_track::track(&options, &progress)?;
            print_round(&outcome, false)?;
            if !outcome.complete() {
                bail!(
                    "{} of {} checkpoints could not be analysed (listed above); the outputs cover the others",
                    outcome.failed.len(),
                    outcome.failed.len() + outcome.checkpoints
                );
            }
            outcome
        }
        true => {
            let watch = Watch {
                interval: Duration::from_secs(args.interval),
                rounds: args.watch_rounds,
            };
            embgeom_track::watch(&options, watch, &progress, |outcome| {
                if let Err(error) = print_round(outcome, true) {
                    eprintln!("error: {error:#}");
                }
            })?
        }
    };
    Ok(outcome.passed())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Track(args) = &cli.command {
        if args.watch {
            // A trainer may rewrite a checkpoint while a watch reads it, and a file truncated
            // under its mapping ends the process: a watch reads files instead of mapping
            // them (set before any other thread exists).
            std::env::set_var("EMBGEOM_MMAP", "off");
        }
    }
    let result = match cli.command {
        Command::Analyze(args) => analyze_command(&args).map(|()| true),
        Command::Report(args) => report_command(&args).map(|()| true),
        Command::Track(args) => track_command(&args),
        Command::Compare(args) => compare_command(&args).map(|()| true),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("error: {}", message_of(&error));
            ExitCode::from(2)
        }
    }
}

/// The error and its causes, each cause once: a cause that its parent's message already
/// quotes (`cannot read: No such file`) is not repeated.
fn message_of(error: &anyhow::Error) -> String {
    let mut message = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !message.contains(&cause) {
            message = format!("{message}: {cause}");
        }
    }
    message
}
