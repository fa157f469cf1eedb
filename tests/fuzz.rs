//! The mutation fuzzer, in process: a few thousand mutants of valid files of every format
//! (fixed seed) through the whole pipeline (load, validate, every metric, the figure data).
//! Every mutant must give a result or an error; a panic or a mutant that takes more than a
//! few seconds fails the test. `cargo bench --bench fuzz` runs any number through the binary.

#[path = "common/mutation.rs"]
mod fuzz;

use embgeom_geometry::{AnalysisOptions, NoProgress};
use embgeom_pipeline::{run_analysis, Extras, InputSpec};
use std::time::{Duration, Instant};

/// Mutants per seed file (`EMBGEOM_FUZZ_PER_SEED` overrides it for a longer run).
const PER_SEED: u64 = 300;
const RUN_SEED: u64 = 0x00E3_B6E0_F022;
const SLOW: Duration = Duration::from_secs(5);

/// The pipeline's inputs for a placed mutant.
fn spec_of(placed: fuzz::Placed) -> InputSpec {
    InputSpec {
        labels: placed.labels,
        class_names: placed.class_names,
        ..InputSpec::file(&placed.embeddings)
    }
}

#[test]
fn mutants_of_every_format_never_panic_or_hang() {
    let dir = tempfile::tempdir().unwrap();
    fuzz::write_partners(dir.path());
    let options = AnalysisOptions::default();
    // Every extra, the per-point table included (of at most 500 rows).
    let extras = Extras {
        figures: true,
        mean_cosines: true,
        per_point_rows: Some(500),
    };
    let per_seed = std::env::var("EMBGEOM_FUZZ_PER_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(PER_SEED);
    let (mut results, mut errors, mut failures) = (0, 0, Vec::new());
    for seed in fuzz::seeds() {
        for index in 0..per_seed {
            let (bytes, what) = fuzz::mutant(&seed, RUN_SEED, index);
            let spec = spec_of(fuzz::place(&seed, &bytes, dir.path()));
            let start = Instant::now();
            let outcome = embgeom_io::quiet_panics(|| {
                run_analysis(&spec, &options, extras, &NoProgress).map(|run| run.analysis)
            });
            let took = start.elapsed();
            match outcome {
                Ok(Ok(_)) => results += 1,
                Ok(Err(error)) => {
                    errors += 1;
                    let message = error.to_string();
                    if !(message.contains(seed.name) || message.contains("partner")) {
                        failures.push(format!(
                            "{} mutant {index} ({what}): the error does not name the file: {message}",
                            seed.name
                        ));
                    }
                }
                Err(panic) => failures.push(format!(
                    "{} mutant {index} ({what}): panic: {panic}",
                    seed.name
                )),
            }
            if took > SLOW {
                failures.push(format!(
                    "{} mutant {index} ({what}): took {took:?}",
                    seed.name
                ));
            }
        }
    }
    println!(
        "{results} results, {errors} errors, {} failures",
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        results > 0 && errors > 0,
        "the mutants exercise both outcomes"
    );
}

#[test]
fn every_seed_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    fuzz::write_partners(dir.path());
    for seed in fuzz::seeds() {
        let spec = spec_of(fuzz::place(&seed, &seed.bytes, dir.path()));
        let run = run_analysis(
            &spec,
            &AnalysisOptions::default(),
            Extras::default(),
            &NoProgress,
        )
        .unwrap_or_else(|e| panic!("{}: {e}", seed.name));
        assert!(
            [fuzz::ROWS, 40].contains(&run.analysis.n),
            "{}: {} rows",
            seed.name,
            run.analysis.n
        );
    }
}

