//! The training loop: two augmented views per image, the chosen loss, AdamW or SGD with a
//! cosine schedule, and embedding checkpoints (`.safetensors` + `manifest.json`) that embgeom
//! `analyze`, `report` and `track` read directly.

use crate::augment::Augment;
use crate::data::{Dataset, FASHION_COARSE, FASHION_COARSE_NAMES};
use crate::losses::{align_uniform, class_conditional_nce, nt_xent, supcon, Loss};
use crate::model::Encoder;
use crate::optim::Optimiser;
pub use crate::optim::Optimizer;
use anyhow::{bail, Context, Result};
use embgeom_write::{write_output, write_output_with};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::nn;
use tch::{Device, Kind, Tensor};

/// Storage type of the checkpoint embeddings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Dtype {
    F32,
    F16,
}

/// Everything a training run needs.
#[derive(Debug, Clone)]
pub struct Config {
    pub loss: Loss,
    pub epochs: i64,
    pub batch_size: i64,
    pub lr: f64,
    pub weight_decay: f64,
    pub optimizer: Optimizer,
    pub temperature: f64,
    pub dim: i64,
    pub seed: i64,
    pub eval_every: i64,
    pub augment: Augment,
    pub uniformity_weight: f64,
    pub spread_weight: f64,
    pub dtype: Dtype,
    /// Fine-to-coarse class map (train on coarse labels, keep fine ones as subclasses).
    pub coarse: Option<Vec<i64>>,
    /// At most this many training images per epoch (all when `None`).
    pub train_limit: Option<i64>,
    pub out: PathBuf,
    pub resume: bool,
    pub device: Device,
    pub progress: bool,
}

impl Config {
    fn to_json(&self, dataset: &str) -> Value {
        json!({
            "dataset": dataset, "loss": self.loss.name(), "epochs": self.epochs,
            "batch_size": self.batch_size, "lr": self.lr, "weight_decay": self.weight_decay,
            "optimizer": format!("{:?}", self.optimizer).to_lowercase(), "temperature": self.temperature,
            "dim": self.dim, "seed": self.seed, "eval_every": self.eval_every,
            "augment": {"pad": self.augment.pad, "flip": self.augment.flip, "noise": self.augment.noise},
            "uniformity_weight": self.uniformity_weight, "spread_weight": self.spread_weight,
            "dtype": format!("{:?}", self.dtype).to_lowercase(), "coarse": self.coarse,
            "train_limit": self.train_limit, "device": format!("{:?}", self.device),
        })
    }

    fn check(&self) -> Result<()> {
        if self.epochs < 1 || self.batch_size < 2 || self.eval_every < 1 || self.dim < 1 {
            bail!(
                "--epochs, --eval-every and --dim must be at least 1 and --batch-size at least 2"
            );
        }
        let positive = |v: f64| v > 0.0 && v.is_finite();
        if !positive(self.lr) || !positive(self.temperature) {
            bail!("--lr and --temperature must be positive");
        }
        Ok(())
    }
}

/// Labels used for training (coarse when mapped).
fn train_labels(labels: &Tensor, coarse: &Option<Vec<i64>>) -> Tensor {
    match coarse {
        Some(map) => Tensor::from_slice(map)
            .to_device(labels.device())
            .index_select(0, labels),
        None => labels.shallow_clone(),
    }
}

/// The loss of a batch; `classifier` is used by the cross-entropy loss.
pub fn batch_loss(
    config: &Config,
    z1: &Tensor,
    z2: &Tensor,
    labels: &Tensor,
    classifier: &nn::Linear,
) -> Tensor {
    let (z1, z2) = (z1.to_kind(Kind::Float), z2.to_kind(Kind::Float));
    let tau = config.temperature;
    match config.loss {
        Loss::Simclr => nt_xent(&z1, &z2, tau),
        Loss::Supcon => supcon(&z1, &z2, labels, tau),
        Loss::Ce => {
            let logits = Tensor::cat(&[z1.apply(classifier), z2.apply(classifier)], 0);
            logits.cross_entropy_for_logits(&Tensor::cat(&[labels, labels], 0))
        }
        Loss::AlignUniform => align_uniform(&z1, &z2, config.uniformity_weight),
        Loss::SupconSpread => {
            let w = config.spread_weight;
            supcon(&z1, &z2, labels, tau) * (1.0 - w)
                + class_conditional_nce(&z1, &z2, labels, tau) * w
        }
    }
}

