//! `embgeom track`: every metric of `analyze` over a series of training checkpoints, cached
//! per checkpoint, with CKA between checkpoints, time-series tables, trajectory plots and
//! CI checks.

use crate::inputs::{run_analysis, InputArgs, InputOptions, MetricArgs, RunOptions};
use crate::output::{to_json, OutputArgs};
use anyhow::{bail, Context, Result};
use clap::Args;
use embgeom_geometry::linear_cka;
use embgeom_io::{load, write_table, Column, LabelValues, Matrix};
use embgeom_report::{check_folder, write_trajectory, Cosines, Trajectory};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ndarray::Array2;
use serde_json::{json, Value};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Inputs and parameters of `embgeom track`.
#[derive(Args, Debug)]
pub struct TrackArgs {
    /// A run directory of checkpoints (with an optional manifest.json or manifest.csv listing
    /// step and path), or a quoted glob of checkpoint files.
    pub run: String,

    #[command(flatten)]
    pub options: InputOptions,

    #[command(flatten)]
    pub metrics: MetricArgs,

    #[command(flatten)]
    pub output: OutputArgs,

    /// Checkpoints analysed at once, each held in memory [default: the core count, at most 4].
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,

    /// A check for CI, on the last checkpoint ('rankme < 10') or the trend from the first to the
    /// last ('nc1 increased'); repeatable; exit status 1 when one fails.
    #[arg(long = "fail-if", value_name = "CHECK")]
    pub fail_if: Vec<String>,

    /// Keep polling the run for new checkpoints and update the outputs.
    #[arg(long)]
    pub watch: bool,

    /// Seconds between polls with --watch.
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    pub interval: u64,

    /// With --watch, stop after this many polls (for scripts and tests).
    #[arg(long, value_name = "N")]
    pub watch_rounds: Option<usize>,
}

/// One checkpoint file and its training step.
#[derive(Debug, Clone, PartialEq)]
struct Checkpoint {
    step: f64,
    path: PathBuf,
}

const EXTENSIONS: [&str; 5] = ["npy", "npz", "safetensors", "parquet", "csv"];

/// The number in a file name that orders checkpoints: the last run of digits in the stem
/// (`epoch_10.npz` -> 10, `ckpt-000120.safetensors` -> 120).
fn step_from_name(path: &Path) -> Option<f64> {
    let stem = path.file_stem()?.to_string_lossy();
    let digits: String = stem
        .chars()
        .rev()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(char::is_ascii_digit)
        .collect();
    digits.chars().rev().collect::<String>().parse().ok()
}

/// Entry `i` of a manifest: a checkpoint when it has a step and a path (relative to the
/// manifest's folder).
fn entry(manifest: &Path, i: usize, step: Option<f64>, path: Option<&str>) -> Result<Checkpoint> {
    match (step, path) {
        (Some(step), Some(path)) => Ok(Checkpoint {
            step,
            path: manifest.parent().unwrap_or(Path::new(".")).join(path),
        }),
        _ => bail!(
            "{}: entry {i} needs a numeric step and a path",
            manifest.display()
        ),
    }
}

/// Checkpoints listed by `manifest.json` (a list, or `{"checkpoints": [...]}`, of objects with
/// `step` and `path`) or `manifest.csv` (columns `step` and `path`), paths relative to `dir`.
fn manifest(dir: &Path) -> Result<Option<Vec<Checkpoint>>> {
    let json_path = dir.join("manifest.json");
    if json_path.exists() {
        let text = std::fs::read_to_string(&json_path)?;
        let doc: Value = serde_json::from_str(&text)
            .with_context(|| format!("{}: not valid JSON", json_path.display()))?;
        let list = doc.get("checkpoints").unwrap_or(&doc);
        let items = list.as_array().with_context(|| {
            format!(
                "{}: expected a list of {{step, path}} (or {{\"checkpoints\": [...]}})",
                json_path.display()
            )
        })?;
        let parsed = items
            .iter()
            .enumerate()
            .map(|(i, item)| entry(&json_path, i, item["step"].as_f64(), item["path"].as_str()))
            .collect::<Result<Vec<_>>>()?;
        return Ok(Some(parsed));
    }
    let csv_path = dir.join("manifest.csv");
    if csv_path.exists() {
        let text = std::fs::read_to_string(&csv_path)?;
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        let header: Vec<&str> = lines
            .next()
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .collect();
        let column = |name: &str| header.iter().position(|h| *h == name);
        let (Some(step_at), Some(path_at)) = (column("step"), column("path")) else {
            bail!(
                "{}: needs columns step and path, has {header:?}",
                csv_path.display()
            );
        };
        let parsed = lines
            .enumerate()
            .map(|(i, line)| {
                let cells: Vec<&str> = line.split(',').map(str::trim).collect();
                let step = cells.get(step_at).and_then(|s| s.parse().ok());
                entry(&csv_path, i, step, cells.get(path_at).copied())
            })
            .collect::<Result<Vec<_>>>()?;
        return Ok(Some(parsed));
    }
    Ok(None)
}

