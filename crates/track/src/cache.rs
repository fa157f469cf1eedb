//! The per-checkpoint cache: results keyed by the content of every input file and by the
//! options that change results (never by the thread count or by file paths).

use crate::error::{Result, TrackError};
use embgeom_geometry::modalities::CrossModal;
use embgeom_geometry::{Analysis, AnalysisOptions};
use embgeom_pipeline::{InputSpec, InputSummary};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::path::{Path, PathBuf};

const FNV_OFFSET: u64 = 0xCBF2_9CE4_8422_2325;

/// 64-bit FNV-1a of `bytes`, continuing from `hash`.
fn fnv1a(bytes: &[u8], mut hash: u64) -> u64 {
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01B3);
    }
    hash
}

/// FNV-1a of `bytes`.
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    fnv1a(bytes, FNV_OFFSET)
}

/// FNV-1a of a file's content.
pub fn file_hash(path: &Path) -> Result<u64> {
    let fail = |e: std::io::Error| TrackError::File {
        path: path.display().to_string(),
        what: format!("cannot read: {e}"),
    };
    let mut file = std::fs::File::open(path).map_err(fail)?;
    let mut buffer = vec![0u8; 1 << 20];
    let mut hash = FNV_OFFSET;
    loop {
        let n = file.read(&mut buffer).map_err(fail)?;
        if n == 0 {
            return Ok(hash);
        }
        hash = fnv1a(&buffer[..n], hash);
    }
}

/// What is cached per checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckpointResult {
    /// Every metric of the checkpoint.
    pub analysis: Analysis,
    /// Where its rows came from.
    pub summary: InputSummary,
    /// Cosines between centred class means (rows), with labels.
    pub mean_cosines: Option<Vec<Vec<f64>>>,
    /// Hash of the labels, to check that every checkpoint has the same rows in the same order.
    pub labels_hash: Option<u64>,
    /// With modalities: each one's name and analysis (`analysis` is the first's).
    #[serde(default)]
    pub modalities: Vec<(String, Analysis)>,
    /// With modalities: the two measured together (the table reads it through the
    /// cross-modal catalogue).
    #[serde(default)]
    pub cross: Vec<CrossModal>,
}

/// A cache folder and the signature of everything but the checkpoint file.
pub struct Cache {
    dir: PathBuf,
    signature: u64,
}

impl Cache {
    /// The cache in `dir` for checkpoints read with `spec` (its embeddings file aside) and
    /// analysed with `options`: the signature covers the keys and columns read, normalisation,
    /// the options, embgeom's version and the content of every side file (labels, views,
    /// classifier, bias, split, subclasses given as files), and the keys of the `modalities`
    /// measured together (none for one set of rows).
    pub fn new(
        dir: PathBuf,
        spec: &InputSpec,
        options: &AnalysisOptions,
        modalities: &[String],
    ) -> Result<Cache> {
        std::fs::create_dir_all(&dir).map_err(|e| TrackError::File {
            path: dir.display().to_string(),
            what: format!("cannot create: {e}"),
        })?;
        let results_options = AnalysisOptions {
            memory_limit: None,
            ..options.clone()
        };
        let reading = format!(
            "{:?}|{}|{results_options:?}|{}|{modalities:?}",
            spec.selection(),
            spec.normalize,
            env!("CARGO_PKG_VERSION")
        );
        let mut signature = hash_bytes(reading.as_bytes());
        for file in spec.side_files() {
            signature = fnv1a(&file_hash(file)?.to_le_bytes(), signature);
        }
        Ok(Cache { dir, signature })
    }

    /// The file of a result keyed by the content hashes `contents`.
    pub fn path(&self, kind: &str, contents: &[u64]) -> PathBuf {
        let key = contents
            .iter()
            .fold(self.signature, |h, c| fnv1a(&c.to_le_bytes(), h));
        self.dir.join(format!("{kind}-{key:016x}.json"))
    }

    /// A cached value; a missing or unreadable entry is a miss.
    pub fn read<T: DeserializeOwned>(&self, path: &Path) -> Option<T> {
        serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
    }

    /// Store a value.
    pub fn write<T: Serialize>(&self, path: &Path, value: &T) -> Result<()> {
        let text = serde_json::to_string(value).map_err(|e| TrackError::File {
            path: path.display().to_string(),
            what: e.to_string(),
        })?;
        embgeom_io::write_output(path, text.as_bytes()).map_err(embgeom_io::IoError::from)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_follows_side_file_content_not_threads_or_paths() {
        let dir = tempfile::tempdir().unwrap();
        let labels = dir.path().join("labels.txt");
        std::fs::write(&labels, "0\n1\n").unwrap();
        let spec = InputSpec {
            labels: Some(labels.clone()),
            ..InputSpec::default()
        };
        let options = AnalysisOptions::default();
        let key = |spec: &InputSpec, options: &AnalysisOptions| {
            Cache::new(dir.path().join("cache"), spec, options, &[])
                .unwrap()
                .path("analysis", &[1])
        };
        let before = key(&spec, &options);
        assert_eq!(before, key(&spec, &options));
        let moved = dir.path().join("moved.txt");
        std::fs::copy(&labels, &moved).unwrap();
        let elsewhere = InputSpec {
            labels: Some(moved),
            ..spec.clone()
        };
        assert_eq!(before, key(&elsewhere, &options), "paths do not matter");
        std::fs::write(&labels, "1\n0\n").unwrap();
        assert_ne!(before, key(&spec, &options), "rewritten labels miss");
        let other = AnalysisOptions {
            t: 3.0,
            ..AnalysisOptions::default()
        };
        assert_ne!(key(&spec, &options), key(&spec, &other));
    }
}