/// The encoder and the classifier (used by the cross-entropy loss).
pub struct Model<'a> {
    pub encoder: &'a Encoder,
    pub classifier: &'a nn::Linear,
}

/// One optimiser step on a batch: two augmented views, the loss (under autocast when
/// `amp`), backward, update with learning rate `lr`; returns the loss.
pub fn training_step(
    config: &Config,
    model: &Model,
    optimizer: &mut Optimiser,
    images: &Tensor,
    labels: &Tensor,
    lr: f64,
    amp: bool,
) -> Tensor {
    let (x1, x2) = (config.augment.view(images), config.augment.view(images));
    let loss = tch::autocast(amp, || {
        let z = model.encoder.embed(&Tensor::cat(&[x1, x2], 0), true);
        let halves = z.chunk(2, 0);
        batch_loss(config, &halves[0], &halves[1], labels, model.classifier)
    });
    optimizer.zero_grad();
    loss.backward();
    optimizer.step(lr);
    loss
}

/// Training throughput: images (each seen as two augmented views) per second over `steps`
/// steps after `warmup` ones, on random `size` x `size` images of 10 classes, with the
/// model, loss, batch size, optimiser and device of `config`; autocast on CUDA when `amp`.
pub fn images_per_second(config: &Config, steps: i64, warmup: i64, size: i64, amp: bool) -> f64 {
    tch::manual_seed(config.seed);
    let vs = nn::VarStore::new(config.device);
    let encoder = Encoder::new(&vs.root(), config.dim);
    let classifier = nn::linear(vs.root() / "classifier", config.dim, 10, Default::default());
    let mut optimizer = Optimiser::new(&vs, config.optimizer, config.weight_decay);
    let model = Model {
        encoder: &encoder,
        classifier: &classifier,
    };
    let images = Tensor::rand(
        [config.batch_size, 1, size, size],
        (Kind::Float, config.device),
    );
    let labels = Tensor::randint(10, [config.batch_size], (Kind::Int64, config.device));
    let amp = amp && config.device.is_cuda();
    let mut run = |count: i64| {
        for _ in 0..count {
            let _ = training_step(
                config,
                &model,
                &mut optimizer,
                &images,
                &labels,
                config.lr,
                amp,
            );
        }
        if let Device::Cuda(index) = config.device {
            tch::Cuda::synchronize(index as i64);
        }
    };
    run(warmup);
    let started = Instant::now();
    run(steps);
    (steps * config.batch_size) as f64 / started.elapsed().as_secs_f64()
}

/// The learning rate at `step` of `total`: `lr (1 + cos(pi step / total)) / 2`.
pub fn cosine_lr(lr: f64, step: f64, total: f64) -> f64 {
    lr * 0.5 * (1.0 + (std::f64::consts::PI * step / total).cos())
}

/// The fixed evaluation inputs: the clean images and two augmented views drawn once from a
/// fixed seed.
struct EvalSet {
    clean: Tensor,
    views: [Tensor; 2],
    labels: Tensor,
    fine: Tensor,
}

fn embed_all(encoder: &Encoder, images: &Tensor, device: Device) -> Tensor {
    tch::no_grad(|| {
        let parts: Vec<Tensor> = images
            .split(512, 0)
            .iter()
            .map(|chunk| {
                encoder
                    .embed(&chunk.to_device(device), false)
                    .to_device(Device::Cpu)
                    .to_kind(Kind::Float)
            })
            .collect();
        Tensor::cat(&parts, 0)
    })
}

