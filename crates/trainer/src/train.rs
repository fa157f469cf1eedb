//! The training loop: two augmented views per image, the chosen loss, AdamW or SGD with a
//! cosine schedule, and embedding checkpoints (`.safetensors` + `manifest.json`) that embgeom
//! `analyze`, `report` and `track` read directly.

use crate::augment::Augment;
use crate::data::{Dataset, FASHION_COARSE, FASHION_COARSE_NAMES};
use crate::losses::{
    align_uniform, class_conditional_nce, clip_loss, nt_xent, siglip_loss, supcon, Loss,
};
use crate::model::{Encoder, TwoTower, SIGLIP_INITIAL};
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
    /// Write the untrained network's checkpoint (epoch 0, step 0) before the first step.
    pub initial_checkpoint: bool,
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
            "initial_checkpoint": self.initial_checkpoint,
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

/// The loss of a batch of two views through one encoder; `classifier` is used by the
/// cross-entropy loss. CLIP's and SigLIP's losses (trained with two towers by
/// [`training_step`]) are taken at their initial scales here.
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
        // Two views through one encoder: the towers' losses at their initial, fixed scales.
        Loss::Clip => clip_loss(&z1, &z2, &Tensor::from(tau.recip().ln())),
        Loss::Siglip => siglip_loss(
            &z1,
            &z2,
            &Tensor::from(SIGLIP_INITIAL.0),
            &Tensor::from(SIGLIP_INITIAL.1),
        ),
    }
}

/// The trained network: one encoder (and the classifier of the cross-entropy loss), or two
/// towers for CLIP and SigLIP.
pub enum Network {
    /// One encoder, its two augmented views per image, and the classifier.
    One {
        encoder: Encoder,
        classifier: nn::Linear,
    },
    /// Two towers, one per half of each image.
    Two(TwoTower),
}

impl Network {
    /// A new network for `config.loss` in `vs`, its classifier of `classes` outputs.
    pub fn new(vs: &nn::Path, config: &Config, classes: i64) -> Network {
        match config.loss.two_tower() {
            true => Network::Two(TwoTower::new(
                vs,
                config.dim,
                config.loss,
                config.temperature,
            )),
            false => Network::One {
                encoder: Encoder::new(vs, config.dim),
                classifier: nn::linear(vs / "classifier", config.dim, classes, Default::default()),
            },
        }
    }
}

/// One optimiser step on a batch, returning the loss. One encoder: two augmented views, the
/// loss (under autocast when `amp`). Two towers: one augmented view, its top half through one
/// tower and its bottom half through the other, CLIP's or SigLIP's loss, and the logit scale
/// clamped after the update. Then backward and the update with learning rate `lr`.
pub fn training_step(
    config: &Config,
    network: &Network,
    optimizer: &mut Optimiser,
    images: &Tensor,
    labels: &Tensor,
    lr: f64,
    amp: bool,
) -> Tensor {
    let loss = match network {
        Network::One {
            encoder,
            classifier,
        } => {
            let (x1, x2) = (config.augment.view(images), config.augment.view(images));
            tch::autocast(amp, || {
                let z = encoder.embed(&Tensor::cat(&[x1, x2], 0), true);
                let halves = z.chunk(2, 0);
                batch_loss(config, &halves[0], &halves[1], labels, classifier)
            })
        }
        Network::Two(towers) => {
            let x = config.augment.view(images);
            tch::autocast(amp, || {
                let (za, zb) = towers.embed(&x, true);
                towers.loss(&za, &zb)
            })
        }
    };
    optimizer.zero_grad();
    loss.backward();
    optimizer.step(lr);
    if let Network::Two(towers) = network {
        towers.clamp();
    }
    loss
}