/// The checkpoints of a run directory or glob, in increasing step order.
fn discover(run: &str) -> Result<Vec<Checkpoint>> {
    let dir = Path::new(run);
    let listed = if dir.is_dir() { manifest(dir)? } else { None };
    let from_manifest = listed.is_some();
    let mut checkpoints = match listed {
        Some(listed) => listed,
        None => {
            let mut files: Vec<PathBuf> = if dir.is_dir() {
                std::fs::read_dir(dir)
                    .with_context(|| format!("cannot list {run}"))?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| {
                        p.extension()
                            .and_then(|e| e.to_str())
                            .is_some_and(|e| EXTENSIONS.contains(&e))
                    })
                    .collect()
            } else {
                glob::glob(run)
                    .with_context(|| format!("{run}: not a directory and not a valid glob"))?
                    .filter_map(|p| p.ok())
                    .collect()
            };
            files.retain(|p| p.is_file());
            files.sort();
            files
                .into_iter()
                .map(|path| Checkpoint {
                    step: f64::NAN,
                    path,
                })
                .collect()
        }
    };
    if !from_manifest {
        for c in &mut checkpoints {
            c.step = step_from_name(&c.path).with_context(|| {
                format!(
                    "{}: no step number in the file name and no manifest.json/manifest.csv",
                    c.path.display()
                )
            })?;
        }
    }
    if checkpoints.is_empty() {
        bail!("{run}: no checkpoint files ({})", EXTENSIONS.join(", "));
    }
    checkpoints.sort_by(|a, b| a.step.total_cmp(&b.step));
    if let Some(pair) = checkpoints.windows(2).find(|w| w[0].step == w[1].step) {
        bail!(
            "{} and {} have the same step {}",
            pair[0].path.display(),
            pair[1].path.display(),
            pair[0].step
        );
    }
    Ok(checkpoints)
}

/// 64-bit FNV-1a.
fn fnv1a(bytes: &[u8], mut hash: u64) -> u64 {
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01B3);
    }
    hash
}

const FNV_OFFSET: u64 = 0xCBF2_9CE4_8422_2325;

/// FNV-1a of a file's content.
fn file_hash(path: &Path) -> Result<u64> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let mut buffer = vec![0u8; 1 << 20];
    let mut hash = FNV_OFFSET;
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            return Ok(hash);
        }
        hash = fnv1a(&buffer[..n], hash);
    }
}

/// What is cached per checkpoint: the analysis JSON, class-mean cosines and a hash of the
/// labels (to check that every checkpoint has the same rows in the same order).
fn analyse_checkpoint(path: &Path, args: &TrackArgs) -> Result<Value> {
    let input = InputArgs {
        embeddings: Some(path.to_path_buf()),
        options: args.options.clone(),
    };
    let options = RunOptions {
        mean_cosines: true,
        ..RunOptions::default()
    };
    let run = run_analysis(&input, &args.metrics, options)?;
    let labels_hash = run.labels.as_ref().map(|l| match &l.values {
        LabelValues::Int(v) => fnv1a(format!("{v:?}").as_bytes(), FNV_OFFSET),
        LabelValues::Text(v) => fnv1a(format!("{v:?}").as_bytes(), FNV_OFFSET),
    });
    let names: Vec<String> = run
        .analysis
        .per_class
        .iter()
        .map(|p| p.name.clone())
        .collect();
    Ok(json!({
        "analysis": to_json(&run.analysis, &run.summary),
        "mean_cosines": run.mean_cosines.map(|m| m.rows().into_iter().map(|r| r.to_vec()).collect::<Vec<_>>()),
        "class_names": names,
        "labels_hash": labels_hash.map(|h| format!("{h:016x}")),
    }))
}

/// The cached entry of a checkpoint, computing (and caching) it when absent.
struct Cache {
    dir: PathBuf,
    signature: u64,
}

impl Cache {
    fn entry_path(&self, content: u64) -> PathBuf {
        self.dir
            .join(format!("{:016x}.json", content ^ self.signature))
    }

