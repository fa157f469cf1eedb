//! Parity with the PyTorch replica (`benches/trainer_reference.py`): for every loss (and both
//! optimisers; the two towers of CLIP and SigLIP with their learnable scale and bias
//! included), the trainer's initial weights, five batches with their augmentation draws and
//! views, the losses, the first step's gradients and the weights after five optimiser steps are
//! dumped; the replica loads the same weights, rebuilds the views from the draws and must
//! agree (views 1e-6, losses and gradients 1e-5, weights 1e-4 relative, in f32 on the CPU).
//!
//! The replica needs Python with PyTorch: `EMBGEOM_PYTHON` (set by scripts/test.sh to the test
//! venv), else `python3`. Without it the test says why and passes on a developer's machine;
//! under CI (`CI` set) it fails.

use embgeom_trainer::augment::{Augment, Draws};
use embgeom_trainer::data::digits;
use embgeom_trainer::losses::Loss;
use embgeom_trainer::optim::{Optimiser, Optimizer};
use embgeom_trainer::train::{batch_loss, cosine_lr, Config, Dtype, Network};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

const STEPS: i64 = 5;
const BATCH: i64 = 64;
const DIM: i64 = 16;
const CLASSES: i64 = 10;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A Python that imports torch, or why there is none.
fn python() -> Result<String, String> {
    let python = std::env::var("EMBGEOM_PYTHON").unwrap_or_else(|_| "python3".into());
    let probe = Command::new(&python)
        .args(["-c", "import torch, numpy"])
        .output();
    match probe {
        Ok(out) if out.status.success() => Ok(python),
        Ok(out) => Err(format!(
            "{python} cannot import torch: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        )),
        Err(e) => Err(format!("cannot run {python}: {e}")),
    }
}

fn config(loss: Loss, optimizer: Optimizer) -> Config {
    Config {
        loss,
        epochs: 1,
        batch_size: BATCH,
        lr: 3e-3,
        weight_decay: 1e-2,
        optimizer,
        temperature: 0.2,
        dim: DIM,
        seed: 0,
        eval_every: 1,
        augment: Augment {
            pad: 1,
            flip: true,
            noise: 0.05,
        },
        uniformity_weight: 1.0,
        spread_weight: 0.5,
        dtype: Dtype::F32,
        coarse: None,
        train_limit: None,
        out: PathBuf::new(),
        resume: false,
        initial_checkpoint: false,
        device: Device::Cpu,
        progress: false,
    }
}

fn save(path: &Path, tensors: Vec<(String, Tensor)>) {
    Tensor::write_safetensors(&tensors, path).unwrap();
}

/// The trainable variables (name, tensor) of the var store.
fn trainable(vs: &VarStore) -> Vec<(String, Tensor)> {
    vs.variables()
        .into_iter()
        .filter(|(_, t)| t.requires_grad())
        .collect()
}

fn draws_tensors(suffix: &str, draws: &Draws, view: &Tensor) -> Vec<(String, Tensor)> {
    vec![
        (format!("shift_x{suffix}"), draws.shift_x.shallow_clone()),
        (format!("shift_y{suffix}"), draws.shift_y.shallow_clone()),
        (format!("flip{suffix}"), draws.flip.shallow_clone()),
        (
            format!("noise{suffix}"),
            draws.noise.as_ref().expect("noise > 0").shallow_clone(),
        ),
        (format!("view{suffix}"), view.shallow_clone()),
    ]
}

/// Train STEPS steps with the trainer's own code and dump everything the replica compares.
fn dump(dir: &Path, loss: Loss, optimizer: Optimizer) {
    // One thread on both sides: multi-threaded CPU kernels (the convolutions' weight
    // gradients) may sum in a different order from run to run.
    tch::set_num_threads(1);
    let config = config(loss, optimizer);
    let data = digits(&root().join("data/digits.csv")).unwrap();
    tch::manual_seed(0);
    let vs = VarStore::new(Device::Cpu);
    let network = Network::new(&vs.root(), &config, CLASSES);
    vs.save(dir.join("initial.safetensors")).unwrap();
    let mut optimiser = Optimiser::new(&vs, optimizer, config.weight_decay);
    for step in 0..STEPS {
        let index =
            Tensor::arange_start(step * BATCH, (step + 1) * BATCH, (Kind::Int64, Device::Cpu));
        let images = data.train.images.index_select(0, &index);
        let labels = data.train.labels.index_select(0, &index);
        let d1 = config.augment.draw(&images);
        let x1 = Augment::apply(&images, &d1);
        let mut batch = vec![
            ("images".to_string(), images.shallow_clone()),
            ("labels".to_string(), labels.shallow_clone()),
        ];
        batch.extend(draws_tensors("1", &d1, &x1));
        let value = match &network {
            // One encoder: two views.
            Network::One {
                encoder,
                classifier,
            } => {
                let d2 = config.augment.draw(&images);
                let x2 = Augment::apply(&images, &d2);
                let z = encoder.embed(&Tensor::cat(&[&x1, &x2], 0), true);
                let halves = z.chunk(2, 0);
                batch.extend(draws_tensors("2", &d2, &x2));
                batch_loss(&config, &halves[0], &halves[1], &labels, classifier)
            }
            // Two towers: the halves of one view.
            Network::Two(towers) => {
                let (za, zb) = towers.embed(&x1, true);
                towers.loss(&za, &zb)
            }
        };
        batch.push(("loss".to_string(), value.detach().reshape([1])));
        save(&dir.join(format!("batch_{step}.safetensors")), batch);
        optimiser.zero_grad();
        value.backward();
        if step == 0 {
            // Variables the loss does not use (the classifier, except for ce) have no gradient.
            let grads = trainable(&vs)
                .into_iter()
                .filter(|(_, p)| p.grad().defined())
                .map(|(name, p)| (name, p.grad().copy()))
                .collect();
            save(&dir.join("gradients.safetensors"), grads);
        }
        optimiser.step(cosine_lr(config.lr, step as f64, STEPS as f64));
        if let Network::Two(towers) = &network {
            towers.clamp();
        }
    }
    save(&dir.join("final.safetensors"), trainable(&vs));
    let settings = json!({
        "dim": DIM, "classes": CLASSES, "loss": loss.name(), "lr": config.lr,
        "weight_decay": config.weight_decay,
        "optimizer": match optimizer { Optimizer::Adamw => "adamw", Optimizer::Sgd => "sgd" },
        "temperature": config.temperature, "uniformity_weight": config.uniformity_weight,
        "spread_weight": config.spread_weight, "steps": STEPS,
    });
    std::fs::write(dir.join("config.json"), settings.to_string()).unwrap();
}

#[test]
fn every_loss_and_optimiser_match_the_pytorch_replica() {
    let python = match python() {
        Ok(python) => python,
        Err(why) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "the parity test needs PyTorch under CI: {why}"
            );
            println!("SKIPPED every_loss_and_optimiser_match_the_pytorch_replica: {why}");
            return;
        }
    };
    let cases = [
        (Loss::Simclr, Optimizer::Adamw),
        (Loss::Supcon, Optimizer::Adamw),
        (Loss::Ce, Optimizer::Adamw),
        (Loss::AlignUniform, Optimizer::Adamw),
        (Loss::SupconSpread, Optimizer::Adamw),
        (Loss::Supcon, Optimizer::Sgd),
        (Loss::Clip, Optimizer::Adamw),
        (Loss::Siglip, Optimizer::Adamw),
    ];
    for (loss, optimizer) in cases {
        let dir = tempfile::tempdir().unwrap();
        dump(dir.path(), loss, optimizer);
        let out = Command::new(&python)
            .arg(root().join("benches/trainer_reference.py"))
            .arg("parity")
            .arg(dir.path())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        println!("{} / {optimizer:?}: {stdout}", loss.name());
        assert!(
            out.status.success(),
            "{} / {optimizer:?} differs from PyTorch: {stdout}{}",
            loss.name(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The replica writes the trainer's checkpoint format: `embgeom track` reads its runs.
#[test]
fn the_replicas_runs_are_read_by_embgeom_track() {
    let tools = python().and_then(|python| match std::env::var("EMBGEOM_BIN") {
        Ok(embgeom) if Path::new(&embgeom).exists() => Ok((python, embgeom)),
        _ => Err("EMBGEOM_BIN does not name the built embgeom binary".into()),
    });
    let (python, embgeom) = match tools {
        Ok(tools) => tools,
        Err(why) => {
            assert!(std::env::var_os("CI").is_none(), "needed under CI: {why}");
            println!("SKIPPED the_replicas_runs_are_read_by_embgeom_track: {why}");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let trained = Command::new(&python)
        .arg(root().join("benches/trainer_reference.py"))
        .args([
            "train",
            "--data",
            "digits",
            "--epochs",
            "2",
            "--batch-size",
            "128",
        ])
        .args(["--dim", "16", "--device", "cpu", "--digits-csv"])
        .arg(root().join("data/digits.csv"))
        .arg("--out")
        .arg(&run)
        .output()
        .unwrap();
    assert!(
        trained.status.success(),
        "{}",
        String::from_utf8_lossy(&trained.stderr)
    );
    let tracked = Command::new(&embgeom)
        .arg("track")
        .arg(&run)
        .arg("--out")
        .arg(dir.path().join("track"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&tracked.stdout);
    assert!(
        tracked.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&tracked.stderr)
    );
    assert!(stdout.contains("tracked 2 checkpoints"), "{stdout}");
}
