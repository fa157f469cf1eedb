//! The checkpoints of a run: from a manifest, else from the numbers in the file names, of a
//! directory or a glob.

use crate::error::{Result, TrackError};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// One checkpoint file and its training step.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// Training step (epoch, iteration) that orders the checkpoints.
    pub step: f64,
    /// The embeddings file.
    pub path: PathBuf,
}

/// File extensions read as checkpoints.
pub const EXTENSIONS: [&str; 5] = ["npy", "npz", "safetensors", "parquet", "csv"];

fn discovery(message: String) -> TrackError {
    TrackError::Discovery(message)
}

/// The number in a file name that orders checkpoints: the last run of digits in the stem
/// (`epoch_10.npz` -> 10, `ckpt-000120.safetensors` -> 120).
pub fn step_from_name(path: &Path) -> Option<f64> {
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
        _ => Err(discovery(format!(
            "{}: entry {i} needs a numeric step and a path",
            manifest.display()
        ))),
    }
}

fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| TrackError::File {
        path: path.display().to_string(),
        what: e.to_string(),
    })
}

/// Checkpoints listed by `manifest.json` (a list, or `{"checkpoints": [...]}`, of objects with
/// `step` and `path`) or `manifest.csv` (columns `step` and `path`), paths relative to `dir`.
fn manifest(dir: &Path) -> Result<Option<Vec<Checkpoint>>> {
    let json_path = dir.join("manifest.json");
    if json_path.exists() {
        let doc: Value = serde_json::from_str(&read_text(&json_path)?)
            .map_err(|_| discovery(format!("{}: not valid JSON", json_path.display())))?;
        let list = doc.get("checkpoints").unwrap_or(&doc);
        let items = list.as_array().ok_or_else(|| {
            discovery(format!(
                "{}: expected a list of {{step, path}} (or {{\"checkpoints\": [...]}})",
                json_path.display()
            ))
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
        let text = read_text(&csv_path)?;
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        let header: Vec<&str> = lines
            .next()
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .collect();
        let column = |name: &str| header.iter().position(|h| *h == name);
        let (Some(step_at), Some(path_at)) = (column("step"), column("path")) else {
            return Err(discovery(format!(
                "{}: needs columns step and path, has {header:?}",
                csv_path.display()
            )));
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

/// The checkpoint files of a directory (by extension) or of a glob.
fn files_of(run: &str) -> Result<Vec<PathBuf>> {
    let dir = Path::new(run);
    let mut files: Vec<PathBuf> = if dir.is_dir() {
        std::fs::read_dir(dir)
            .map_err(|e| discovery(format!("cannot list {run}: {e}")))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| EXTENSIONS.contains(&e))
            })
            .collect()
    } else {
        glob::glob(run)
            .map_err(|_| discovery(format!("{run}: not a directory and not a valid glob")))?
            .filter_map(|p| p.ok())
            .collect()
    };
    files.retain(|p| p.is_file());
    files.sort();
    Ok(files)
}

/// The checkpoints of a run directory or glob, in increasing step order.
///
/// Steps come from `manifest.json` / `manifest.csv` when the directory has one, else from
/// the last number in each file name, compared numerically. No checkpoint, a file without a
/// step, or two checkpoints with the same step is an error.
pub fn discover(run: &str) -> Result<Vec<Checkpoint>> {
    let dir = Path::new(run);
    let listed = match dir.is_dir() {
        true => manifest(dir)?,
        false => None,
    };
    let mut checkpoints = match listed {
        Some(listed) => listed,
        None => files_of(run)?
            .into_iter()
            .map(|path| {
                let step = step_from_name(&path).ok_or_else(|| {
                    discovery(format!(
                        "{}: no step number in the file name and no manifest.json/manifest.csv",
                        path.display()
                    ))
                })?;
                Ok(Checkpoint { step, path })
            })
            .collect::<Result<Vec<_>>>()?,
    };
    if checkpoints.is_empty() {
        return Err(discovery(format!(
            "{run}: no checkpoint files ({})",
            EXTENSIONS.join(", ")
        )));
    }
    checkpoints.sort_by(|a, b| a.step.total_cmp(&b.step));
    if let Some(pair) = checkpoints.windows(2).find(|w| w[0].step == w[1].step) {
        return Err(discovery(format!(
            "{} and {} have the same step {}",
            pair[0].path.display(),
            pair[1].path.display(),
            pair[0].step
        )));
    }
    Ok(checkpoints)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_the_last_number_of_the_stem() {
        assert_eq!(step_from_name(Path::new("run/epoch_10.npz")), Some(10.0));
        assert_eq!(
            step_from_name(Path::new("ckpt-000120.safetensors")),
            Some(120.0)
        );
        assert_eq!(step_from_name(Path::new("v2_final.npy")), Some(2.0));
        assert_eq!(step_from_name(Path::new("final.npy")), None);
    }

    #[test]
    fn numbered_files_sort_numerically_and_duplicates_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["epoch_9.npy", "epoch_10.npy", "notes.txt"] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        let found = discover(dir.path().to_str().unwrap()).unwrap();
        let steps: Vec<f64> = found.iter().map(|c| c.step).collect();
        assert_eq!(steps, vec![9.0, 10.0]);
        std::fs::write(dir.path().join("other_10.npy"), b"").unwrap();
        let error = discover(dir.path().to_str().unwrap()).unwrap_err();
        assert!(error.to_string().contains("the same step 10"), "{error}");
    }

    #[test]
    fn a_csv_manifest_gives_the_steps() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("manifest.csv"),
            "path,step\nb.npy,20\na.npy,3\n",
        )
        .unwrap();
        let found = discover(dir.path().to_str().unwrap()).unwrap();
        assert_eq!(found[0].path, dir.path().join("a.npy"));
        assert_eq!(found[1].step, 20.0);
        std::fs::write(dir.path().join("manifest.csv"), "file,step\na.npy,3\n").unwrap();
        assert!(discover(dir.path().to_str().unwrap())
            .unwrap_err()
            .to_string()
            .contains("needs columns step and path"));
    }
}