/// Write the embeddings of the evaluation set; returns the file name.
fn write_checkpoint(
    config: &Config,
    eval: &EvalSet,
    encoder: &Encoder,
    classifier: Option<&nn::Linear>,
    epoch: i64,
) -> Result<String> {
    let kind = match config.dtype {
        Dtype::F32 => Kind::Float,
        Dtype::F16 => Kind::Half,
    };
    let embeddings = embed_all(encoder, &eval.clean, config.device);
    let views = Tensor::stack(
        &[
            embed_all(encoder, &eval.views[0], config.device),
            embed_all(encoder, &eval.views[1], config.device),
        ],
        1,
    );
    let mut tensors: Vec<(String, Tensor)> = vec![
        ("embeddings".into(), embeddings.to_kind(kind)),
        ("views".into(), views.to_kind(kind)),
        ("labels".into(), eval.labels.shallow_clone()),
    ];
    if config.coarse.is_some() {
        tensors.push(("subclasses".into(), eval.fine.shallow_clone()));
    }
    if let Some(linear) = classifier {
        tensors.push((
            "classifier".into(),
            linear
                .ws
                .detach()
                .to_device(Device::Cpu)
                .to_kind(Kind::Float),
        ));
        if let Some(bias) = &linear.bs {
            tensors.push((
                "bias".into(),
                bias.detach().to_device(Device::Cpu).to_kind(Kind::Float),
            ));
        }
    }
    let name = format!("ckpt_epoch_{epoch:04}.safetensors");
    write_output_with(&config.out.join(&name), |temporary: &Path| {
        Tensor::write_safetensors(&tensors, temporary)
            .with_context(|| format!("cannot write {name}"))
    })?;
    Ok(name)
}

/// Read the manifest of a run folder, if any.
fn read_manifest(out: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).ok()?).ok()
}