/// Training throughput: images (each seen as two augmented views) per second over `steps`
/// steps after `warmup` ones, on random `size` x `size` images of 10 classes, with the
/// model, loss, batch size, optimiser and device of `config`; autocast on CUDA when `amp`.
pub fn images_per_second(config: &Config, steps: i64, warmup: i64, size: i64, amp: bool) -> f64 {
    tch::manual_seed(config.seed);
    let vs = nn::VarStore::new(config.device);
    let network = Network::new(&vs.root(), config, 10);
    let mut optimizer = Optimiser::new(&vs, config.optimizer, config.weight_decay);
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
                &network,
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

/// The embeddings a checkpoint holds: one encoder's `embeddings` of the clean images and
/// `views` (N x 2 x D) of the two fixed augmented views (and the cross-entropy loss's
/// `classifier` and `bias`), or the two towers' `top` and `bottom` of the clean images' halves.
fn checkpoint_tensors(
    config: &Config,
    eval: &EvalSet,
    network: &Network,
    kind: Kind,
) -> Vec<(String, Tensor)> {
    let device = config.device;
    match network {
        Network::Two(towers) => {
            let (top, bottom) = TwoTower::halves(&eval.clean);
            vec![
                (
                    "top".into(),
                    embed_all(&towers.top, &top, device).to_kind(kind),
                ),
                (
                    "bottom".into(),
                    embed_all(&towers.bottom, &bottom, device).to_kind(kind),
                ),
            ]
        }
        Network::One {
            encoder,
            classifier,
        } => {
            let embeddings = embed_all(encoder, &eval.clean, device);
            let views = Tensor::stack(
                &[
                    embed_all(encoder, &eval.views[0], device),
                    embed_all(encoder, &eval.views[1], device),
                ],
                1,
            );
            let mut tensors = vec![
                ("embeddings".into(), embeddings.to_kind(kind)),
                ("views".into(), views.to_kind(kind)),
            ];
            if config.loss == Loss::Ce {
                let cpu = |t: &Tensor| t.detach().to_device(Device::Cpu).to_kind(Kind::Float);
                tensors.push(("classifier".into(), cpu(&classifier.ws)));
                if let Some(bias) = &classifier.bs {
                    tensors.push(("bias".into(), cpu(bias)));
                }
            }
            tensors
        }
    }
}

/// Write the embeddings of the evaluation set and its labels; returns the file name.
fn write_checkpoint(
    config: &Config,
    eval: &EvalSet,
    network: &Network,
    epoch: i64,
) -> Result<String> {
    let kind = match config.dtype {
        Dtype::F32 => Kind::Float,
        Dtype::F16 => Kind::Half,
    };
    let mut tensors = checkpoint_tensors(config, eval, network, kind);
    tensors.push(("labels".into(), eval.labels.shallow_clone()));
    if config.coarse.is_some() {
        tensors.push(("subclasses".into(), eval.fine.shallow_clone()));
    }
    let name = format!("ckpt_epoch_{epoch:04}.safetensors");
    write_output_with(&config.out.join(&name), |temporary: &Path| {
        Tensor::write_safetensors(&tensors, temporary)
            .with_context(|| format!("cannot write {name}"))
    })?;
    Ok(name)
}

/// The learnable scale and bias of the two towers' loss, for the manifest.
fn logit_parameters(network: &Network) -> Value {
    match network {
        Network::Two(towers) => {
            let value = |t: &Tensor| t.double_value(&[]);
            json!({
                "logit_scale": value(&towers.logit_scale),
                "logit_bias": towers.logit_bias.as_ref().map(value),
            })
        }
        Network::One { .. } => json!({}),
    }
}

/// What a checkpoint is written from: the run's configuration, evaluation set, network and
/// weights.
struct Checkpointing<'a> {
    config: &'a Config,
    eval: &'a EvalSet,
    network: &'a Network,
    vs: &'a nn::VarStore,
}

impl Checkpointing<'_> {
    /// Write the checkpoint of `entry["epoch"]`, the weights and the optimiser's state (for
    /// `--resume`), and the manifest with `entry` (step, epoch, loss, wall time) added.
    fn save(&self, optimizer: &Optimiser, manifest: &mut Value, mut entry: Value) -> Result<()> {
        let config = self.config;
        let epoch = entry["epoch"].as_i64().unwrap_or(0);
        entry["path"] = json!(write_checkpoint(config, self.eval, self.network, epoch)?);
        entry["loss_parameters"] = logit_parameters(self.network);
        let model_path = config.out.join("model.safetensors");
        write_output_with(&model_path, |temporary: &Path| {
            self.vs
                .save(temporary)
                .with_context(|| format!("cannot write {}", model_path.display()))
        })?;
        optimizer.save(&config.out.join("optimizer.safetensors"))?;
        manifest["checkpoints"]
            .as_array_mut()
            .context("the manifest's checkpoints are not a list")?
            .push(entry);
        manifest["epochs_done"] = json!(epoch);
        write_output(
            &config.out.join("manifest.json"),
            serde_json::to_string_pretty(manifest)?.as_bytes(),
        )?;
        Ok(())
    }
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
    let classes = match &config.coarse {
        Some(map) => map.iter().max().copied().unwrap_or(0) + 1,
        None => data.classes,
    };
    let network = Network::new(&vs.root(), config, classes);
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
    let checkpointing = Checkpointing {
        config,
        eval: &eval,
        network: &network,
        vs: &vs,
    };
    if config.initial_checkpoint && first_epoch == 1 {
        let entry = json!({"step": 0, "epoch": 0, "loss": null, "wall_seconds": 0.0});
        checkpointing.save(&optimizer, &mut manifest, entry)?;
    }
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
            let loss = training_step(
                config,
                &network,
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
            let entry = json!({"step": epoch * batches, "epoch": epoch, "loss": mean, "wall_seconds": started.elapsed().as_secs_f64()});
            checkpointing.save(&optimizer, &mut manifest, entry)?;
        }
    }
    bar.finish_and_clear();
    Ok(losses)
}