/// The modalities' inputs: mutants of the pair map (and of the second modality's file) through
/// `run_modalities`; each ends in a result or an error naming the file.
#[test]
fn pair_map_and_modality_mutants_never_panic_or_hang() {
    use embgeom_geometry::ObjectiveParameters;
    use embgeom_pipeline::{run_modalities, CrossOptions, ModalitySpec};
    let dir = tempfile::tempdir().unwrap();
    let (images, captions, d) = (24usize, 2usize, 4usize);
    let values: Vec<f32> = (0..images * d)
        .map(|k| ((k * 37 % 11) as f32) - 4.5)
        .collect();
    let text: Vec<f32> = (0..images * captions * d)
        .map(|k| values[(k / d / captions) * d + k % d] + ((k * 13 % 7) as f32) * 0.1)
        .collect();
    let f32_npy = |v: &[f32], rows: usize| embgeom_io::npy_bytes_f32(&[rows, d], v);
    let map: Vec<u8> = (0..images * captions)
        .flat_map(|j| ((j / captions) as i64).to_le_bytes())
        .collect();
    let seeds = [
        (
            "map.npy",
            embgeom_io::npy_bytes("<i8", &[images * captions], &map),
        ),
        ("caption.npy", f32_npy(&text, images * captions)),
    ];
    std::fs::write(dir.path().join("image.npy"), f32_npy(&values, images)).unwrap();
    let options = AnalysisOptions::default();
    let mut failures = Vec::new();
    for (name, bytes) in &seeds {
        let seed = fuzz::Seed {
            name,
            bytes: bytes.clone(),
            role: fuzz::Role::Embeddings,
        };
        for (other, other_bytes) in &seeds {
            if other != name {
                std::fs::write(dir.path().join(other), other_bytes).unwrap();
            }
        }
        for index in 0..PER_SEED {
            let (mutated, what) = fuzz::mutant(&seed, RUN_SEED, index);
            std::fs::write(dir.path().join(name), &mutated).unwrap();
            let modalities = [
                ModalitySpec {
                    name: "image".into(),
                    spec: InputSpec::file(dir.path().join("image.npy")),
                },
                ModalitySpec {
                    name: "caption".into(),
                    spec: InputSpec::file(dir.path().join("caption.npy")),
                },
            ];
            let cross = CrossOptions {
                pairs: Some(embgeom_pipeline::PairFile::Path(dir.path().join("map.npy"))),
                parameters: ObjectiveParameters::default(),
                shifts: vec![1.0],
                figures: false,
                sample_rows: 1000,
                queries: None,
            };
            let start = Instant::now();
            let outcome = embgeom_io::quiet_panics(|| {
                run_modalities(&modalities, &options, &cross, &NoProgress)
                    .map(|run| run.cross.len())
            });
            match outcome {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => {
                    let message = error.to_string();
                    if !message.contains(name) {
                        failures.push(format!("{name} mutant {index} ({what}): the error does not name the file: {message}"));
                    }
                }
                Err(panic) => {
                    failures.push(format!("{name} mutant {index} ({what}): panic: {panic}"))
                }
            }
            if start.elapsed() > SLOW {
                failures.push(format!(
                    "{name} mutant {index} ({what}): took {:?}",
                    start.elapsed()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Sharded modalities (`img_emb/` and `text_emb/` of two shards each): mutants of one shard of
/// each modality; each ends in a result or an error naming the shard's file.
#[test]
fn sharded_modality_mutants_never_panic_or_hang() {
    use embgeom_geometry::ObjectiveParameters;
    use embgeom_pipeline::{run_modalities, CrossOptions, ModalitySpec};
    let dir = tempfile::tempdir().unwrap();
    let (rows, d) = (20usize, 4usize);
    let shard = |seed: usize| -> Vec<u8> {
        let values: Vec<f32> = (0..rows * d)
            .map(|k| (((k + seed) * 37 % 11) as f32) - 4.5 + seed as f32 * 0.1)
            .collect();
        embgeom_io::npy_bytes_f32(&[rows, d], &values)
    };
    for name in ["img_emb", "text_emb"] {
        std::fs::create_dir(dir.path().join(name)).unwrap();
        for k in 0..2 {
            let path = dir.path().join(format!("{name}/{name}_{k}.npy"));
            std::fs::write(path, shard(k + name.len())).unwrap();
        }
    }
    let modalities = ["img_emb", "text_emb"].map(|name| ModalitySpec {
        name: name.into(),
        spec: InputSpec::file(dir.path().join(name)),
    });
    let cross = CrossOptions {
        pairs: None,
        parameters: ObjectiveParameters::default(),
        shifts: vec![1.0],
        figures: false,
        sample_rows: 1000,
        queries: None,
    };
    let options = AnalysisOptions::default();
    let mut failures = Vec::new();
    for (file, original) in [
        ("text_emb/text_emb_1.npy", shard(1 + "text_emb".len())),
        ("img_emb/img_emb_0.npy", shard("img_emb".len())),
    ] {
        let seed = fuzz::Seed {
            name: file,
            bytes: original.clone(),
            role: fuzz::Role::Embeddings,
        };
        for index in 0..PER_SEED / 3 {
            let (mutated, what) = fuzz::mutant(&seed, RUN_SEED, index);
            std::fs::write(dir.path().join(file), &mutated).unwrap();
            let start = Instant::now();
            let outcome = embgeom_io::quiet_panics(|| {
                run_modalities(&modalities, &options, &cross, &NoProgress)
                    .map(|run| run.cross.len())
            });
            let shard_name = file.rsplit('/').next().unwrap_or(file);
            match outcome {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => {
                    let message = error.to_string();
                    if !message.contains(shard_name) {
                        failures.push(format!("{file} mutant {index} ({what}): the error does not name the file: {message}"));
                    }
                }
                Err(panic) => {
                    failures.push(format!("{file} mutant {index} ({what}): panic: {panic}"))
                }
            }
            if start.elapsed() > SLOW {
                failures.push(format!(
                    "{file} mutant {index} ({what}): took {:?}",
                    start.elapsed()
                ));
            }
        }
        std::fs::write(dir.path().join(file), &original).unwrap();
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
