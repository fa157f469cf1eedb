//! CPU tests of the trainer: every loss against a direct computation, a short digits run whose
//! loss falls and whose checkpoints embgeom reads, seeded reproducibility, bad options.

use embgeom_trainer::augment::Augment;
use embgeom_trainer::data::digits;
use embgeom_trainer::losses::*;
use embgeom_trainer::train::{train, Config, Dtype, Optimizer};
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

/// tch's random generator and thread count are process-wide: trainings run one at a time.
static TRAINING: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn digits_csv() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/digits.csv")
}

/// The JSON document of `embgeom ARGS --json -` with the binary `bin`.
fn embgeom_json(bin: &str, args: &[&str]) -> serde_json::Value {
    let out = std::process::Command::new(bin)
        .args(args)
        .args(["--json", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn value(t: &Tensor) -> f64 {
    t.double_value(&[])
}

/// Unit rows on a regular simplex: class c at vertex c (C classes in C dimensions).
fn simplex(labels: &[i64], c: i64) -> Tensor {
    let eye = Tensor::eye(c, (Kind::Float, Device::Cpu));
    let centred = &eye - (1.0 / c as f64);
    normalize(&centred.index_select(0, &Tensor::from_slice(labels)))
}

#[test]
fn supcon_on_a_perfect_simplex_has_its_analytic_value() {
    let (c, per) = (4i64, 3usize);
    let labels: Vec<i64> = (0..c * per as i64).map(|i| i % c).collect();
    let z = simplex(&labels, c);
    let tau = 0.5;
    let got = value(&supcon(&z, &z, &Tensor::from_slice(&labels), tau));
    // Each anchor: 2*per - 1 positives at cosine 1, 2*(C-1)*per negatives at -1/(C-1).
    let (n_pos, n_neg) = ((2 * per - 1) as f64, (2 * (c as usize - 1) * per) as f64);
    let want = (n_pos + n_neg * (-(1.0 + 1.0 / (c as f64 - 1.0)) / tau).exp()).ln();
    assert!((got - want).abs() < 1e-5, "{got} vs {want}");
}

#[test]
fn nt_xent_and_class_conditional_match_plain_loops() {
    let z1 = normalize(&Tensor::from_slice(&[1.0f32, 0.0, 0.6, 0.8, -1.0, 0.2]).view([3, 2]));
    let z2 = normalize(&Tensor::from_slice(&[0.9f32, 0.1, 0.5, 0.9, -0.8, -0.3]).view([3, 2]));
    let tau = 0.3;
    let rows: Vec<Vec<f64>> = (0..6)
        .map(|i| {
            let t = if i < 3 { z1.get(i) } else { z2.get(i - 3) };
            Vec::<f64>::try_from(&t.to_kind(Kind::Double)).unwrap()
        })
        .collect();
    let sim = |a: usize, b: usize| (rows[a][0] * rows[b][0] + rows[a][1] * rows[b][1]) / tau;
    let loss = |allowed: &dyn Fn(usize, usize) -> bool| {
        (0..6)
            .map(|i| {
                let p = (i + 3) % 6;
                let den: f64 = (0..6)
                    .filter(|&a| a != i && allowed(i, a))
                    .map(|a| sim(i, a).exp())
                    .sum();
                -(sim(i, p).exp() / den).ln()
            })
            .sum::<f64>()
            / 6.0
    };
    let want = loss(&|_, _| true);
    assert!((value(&nt_xent(&z1, &z2, tau)) - want).abs() < 1e-5);
    // Classes {0, 1} and {2}: negatives only from the anchor's class.
    let labels = [0i64, 0, 1];
    let class_of = |i: usize| labels[i % 3];
    let want = loss(&|i, a| class_of(i) == class_of(a));
    let got = value(&class_conditional_nce(
        &z1,
        &z2,
        &Tensor::from_slice(&labels),
        tau,
    ));
    assert!((got - want).abs() < 1e-5, "{got} vs {want}");
}

#[test]
fn align_uniform_matches_the_wang_isola_formulas() {
    let z1 = normalize(&Tensor::from_slice(&[1.0f32, 0.0, 0.0, 1.0, -1.0, 0.0]).view([3, 2]));
    let z2 = normalize(&Tensor::from_slice(&[1.0f32, 0.0, 0.0, 1.0, 0.0, -1.0]).view([3, 2]));
    assert!(
        (value(&alignment(&z1, &z2)) - 2.0 / 3.0).abs() < 1e-6,
        "one pair at distance^2 2"
    );
    // Three points at 0, 90, 180 degrees: squared distances 2, 2, 4.
    let want = (((-4.0f64).exp() * 2.0 + (-8.0f64).exp()) / 3.0).ln();
    assert!((value(&uniformity(&z1, 2.0)) - want).abs() < 1e-6);
    let both = value(&align_uniform(&z1, &z2, 0.5));
    let expected = value(&alignment(&z1, &z2))
        + 0.25 * (value(&uniformity(&z1, 2.0)) + value(&uniformity(&z2, 2.0)));
    assert!((both - expected).abs() < 1e-6);
}

fn config(out: &Path, loss: Loss, seed: i64) -> Config {
    Config {
        loss,
        epochs: 3,
        batch_size: 128,
        lr: 3e-3,
        weight_decay: 1e-4,
        optimizer: Optimizer::Adamw,
        temperature: 0.2,
        dim: 16,
        seed,
        eval_every: 1,
        augment: Augment {
            pad: 1,
            flip: false,
            noise: 0.05,
        },
        uniformity_weight: 1.0,
        spread_weight: 0.5,
        dtype: Dtype::F32,
        coarse: None,
        train_limit: Some(768),
        out: out.to_path_buf(),
        resume: false,
        initial_checkpoint: false,
        device: Device::Cpu,
        progress: false,
    }
}

#[test]
fn short_digits_run_learns_and_writes_checkpoints_embgeom_reads() {
    let _one_at_a_time = TRAINING.lock().unwrap_or_else(|e| e.into_inner());
    tch::set_num_threads(2);
    let data = digits(&digits_csv()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let mut cfg = config(&out, Loss::Ce, 1);
    cfg.epochs = 4;
    let losses = train(&cfg, &data).unwrap();
    assert_eq!(losses.len(), 4);
    assert!(losses[3] < losses[0], "loss must fall: {losses:?}");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    let listed = manifest["checkpoints"].as_array().unwrap();
    assert_eq!(listed.len(), 4);
    assert_eq!(manifest["config"]["loss"], "ce");
    let last = out.join(listed[3]["path"].as_str().unwrap());
    let tensors = Tensor::read_safetensors(&last).unwrap();
    let get = |name: &str| {
        tensors
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no {name}"))
            .1
            .size()
    };
    let n = data.eval.images.size()[0];
    assert_eq!(get("embeddings"), vec![n, 16]);
    assert_eq!(get("views"), vec![n, 2, 16]);
    assert_eq!(get("labels"), vec![n]);
    assert_eq!(get("classifier"), vec![10, 16]);
    assert_eq!(get("bias"), vec![10]);
    // The main workspace's binary reads the checkpoints when scripts/test.sh points to it.
    if let Ok(bin) = std::env::var("EMBGEOM_BIN") {
        let doc = embgeom_json(&bin, &["analyze", last.to_str().unwrap()]);
        assert_eq!(doc["n"], n);
        assert!(doc["metrics"]["alignment"]["value"].as_f64().is_some());
        assert!(
            doc["metrics"]["nc3"]["value"].as_f64().is_some(),
            "classifier read from the checkpoint"
        );
        let tracked = std::process::Command::new(&bin)
            .args([
                "track",
                out.to_str().unwrap(),
                "--out",
                dir.path().join("track").to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&tracked.stdout).contains("tracked 4 checkpoints"),
            "{}",
            String::from_utf8_lossy(&tracked.stderr)
        );
    } else {
        let why = "EMBGEOM_BIN not set: the checkpoints were not read with embgeom (scripts/test.sh sets it)";
        // Under CI a missing dependency is a failure, never a silent pass.
        assert!(std::env::var_os("CI").is_none(), "{why}");
        println!("SKIPPED {why}");
    }
}

#[test]
fn a_seeded_cpu_run_is_reproducible_and_resume_continues() {
    let _one_at_a_time = TRAINING.lock().unwrap_or_else(|e| e.into_inner());
    tch::set_num_threads(1);
    let data = digits(&digits_csv()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let embeddings = |out: &Path| {
        let file = out.join("ckpt_epoch_0002.safetensors");
        let tensors = Tensor::read_safetensors(file).unwrap();
        tensors
            .into_iter()
            .find(|(n, _)| n == "embeddings")
            .unwrap()
            .1
    };
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let mut cfg = config(&a, Loss::Supcon, 7);
    cfg.epochs = 2;
    train(&cfg, &data).unwrap();
    cfg.out = b.clone();
    train(&cfg, &data).unwrap();
    assert!(
        embeddings(&a).equal(&embeddings(&b)),
        "same seed, same bits"
    );
    // Another run into the same folder needs --resume; with it, training goes on from epoch 3.
    assert!(train(&cfg, &data)
        .unwrap_err()
        .to_string()
        .contains("pass --resume"));
    // The optimiser's state is saved with the model: after two epochs of 6 batches it has
    // taken 12 steps, and the resumed run continues from it (18 steps, not 6).
    let optimizer_steps = |out: &Path| {
        Tensor::read_safetensors(out.join("optimizer.safetensors"))
            .unwrap()
            .into_iter()
            .find(|(n, _)| n == "step")
            .unwrap()
            .1
            .int64_value(&[0])
    };
    assert_eq!(optimizer_steps(&b), 12);
    cfg.resume = true;
    cfg.epochs = 3;
    assert_eq!(train(&cfg, &data).unwrap().len(), 1);
    assert_eq!(
        optimizer_steps(&b),
        18,
        "the moments continue with --resume"
    );
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(b.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["checkpoints"].as_array().unwrap().len(), 3);
}

#[test]
fn every_loss_trains_a_step_and_bad_options_are_refused() {
    let _one_at_a_time = TRAINING.lock().unwrap_or_else(|e| e.into_inner());
    let data = digits(&digits_csv()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (k, loss) in [Loss::Simclr, Loss::AlignUniform, Loss::SupconSpread]
        .into_iter()
        .enumerate()
    {
        let mut cfg = config(&dir.path().join(format!("l{k}")), loss, 3);
        cfg.epochs = 1;
        let losses = train(&cfg, &data).unwrap();
        assert!(losses[0].is_finite(), "{loss:?}");
    }
    let bin = env!("CARGO_BIN_EXE_embgeom-train");
    let run = |args: &[&str]| {
        std::process::Command::new(bin)
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    let csv = digits_csv();
    let out = dir.path().join("x");
    for (args, message) in [
        (vec!["--batch-size", "5000"], "larger than the"),
        (vec!["--lr=-1"], "--lr and --temperature must be positive"),
        (
            vec!["--dataset", "cifar"],
            "expected fashion-mnist, digits or npy",
        ),
        (vec!["--coarse", "0,1"], "needs 10 non-negative entries"),
        (vec!["--device", "tpu"], "expected cpu, cuda or auto"),
    ] {
        let mut all = vec![
            "--data",
            csv.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--epochs",
            "1",
        ];
        all.extend(args);
        let result = run(&all);
        assert_eq!(result.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert!(stderr.contains(message), "{stderr}");
    }
}

#[test]
fn npy_images_and_coarse_labels_train_and_keep_subclasses() {
    let _one_at_a_time = TRAINING.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let digits_data = digits(&digits_csv()).unwrap();
    // The digits as (N, 8, 8) pixel values 0..16 in .npy files.
    let images = (&digits_data.train.images * 16.0).squeeze_dim(1);
    let (x, y) = (dir.path().join("x.npy"), dir.path().join("y.npy"));
    images.write_npy(&x).unwrap();
    digits_data.train.labels.write_npy(&y).unwrap();
    let data = embgeom_trainer::data::npy(&x, &y).unwrap();
    assert_eq!(data.classes, 10);
    assert_eq!(data.train.images.size()[1..], [1, 8, 8]);
    assert!(data.train.images.max().double_value(&[]) <= 1.0);
    let out = dir.path().join("coarse");
    let mut cfg = config(&out, Loss::Supcon, 5);
    cfg.epochs = 1;
    cfg.coarse = Some(embgeom_trainer::data::coarse_map("0,0,0,0,0,1,1,1,1,1", 10).unwrap());
    train(&cfg, &data).unwrap();
    let tensors = Tensor::read_safetensors(out.join("ckpt_epoch_0001.safetensors")).unwrap();
    let get = |name: &str| {
        tensors
            .iter()
            .find(|(n, _)| n == name)
            .unwrap()
            .1
            .shallow_clone()
    };
    assert_eq!(
        get("labels").max().int64_value(&[]),
        1,
        "trained on 2 coarse classes"
    );
    assert_eq!(
        get("subclasses").max().int64_value(&[]),
        9,
        "fine labels kept"
    );
    let fashion = embgeom_trainer::data::coarse_map("fashion", 10).unwrap();
    assert_eq!(fashion, vec![0, 1, 0, 0, 0, 2, 0, 2, 3, 2]);
}

/// The CUDA paths: loading `libtorch_cuda.so`, `--device cuda`, autocast in training and in the
/// throughput measurement. Runs where a CUDA device is present; elsewhere it checks that
/// `--device cuda` is refused with a clear message and prints a visible "NOT RUN" line (the
/// README's test command shows it).
#[test]
fn cuda_paths_run_where_cuda_is_present() {
    let library = embgeom_trainer::load_cuda();
    if !tch::Cuda::is_available() {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_embgeom-train"))
            .args(["--dataset", "digits", "--device", "cuda", "--out"])
            .arg(std::env::temp_dir().join("embgeom-no-cuda"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2));
        assert!(stderr.contains("--device cuda: no CUDA device"), "{stderr}");
        println!(
            "NOT RUN cuda_paths_run_where_cuda_is_present: no CUDA device here (libtorch_cuda.so {}); the CPU paths and the refusal of --device cuda were checked",
            if library.is_some() { "loaded" } else { "not found" }
        );
        return;
    }
    let _one_at_a_time = TRAINING.lock().unwrap_or_else(|e| e.into_inner());
    let data = digits(&digits_csv()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), Loss::Supcon, 3);
    cfg.device = Device::Cuda(0);
    cfg.epochs = 2;
    let losses = train(&cfg, &data).unwrap();
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    assert!(dir.path().join("ckpt_epoch_0002.safetensors").exists());
    for loss in [Loss::Clip, Loss::Siglip] {
        let towers = dir.path().join(loss.name());
        let mut cfg = config(&towers, loss, 3);
        cfg.device = Device::Cuda(0);
        cfg.epochs = 2;
        let losses = train(&cfg, &data).unwrap();
        assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
        assert!(towers.join("ckpt_epoch_0002.safetensors").exists());
    }
    let f32_rate = embgeom_trainer::train::images_per_second(&cfg, 5, 2, 28, false);
    let amp_rate = embgeom_trainer::train::images_per_second(&cfg, 5, 2, 28, true);
    assert!(f32_rate > 0.0 && amp_rate > 0.0);
    println!("RAN cuda_paths_run_where_cuda_is_present: {f32_rate:.0} images/s in f32, {amp_rate:.0} with autocast");
}

/// CLIP's and SigLIP's losses against their definitions written out row by row.
#[test]
fn clip_and_siglip_losses_match_plain_loops() {
    // Seeding and drawing use libtorch's one global generator: a training test running beside
    // this one would draw between its seed and its first draw.
    let _one_at_a_time = TRAINING.lock().unwrap_or_else(|e| e.into_inner());
    tch::manual_seed(3);
    let (b, d) = (12, 5);
    let za = Tensor::randn([b, d], (Kind::Float, Device::Cpu));
    let zb = Tensor::randn([b, d], (Kind::Float, Device::Cpu));
    let (scale, bias) = (2.3f64, -1.7f64);
    let (a, c) = (normalize(&za), normalize(&zb));
    let s = |i: i64, j: i64| value(&(a.get(i) * c.get(j)).sum(Kind::Double));
    let mut clip = 0.0;
    let mut siglip = 0.0;
    for i in 0..b {
        let row: f64 = (0..b).map(|j| (scale.exp() * s(i, j)).exp()).sum();
        let column: f64 = (0..b).map(|j| (scale.exp() * s(j, i)).exp()).sum();
        clip += (row.ln() - scale.exp() * s(i, i)) + (column.ln() - scale.exp() * s(i, i));
        for j in 0..b {
            let sign = if i == j { 1.0 } else { -1.0 };
            let logit = scale.exp() * s(i, j) + bias;
            siglip += (1.0 + (-sign * logit).exp()).ln();
        }
    }
    let (clip, siglip) = (clip / (2 * b) as f64, siglip / b as f64);
    let got_clip = value(&clip_loss(&za, &zb, &Tensor::from(scale)));
    let got_siglip = value(&siglip_loss(
        &za,
        &zb,
        &Tensor::from(scale),
        &Tensor::from(bias),
    ));
    assert!((got_clip - clip).abs() < 1e-4 * clip, "{got_clip} {clip}");
    assert!(
        (got_siglip - siglip).abs() < 1e-4 * siglip,
        "{got_siglip} {siglip}"
    );
    // Perfectly matched orthogonal pairs at a large scale: CLIP's loss vanishes.
    let eye = Tensor::eye(4, (Kind::Float, Device::Cpu));
    assert!(value(&clip_loss(&eye, &eye, &Tensor::from(100f64.ln()))) < 1e-30f64.max(1e-6));
}

/// A two-tower run (CLIP and SigLIP) on digits: the untrained checkpoint and one per epoch
/// hold `top` and `bottom` embeddings of the halves, the manifest the learned scale (and
/// bias), and embgeom measures the two modalities together.
#[test]
fn two_tower_runs_write_both_modalities_and_their_learned_scale() {
    let _one_at_a_time = TRAINING.lock().unwrap_or_else(|e| e.into_inner());
    tch::set_num_threads(2);
    let data = digits(&digits_csv()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for loss in [Loss::Clip, Loss::Siglip] {
        let out = dir.path().join(loss.name());
        let mut cfg = config(&out, loss, 0);
        cfg.epochs = 6;
        cfg.initial_checkpoint = true;
        let losses = train(&cfg, &data).unwrap();
        assert_eq!(losses.len(), 6);
        assert!(losses[5] < losses[0], "{}: {losses:?}", loss.name());
        let manifest: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap())
                .unwrap();
        let listed = manifest["checkpoints"].as_array().unwrap();
        assert_eq!(listed.len(), 7, "epochs 0 to 6");
        assert_eq!(listed[0]["step"], 0);
        let parameters = &listed[6]["loss_parameters"];
        let scale = parameters["logit_scale"].as_f64().unwrap();
        assert!(scale > 0.0 && scale <= 100f64.ln() + 1e-6);
        assert_eq!(parameters["logit_bias"].is_null(), loss == Loss::Clip);
        let last = out.join(listed[6]["path"].as_str().unwrap());
        let tensors = Tensor::read_safetensors(&last).unwrap();
        let n = data.eval.images.size()[0];
        for key in ["top", "bottom"] {
            let size = tensors.iter().find(|(k, _)| k == key).unwrap().1.size();
            assert_eq!(size, vec![n, 16], "{key}");
        }
        assert!(!tensors.iter().any(|(k, _)| k == "embeddings"));
        if let Ok(bin) = std::env::var("EMBGEOM_BIN") {
            // The mean reciprocal rank of the top halves' queries, untrained and trained.
            let mrr = |path: &Path| {
                let file = path.to_str().unwrap();
                let (top, bottom) = (format!("{file}:top"), format!("{file}:bottom"));
                let doc = embgeom_json(
                    &bin,
                    &["analyze", "--modalities", &top, &bottom, "--shifts", ""],
                );
                doc["pairs"][0]["retrieval"]["top_to_bottom"]["mrr"]
                    .as_f64()
                    .unwrap()
            };
            let first = out.join(listed[0]["path"].as_str().unwrap());
            let (before, after) = (mrr(&first), mrr(&last));
            // SigLIP's bias starts at -10 and learns slowly on a small run; CLIP's MRR grows more.
            let factor = if loss == Loss::Clip { 1.5 } else { 1.1 };
            assert!(
                after > factor * before,
                "{}: MRR {before} -> {after}",
                loss.name()
            );
        } else {
            let why = "EMBGEOM_BIN not set: the checkpoints were not read with embgeom";
            assert!(std::env::var_os("CI").is_none(), "{why}");
            println!("SKIPPED {why}");
        }
    }
}