    fn read(&self, path: &Path) -> Option<Value> {
        serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
    }

    fn write(&self, path: &Path, value: &Value) -> Result<()> {
        std::fs::write(path, serde_json::to_string(value)?)
            .with_context(|| format!("cannot write {}", path.display()))
    }
}

/// Load the embeddings (or first view) of a checkpoint for CKA.
fn load_rows(path: &Path, options: &InputOptions) -> Result<Array2<f64>> {
    let loaded = load(path, &options.selection())?;
    let matrix = loaded
        .embeddings
        .or(loaded.views.into_iter().next())
        .with_context(|| format!("{}: no embeddings", path.display()))?;
    Ok(Matrix::into_f64(matrix.matrix))
}

/// A parsed `--fail-if` check.
enum Check {
    Compare {
        metric: String,
        op: String,
        value: f64,
    },
    Trend {
        metric: String,
        increased: bool,
    },
}

fn parse_check(text: &str) -> Result<Check> {
    let words: Vec<&str> = text.split_whitespace().collect();
    match words.as_slice() {
        [metric, trend @ ("increased" | "decreased")] => Ok(Check::Trend {
            metric: metric.to_string(),
            increased: *trend == "increased",
        }),
        [metric, op @ ("<" | "<=" | ">" | ">=" | "==" | "!="), value] => Ok(Check::Compare {
            metric: metric.to_string(),
            op: op.to_string(),
            value: value.parse().with_context(|| format!("--fail-if '{text}': {value} is not a number"))?,
        }),
        _ => bail!("--fail-if '{text}': expected 'METRIC OP NUMBER' (OP one of < <= > >= == !=) or 'METRIC increased|decreased'"),
    }
}

/// Evaluate a check: (failed, explanation).
fn evaluate(
    check: &Check,
    text: &str,
    steps: &[f64],
    table: &[(String, Vec<Option<f64>>)],
) -> Result<(bool, String)> {
    let column = |metric: &str| -> Result<Vec<(f64, f64)>> {
        let (_, values) = table.iter().find(|(n, _)| n == metric).with_context(|| {
            let names: Vec<&str> = table.iter().map(|(n, _)| n.as_str()).collect();
            format!(
                "--fail-if '{text}': no metric {metric}; metrics: {}",
                names.join(", ")
            )
        })?;
        Ok(steps
            .iter()
            .zip(values)
            .filter_map(|(&s, v)| v.map(|v| (s, v)))
            .collect())
    };
    match check {
        Check::Compare { metric, op, value } => {
            let points = column(metric)?;
            let Some(&(step, last)) = points.last() else {
                return Ok((true, format!("{metric} has no value")));
            };
            let holds = match op.as_str() {
                "<" => last < *value,
                "<=" => last <= *value,
                ">" => last > *value,
                ">=" => last >= *value,
                "==" => last == *value,
                _ => last != *value,
            };
            Ok((holds, format!("{metric} = {last:.6} at step {step}")))
        }
        Check::Trend { metric, increased } => {
            let points = column(metric)?;
            let (Some(first), Some(last)) = (points.first(), points.last()) else {
                return Ok((true, format!("{metric} has no value")));
            };
            let holds = if *increased {
                last.1 > first.1
            } else {
                last.1 < first.1
            };
            Ok((
                holds,
                format!(
                    "{metric}: {:.6} at step {} -> {:.6} at step {}",
                    first.1, first.0, last.1, last.0
                ),
            ))
        }
    }
}

