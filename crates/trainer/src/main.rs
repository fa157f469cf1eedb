//! `embgeom-train`: train a small encoder and write embedding checkpoints for embgeom.

use anyhow::{bail, Result};
use clap::Parser;
use embgeom_trainer::augment::Augment;
use embgeom_trainer::data::{coarse_map, digits, fashion_mnist, npy};
use embgeom_trainer::losses::Loss;
use embgeom_trainer::train::{images_per_second, train, Config, Dtype, Optimizer};
use std::path::PathBuf;
use std::process::ExitCode;
use tch::Device;

/// Train a small CNN encoder with a contrastive or supervised loss, or two towers (the top and
/// the bottom half of each image) with CLIP's or SigLIP's loss, and write embedding checkpoints
/// (`.safetensors` + `manifest.json`) that `embgeom track` and `embgeom report` read.
#[derive(Parser, Debug)]
#[command(name = "embgeom-train", version)]
struct Args {
    /// Dataset: fashion-mnist (IDX files in --data), digits (data/digits.csv), or npy (--images, --labels).
    #[arg(long, default_value = "digits")]
    dataset: String,
    /// Folder of the Fashion-MNIST IDX files, or the digits CSV.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Images (.npy, (N, H, W) or (N, 1, H, W)) for --dataset npy.
    #[arg(long)]
    images: Option<PathBuf>,
    /// Labels (.npy) for --dataset npy.
    #[arg(long)]
    labels: Option<PathBuf>,
    /// Train on coarse labels: 'fashion' (tops/bottoms/footwear/bags) or a list 'c0,c1,...'; fine labels become subclasses.
    #[arg(long)]
    coarse: Option<String>,
    #[arg(long, value_enum, default_value = "supcon")]
    loss: Loss,
    #[arg(long, default_value_t = 10)]
    epochs: i64,
    #[arg(long, default_value_t = 256)]
    batch_size: i64,
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    #[arg(long, default_value_t = 1e-4)]
    weight_decay: f64,
    #[arg(long, value_enum, default_value = "adamw")]
    optimizer: Optimizer,
    /// Temperature of the contrastive losses (clip: the learnable temperature's start).
    #[arg(long, default_value_t = 0.1)]
    temperature: f64,
    /// Embedding (projection head) dimension.
    #[arg(long, default_value_t = 128)]
    dim: i64,
    #[arg(long, default_value_t = 0)]
    seed: i64,
    /// Write a checkpoint every N epochs (and after the last).
    #[arg(long, default_value_t = 1)]
    eval_every: i64,
    /// Images in the evaluation set (Fashion-MNIST: the first eval_size/10 test images of each class).
    #[arg(long, default_value_t = 2000)]
    eval_size: i64,
    /// Use at most this many training images per epoch.
    #[arg(long)]
    train_limit: Option<i64>,
    /// Largest random shift in pixels (random crop with padding).
    #[arg(long, default_value_t = 2)]
    pad: i64,
    /// No random horizontal flips (default for digits).
    #[arg(long)]
    no_flip: bool,
    /// Std of the Gaussian pixel noise.
    #[arg(long, default_value_t = 0.05)]
    noise: f64,
    /// Weight of the uniformity term of align-uniform.
    #[arg(long, default_value_t = 1.0)]
    uniformity_weight: f64,
    /// Weight of the class-conditional InfoNCE term of supcon-spread.
    #[arg(long, default_value_t = 0.5)]
    spread_weight: f64,
    #[arg(long, value_enum, default_value = "f32")]
    dtype: Dtype,
    /// cpu, cuda or auto.
    #[arg(long, default_value = "auto")]
    device: String,
    /// Output folder of the run (checkpoints, manifest.json, model.safetensors,
    /// optimizer.safetensors); required unless --bench-steps.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue the run in --out from its last checkpoint.
    #[arg(long)]
    resume: bool,
    /// Also write the untrained network's checkpoint (epoch 0, step 0) before training.
    #[arg(long)]
    initial_checkpoint: bool,
    /// Measure training throughput instead of training: N steps (after 3 warm-up steps) on
    /// random images of --bench-size pixels; prints one JSON line (images per second).
    #[arg(long, value_name = "N")]
    bench_steps: Option<i64>,
    /// Side of the random images of --bench-steps.
    #[arg(long, default_value_t = 28)]
    bench_size: i64,
    /// With --bench-steps on CUDA: autocast (libtorch's default reduced precision, f16).
    #[arg(long)]
    amp: bool,
}