/// Train and write checkpoints; returns the mean loss of every epoch.
pub fn train(config: &Config, data: &Dataset) -> Result<Vec<f64>> {
    config.check()?;
    std::fs::create_dir_all(&config.out)
        .with_context(|| format!("cannot create {}", config.out.display()))?;
    let manifest_path = config.out.join("manifest.json");
    let mut manifest = match (config.resume, read_manifest(&config.out)) {
        (true, Some(m)) => m,
        (false, Some(_)) => bail!(
            "{} already holds a run; pass --resume to continue it, or choose another --out",
            config.out.display()
        ),
        (_, None) => json!({"checkpoints": [], "config": config.to_json(&data.name)}),
    };
    // Names of the labels the checkpoints hold (embgeom reads them from the manifest).
    let class_names = match (&config.coarse, &data.class_names) {
        (None, Some(names)) => Some(json!(names)),
        (Some(map), Some(_)) if map.as_slice() == FASHION_COARSE => {
            Some(json!(FASHION_COARSE_NAMES))
        }
        _ => None,
    };
    if let Some(names) = class_names {
        manifest["class_names"] = names;
    }
    tch::manual_seed(config.seed);
    let mut vs = nn::VarStore::new(config.device);
    let encoder = Encoder::new(&vs.root(), config.dim);
    let classes = match &config.coarse {
        Some(map) => map.iter().max().copied().unwrap_or(0) + 1,
        None => data.classes,
    };
    let classifier = nn::linear(
        vs.root() / "classifier",
        config.dim,
        classes,
        Default::default(),
    );
    let model_path = config.out.join("model.safetensors");
    let optimizer_path = config.out.join("optimizer.safetensors");
    let mut optimizer = Optimiser::new(&vs, config.optimizer, config.weight_decay);
    let mut first_epoch = 1;
    if config.resume && model_path.exists() {
        vs.load(&model_path)
            .with_context(|| format!("cannot resume from {}", model_path.display()))?;
        // The moments (or momentum buffers) continue where they were, not from zero.
        if optimizer_path.exists() {
            optimizer.load(&optimizer_path)?;
        }
        first_epoch = manifest["epochs_done"].as_i64().unwrap_or(0) + 1;
    }
    // The evaluation views come from their own fixed seed, the same in every run.
    tch::manual_seed(1_000_003);
    let eval = EvalSet {
        views: [
            config.augment.view(&data.eval.images),
            config.augment.view(&data.eval.images),
        ],
        clean: data.eval.images.shallow_clone(),
        labels: train_labels(&data.eval.labels, &config.coarse),
        fine: data.eval.labels.shallow_clone(),
    };
    tch::manual_seed(config.seed + first_epoch);
    let n = data.train.images.size()[0];
    let per_epoch = config.train_limit.map_or(n, |l| l.min(n));
    let batches = per_epoch / config.batch_size;
    if batches == 0 {
        bail!(
            "--batch-size {} is larger than the {per_epoch} training images",
            config.batch_size
        );
    }
    let total_steps = (config.epochs * batches) as f64;
    let bar = ProgressBar::with_draw_target(
        Some((config.epochs - first_epoch + 1).max(0) as u64 * batches as u64),
        if config.progress {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    bar.set_style(
        ProgressStyle::with_template("epoch {msg} [{bar:30}] {pos}/{len} batches")
            .expect("template"),
    );
    let started = Instant::now();
    let use_amp = config.device.is_cuda();
    let mut losses = Vec::new();
    for epoch in first_epoch..=config.epochs {
        let order = Tensor::randperm(n, (Kind::Int64, Device::Cpu)).narrow(
            0,
            0,
            batches * config.batch_size,
        );
        let mut sum = 0.0;
        let epoch_started = Instant::now();
        for b in 0..batches {
            let step = (epoch - 1) * batches + b;
            let lr = cosine_lr(config.lr, step as f64, total_steps);
            let index = order.narrow(0, b * config.batch_size, config.batch_size);
            let images = data
                .train
                .images
                .index_select(0, &index)
                .to_device(config.device);
            let labels = train_labels(&data.train.labels.index_select(0, &index), &config.coarse)
                .to_device(config.device);
            let model = Model {
                encoder: &encoder,
                classifier: &classifier,
            };
            let loss = training_step(
                config,
                &model,
                &mut optimizer,
                &images,
                &labels,
                lr,
                use_amp,
            );
            let value = loss.double_value(&[]);
            if !value.is_finite() {
                bail!("the loss became {value} at epoch {epoch}, batch {b}: lower --lr");
            }
            sum += value;
            let views = (2 * (b + 1) * config.batch_size) as f64;
            bar.set_message(format!(
                "{epoch}/{} loss {:.4}, {:.0} views/s",
                config.epochs,
                sum / (b + 1) as f64,
                views / epoch_started.elapsed().as_secs_f64()
            ));
            bar.inc(1);
        }
        let mean = sum / batches as f64;
        losses.push(mean);
        if epoch % config.eval_every == 0 || epoch == config.epochs {
            let ce = (config.loss == Loss::Ce).then_some(&classifier);
            let file = write_checkpoint(config, &eval, &encoder, ce, epoch)?;
            write_output_with(&model_path, |temporary: &Path| {
                vs.save(temporary)
                    .with_context(|| format!("cannot write {}", model_path.display()))
            })?;
            optimizer.save(&optimizer_path)?;
            manifest["checkpoints"]
                .as_array_mut()
                .expect("checkpoints list")
                .push(json!({"step": epoch * batches, "epoch": epoch, "loss": mean, "wall_seconds": started.elapsed().as_secs_f64(), "path": file}));
            manifest["epochs_done"] = json!(epoch);
            write_output(
                &manifest_path,
                serde_json::to_string_pretty(&manifest)?.as_bytes(),
            )?;
        }
    }
    bar.finish_and_clear();
    Ok(losses)
}