/// One pass over the run; returns whether every check passed.
fn round(args: &TrackArgs, dir: &Path, name: &str, checks: &[(String, Check)]) -> Result<bool> {
    let checkpoints = discover(&args.run)?;
    let cache = Cache {
        dir: dir.join(".cache"),
        signature: fnv1a(
            format!(
                "{:?}{:?}{}",
                args.options,
                args.metrics,
                env!("CARGO_PKG_VERSION")
            )
            .as_bytes(),
            FNV_OFFSET,
        ),
    };
    std::fs::create_dir_all(&cache.dir)
        .with_context(|| format!("cannot create {}", cache.dir.display()))?;
    let hashes = checkpoints
        .iter()
        .map(|c| file_hash(&c.path))
        .collect::<Result<Vec<_>>>()?;
    let bar =
        ProgressBar::with_draw_target(Some(checkpoints.len() as u64), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("checkpoints [{bar:40}] {pos}/{len} {msg}")
            .expect("template")
            .progress_chars("=> "),
    );
    let entries: Mutex<Vec<Option<Value>>> = Mutex::new(vec![None; checkpoints.len()]);
    let mut todo = Vec::new();
    for (i, hash) in hashes.iter().enumerate() {
        match cache.read(&cache.entry_path(*hash)) {
            Some(entry) => {
                entries.lock().expect("entries")[i] = Some(entry);
                bar.inc(1);
            }
            None => todo.push(i),
        }
    }
    let jobs = args
        .jobs
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(4)
        })
        .max(1);
    let next = AtomicUsize::new(0);
    let failure: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(todo.len().max(1)) {
            scope.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::SeqCst);
                let Some(&i) = todo.get(k) else { break };
                if failure.lock().expect("failure").is_some() {
                    break;
                }
                let c = &checkpoints[i];
                bar.set_message(
                    c.path
                        .file_name()
                        .map(|f| f.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                );
                let result = analyse_checkpoint(&c.path, args).and_then(|entry| {
                    cache.write(&cache.entry_path(hashes[i]), &entry)?;
                    Ok(entry)
                });
                match result {
                    Ok(entry) => entries.lock().expect("entries")[i] = Some(entry),
                    Err(e) => {
                        *failure.lock().expect("failure") =
                            Some(e.context(format!("{}", c.path.display())))
                    }
                }
                bar.inc(1);
            });
        }
    });
    bar.finish_and_clear();
    if let Some(error) = failure.into_inner().expect("failure") {
        return Err(error);
    }
    let entries: Vec<Value> = entries
        .into_inner()
        .expect("entries")
        .into_iter()
        .map(|e| e.expect("every checkpoint"))
        .collect();

    // Every checkpoint must describe the same rows in the same order.
    let first = &checkpoints[0];
    for (c, entry) in checkpoints.iter().zip(&entries).skip(1) {
        let (n0, n) = (&entries[0]["analysis"]["n"], &entry["analysis"]["n"]);
        if n != n0 {
            bail!(
                "{}: {n} rows, but {} has {n0}: checkpoints must embed the same rows",
                c.path.display(),
                first.path.display()
            );
        }
        if entry["labels_hash"] != entries[0]["labels_hash"] {
            bail!("{}: labels differ from those of {} (order or values): checkpoints must embed the same rows in the same order", c.path.display(), first.path.display());
        }
    }

    // CKA with the previous and with the last checkpoint (rows correspond), cached by pair.
    let k = checkpoints.len();
    let mut cka_previous = vec![None; k];
    let mut cka_last = vec![None; k];
    let mut loaded: Vec<Option<Array2<f64>>> = vec![None; k];
    for i in 0..k {
        let pairs = [
            (i.checked_sub(1), &mut cka_previous),
            ((i + 1 < k).then_some(k - 1), &mut cka_last),
        ];
        for (other, out) in pairs {
            let Some(j) = other else { continue };
            let path = cache.dir.join(format!(
                "cka-{:016x}-{:016x}.json",
                hashes[j],
                hashes[i] ^ cache.signature
            ));
            let value = match cache.read(&path).and_then(|v| v["value"].as_f64()) {
                Some(v) => v,
                None => {
                    for idx in [i, j] {
                        if loaded[idx].is_none() {
                            loaded[idx] = Some(load_rows(&checkpoints[idx].path, &args.options)?);
                        }
                    }
                    let (a, b) = (
                        loaded[j].as_ref().expect("loaded"),
                        loaded[i].as_ref().expect("loaded"),
                    );
                    let v = linear_cka(a.view(), b.view())
                        .with_context(|| format!("CKA of {}", checkpoints[i].path.display()))?;
                    cache.write(&path, &json!({"value": v}))?;
                    v
                }
            };
            out[i] = Some(value);
        }
        // Only the previous and the last checkpoint are needed later.
        if i >= 1 && i - 1 != k - 1 {
            loaded[i - 1] = None;
        }
    }

    // The table: step, file, every scalar metric, CKA.
    let steps: Vec<f64> = checkpoints.iter().map(|c| c.step).collect();
    let files: Vec<String> = checkpoints
        .iter()
        .map(|c| c.path.display().to_string())
        .collect();
    let mut names: Vec<String> = Vec::new();
    for entry in &entries {
        if let Some(metrics) = entry["analysis"]["metrics"].as_object() {
            for (name, metric) in metrics {
                if metric.get("value").and_then(Value::as_f64).is_some() && !names.contains(name) {
                    names.push(name.clone());
                }
            }
        }
    }
    let mut table: Vec<(String, Vec<Option<f64>>)> = names
        .iter()
        .map(|name| {
            let values = entries
                .iter()
                .map(|e| e["analysis"]["metrics"][name]["value"].as_f64())
                .collect();
            (name.clone(), values)
        })
        .collect();
    table.push(("cka_previous".into(), cka_previous));
    table.push(("cka_last".into(), cka_last));
    let mut columns = vec![
        Column::Float("step".into(), steps.iter().map(|&s| Some(s)).collect()),
        Column::Text("file".into(), files.clone()),
    ];
    columns.extend(
        table
            .iter()
            .map(|(n, v)| Column::Float(n.clone(), v.clone())),
    );
    write_table(
        columns,
        &dir.join("metrics.csv"),
        &dir.join("metrics.parquet"),
    )?;

    let mut all_passed = true;
    let mut results = Vec::new();
    for (text, check) in checks {
        let (holds, detail) = evaluate(check, text, &steps, &table)?;
        // A --fail-if check fails when its condition holds.
        let ok = !holds;
        all_passed &= ok;
        println!("{}: {text} ({detail})", if ok { "ok" } else { "fail" });
        results.push((text.clone(), ok, detail));
    }

    let cosines = |i: usize| -> Option<Cosines> {
        let rows = entries[i]["mean_cosines"].as_array()?;
        let c = rows.len();
        let values: Vec<f64> = rows
            .iter()
            .flat_map(|r| r.as_array().into_iter().flatten().filter_map(Value::as_f64))
            .collect();
        let names = entries[i]["class_names"]
            .as_array()?
            .iter()
            .filter_map(|n| n.as_str().map(String::from))
            .collect();
        Some(Cosines {
            step: steps[i],
            matrix: Array2::from_shape_vec((c, c), values).ok()?,
            names,
        })
    };
    let eigenvalues = entries
        .iter()
        .map(|e| {
            e["analysis"]["metrics"]["spectrum"]["eigenvalues"]
                .as_array()
                .map_or_else(Vec::new, |v| v.iter().filter_map(Value::as_f64).collect())
        })
        .collect();
    let first_inputs = &entries[0]["analysis"]["inputs"];
    let trajectory = Trajectory {
        title: format!("embgeom track: {name}"),
        inputs: vec![
            ("run".into(), args.run.clone()),
            (
                "checkpoints".into(),
                format!("{k}, steps {} to {}", steps[0], steps[k - 1]),
            ),
            ("rows N".into(), entries[0]["analysis"]["n"].to_string()),
            (
                "dimension D".into(),
                entries[0]["analysis"]["dim"].to_string(),
            ),
            (
                "classes C".into(),
                entries[0]["analysis"]["num_classes"].to_string(),
            ),
            (
                "labels".into(),
                first_inputs["labels"]
                    .as_str()
                    .unwrap_or("none")
                    .to_string(),
            ),
        ],
        first_cosines: cosines(0),
        last_cosines: cosines(k - 1),
        steps,
        files,
        metrics: table,
        eigenvalues,
        checks: results,
        signature: format!("track {:?}", args.run),
    };
    let written = write_trajectory(dir, &trajectory)?;
    println!(
        "tracked {k} checkpoints ({} analysed, {} from the cache) -> {}",
        todo.len(),
        k - todo.len(),
        written.index.display()
    );
    Ok(all_passed)
}

/// Run `embgeom track`; `Ok(false)` when a `--fail-if` check failed.
pub fn run(args: &TrackArgs) -> Result<bool> {
    args.metrics.apply_threads()?;
    let checks = args
        .fail_if
        .iter()
        .map(|text| Ok((text.clone(), parse_check(text)?)))
        .collect::<Result<Vec<_>>>()?;
    let (name, dir) = args.output.resolve(|| {
        let path = Path::new(&args.run);
        let base = if path.is_dir() {
            path
        } else {
            path.parent().unwrap_or(path)
        };
        base.file_name()
            .map_or_else(|| "run".into(), |n| n.to_string_lossy().into_owned())
    });
    check_folder(&dir, &format!("track {:?}", args.run), args.output.force)?;
    let mut rounds = 0;
    loop {
        let passed = round(args, &dir, &name, &checks)?;
        rounds += 1;
        if !args.watch || args.watch_rounds.is_some_and(|limit| rounds >= limit) {
            return Ok(passed);
        }
        std::thread::sleep(std::time::Duration::from_secs(args.interval));
    }
}