impl Args {
    /// The training configuration of these arguments.
    fn config(&self, device: Device, flip: bool, coarse: Option<Vec<i64>>, out: PathBuf) -> Config {
        Config {
            loss: self.loss,
            epochs: self.epochs,
            batch_size: self.batch_size,
            lr: self.lr,
            weight_decay: self.weight_decay,
            optimizer: self.optimizer,
            temperature: self.temperature,
            dim: self.dim,
            seed: self.seed,
            eval_every: self.eval_every,
            augment: Augment {
                pad: self.pad,
                flip,
                noise: self.noise,
            },
            uniformity_weight: self.uniformity_weight,
            spread_weight: self.spread_weight,
            dtype: self.dtype,
            coarse,
            train_limit: self.train_limit,
            out,
            resume: self.resume,
            initial_checkpoint: self.initial_checkpoint,
            device,
            progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
        }
    }
}

fn run(args: Args) -> Result<()> {
    let cuda = embgeom_trainer::load_cuda();
    let device = match args.device.as_str() {
        "cpu" => Device::Cpu,
        "cuda" if tch::Cuda::is_available() => Device::Cuda(0),
        "cuda" => bail!(
            "--device cuda: no CUDA device (libtorch_cuda.so {})",
            if cuda.is_some() {
                "loaded"
            } else {
                "not found"
            }
        ),
        "auto" => Device::cuda_if_available(),
        other => bail!("--device {other}: expected cpu, cuda or auto"),
    };
    if let Some(steps) = args.bench_steps {
        return bench(&args, device, steps);
    }
    let data = match args.dataset.as_str() {
        "fashion-mnist" => fashion_mnist(
            &args
                .data
                .clone()
                .unwrap_or_else(|| "data/fashion-mnist".into()),
            args.eval_size,
        )?,
        "digits" => digits(
            &args
                .data
                .clone()
                .unwrap_or_else(|| "data/digits.csv".into()),
        )?,
        "npy" => match (&args.images, &args.labels) {
            (Some(images), Some(labels)) => npy(images, labels)?,
            _ => bail!("--dataset npy needs --images and --labels"),
        },
        other => bail!("--dataset {other}: expected fashion-mnist, digits or npy"),
    };
    let Some(out) = args.out.clone() else {
        bail!("--out is required: the folder of the run's checkpoints");
    };
    let coarse = args
        .coarse
        .as_deref()
        .map(|spec| coarse_map(spec, data.classes))
        .transpose()?;
    let flip = !args.no_flip && data.name != "digits";
    let config = args.config(device, flip, coarse, out.clone());
    let started = std::time::Instant::now();
    let losses = train(&config, &data)?;
    let images =
        (losses.len() as i64 * config.train_limit.unwrap_or(data.train.images.size()[0])) as f64;
    println!(
        "trained {} epochs on {:?} in {:.1} s ({:.0} augmented views/s, checkpoints included); loss {:.4} -> {:.4}; checkpoints in {}",
        losses.len(),
        device,
        started.elapsed().as_secs_f64(),
        2.0 * images / started.elapsed().as_secs_f64(),
        losses.first().copied().unwrap_or(f64::NAN),
        losses.last().copied().unwrap_or(f64::NAN),
        out.display()
    );
    drop(cuda);
    Ok(())
}

/// `--bench-steps`: images per second of training steps, as one JSON line.
fn bench(args: &Args, device: Device, steps: i64) -> Result<()> {
    if steps < 1 || args.batch_size < 2 {
        bail!("--bench-steps must be at least 1 and --batch-size at least 2");
    }
    let config = args.config(device, !args.no_flip, None, PathBuf::new());
    let rate = images_per_second(&config, steps, 3, args.bench_size, args.amp);
    let name = match device {
        Device::Cuda(_) => "CUDA".to_string(),
        _ => "CPU".to_string(),
    };
    println!(
        "{}",
        serde_json::json!({
            "implementation": "embgeom-train", "device": name, "batch_size": args.batch_size,
            "precision": if args.amp && device.is_cuda() { "f16 autocast" } else { "f32" },
            "images_per_second": rate,
        })
    );
    Ok(())
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}
