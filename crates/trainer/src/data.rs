//! Datasets: Fashion-MNIST (IDX files), the UCI digits (`data/digits.csv`), and any `.npy`
//! images with `.npy` labels. Each gives train images and a fixed evaluation set.

use anyhow::{bail, Context, Result};
use std::path::Path;
use tch::{Kind, Tensor};

/// Images (N, 1, H, W) in [0, 1] and their labels (N).
pub struct Split {
    pub images: Tensor,
    pub labels: Tensor,
}

/// Train and evaluation splits.
pub struct Dataset {
    pub name: String,
    pub train: Split,
    pub eval: Split,
    /// Number of (fine) classes.
    pub classes: i64,
    /// Names of the (fine) classes, when the dataset has them.
    pub class_names: Option<Vec<String>>,
}

/// Fashion-MNIST's class names, by label.
pub const FASHION_NAMES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// The coarse classes of `--coarse fashion`, by coarse label.
pub const FASHION_COARSE_NAMES: [&str; 4] = ["tops", "bottoms", "footwear", "bags"];

/// The fine-to-coarse map of `--coarse fashion`.
pub const FASHION_COARSE: [i64; 10] = [0, 1, 0, 0, 0, 2, 0, 2, 3, 2];

/// Read an IDX file (big-endian magic 0x0803 images / 0x0801 labels, then dimensions).
fn read_idx(path: &Path) -> Result<(Vec<usize>, Vec<u8>)> {
    let bytes = std::fs::read(path).with_context(|| {
        format!(
            "{}: cannot read (run scripts/fetch-fashion-mnist.sh)",
            path.display()
        )
    })?;
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 || bytes[2] != 8 {
        bail!("{}: not an IDX file of unsigned bytes", path.display());
    }
    let rank = bytes[3] as usize;
    let header = 4 + 4 * rank;
    if bytes.len() < header {
        bail!("{}: truncated IDX header", path.display());
    }
    let dims: Vec<usize> = (0..rank)
        .map(|k| {
            u32::from_be_bytes(bytes[4 + 4 * k..8 + 4 * k].try_into().expect("4 bytes")) as usize
        })
        .collect();
    let count: usize = dims.iter().product();
    if bytes.len() < header + count {
        bail!(
            "{}: truncated: needs {count} values, has {}",
            path.display(),
            bytes.len() - header
        );
    }
    Ok((dims, bytes[header..header + count].to_vec()))
}

fn split_from_idx(images: &Path, labels: &Path) -> Result<Split> {
    let (dims, pixels) = read_idx(images)?;
    let (ldims, ys) = read_idx(labels)?;
    if dims.len() != 3 || ldims.len() != 1 || dims[0] != ldims[0] {
        bail!(
            "{} and {}: expected (N, H, W) images and N labels, got {dims:?} and {ldims:?}",
            images.display(),
            labels.display()
        );
    }
    let (n, h, w) = (dims[0] as i64, dims[1] as i64, dims[2] as i64);
    Ok(Split {
        images: Tensor::from_slice(&pixels)
            .view([n, 1, h, w])
            .to_kind(Kind::Float)
            / 255.0,
        labels: Tensor::from_slice(&ys).to_kind(Kind::Int64),
    })
}

/// The first `per_class` rows of each class, in order.
fn first_per_class(split: &Split, classes: i64, per_class: i64) -> Split {
    let labels: Vec<i64> = Vec::<i64>::try_from(&split.labels).expect("int64 labels");
    let mut taken = vec![0i64; classes as usize];
    let rows: Vec<i64> = labels
        .iter()
        .enumerate()
        .filter_map(|(i, &y)| {
            let t = &mut taken[y as usize];
            (*t < per_class).then(|| {
                *t += 1;
                i as i64
            })
        })
        .collect();
    let index = Tensor::from_slice(&rows);
    Split {
        images: split.images.index_select(0, &index),
        labels: split.labels.index_select(0, &index),
    }
}

/// Fashion-MNIST from the four decompressed IDX files in `dir`; the evaluation set is the
/// first `eval_size / 10` test images of each class (2,000 by default).
pub fn fashion_mnist(dir: &Path, eval_size: i64) -> Result<Dataset> {
    let train = split_from_idx(
        &dir.join("train-images-idx3-ubyte"),
        &dir.join("train-labels-idx1-ubyte"),
    )?;
    let test = split_from_idx(
        &dir.join("t10k-images-idx3-ubyte"),
        &dir.join("t10k-labels-idx1-ubyte"),
    )?;
    Ok(Dataset {
        name: "fashion-mnist".into(),
        eval: first_per_class(&test, 10, (eval_size / 10).max(1)),
        train,
        classes: 10,
        class_names: Some(FASHION_NAMES.iter().map(|n| n.to_string()).collect()),
    })
}

/// Rows `i % 5 != 0` for training, `i % 5 == 0` for evaluation.
fn split_every_fifth(images: Tensor, labels: Tensor, name: &str, classes: i64) -> Dataset {
    let n = images.size()[0];
    let eval: Vec<i64> = (0..n).filter(|i| i % 5 == 0).collect();
    let train: Vec<i64> = (0..n).filter(|i| i % 5 != 0).collect();
    let pick = |rows: &[i64]| {
        let index = Tensor::from_slice(rows);
        Split {
            images: images.index_select(0, &index),
            labels: labels.index_select(0, &index),
        }
    };
    Dataset {
        name: name.into(),
        train: pick(&train),
        eval: pick(&eval),
        classes,
        class_names: None,
    }
}

/// The UCI digits from `digits.csv` (64 pixel columns 0..16, then the label; a header row).
pub fn digits(csv: &Path) -> Result<Dataset> {
    let text =
        std::fs::read_to_string(csv).with_context(|| format!("{}: cannot read", csv.display()))?;
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for (row, line) in text
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .enumerate()
    {
        let values: Vec<f32> = line
            .split(',')
            .map(|v| v.trim().parse::<f32>())
            .collect::<std::result::Result<_, _>>()
            .with_context(|| format!("{}: row {row} is not numeric", csv.display()))?;
        if values.len() != 65 {
            bail!(
                "{}: row {row} has {} values, expected 64 pixels and a label",
                csv.display(),
                values.len()
            );
        }
        pixels.extend(values[..64].iter().map(|v| v / 16.0));
        labels.push(values[64] as i64);
    }
    let n = labels.len() as i64;
    Ok(split_every_fifth(
        Tensor::from_slice(&pixels).view([n, 1, 8, 8]),
        Tensor::from_slice(&labels),
        "digits",
        10,
    ))
}

/// Images `(N, H, W)` or `(N, 1, H, W)` and labels `(N)` from `.npy` files; pixel values are
/// scaled to [0, 1] by the maximum when it exceeds 1.
pub fn npy(images: &Path, labels: &Path) -> Result<Dataset> {
    let x = Tensor::read_npy(images)
        .with_context(|| format!("{}: cannot read as .npy", images.display()))?;
    let y = Tensor::read_npy(labels)
        .with_context(|| format!("{}: cannot read as .npy", labels.display()))?;
    let x = match x.size().as_slice() {
        [n, h, w] => x.view([*n, 1, *h, *w]),
        [_, 1, _, _] => x,
        other => bail!(
            "{}: expected images (N, H, W) or (N, 1, H, W), got {other:?}",
            images.display()
        ),
    }
    .to_kind(Kind::Float);
    let y = y.to_kind(Kind::Int64).flatten(0, -1);
    if y.size()[0] != x.size()[0] {
        bail!(
            "{}: {} labels for {} images",
            labels.display(),
            y.size()[0],
            x.size()[0]
        );
    }
    let max = x.max().double_value(&[]);
    let x = if max > 1.0 { x / max } else { x };
    let classes = y.max().int64_value(&[]) + 1;
    Ok(split_every_fifth(x, y, "npy", classes))
}

/// Fine-to-coarse label map: `fashion` (tops: T-shirt, pullover, dress, coat, shirt; bottoms:
/// trouser; footwear: sandal, sneaker, ankle boot; bags: bag) or a comma-separated list giving
/// the coarse class of each fine class.
pub fn coarse_map(spec: &str, classes: i64) -> Result<Vec<i64>> {
    let map: Vec<i64> = if spec == "fashion" {
        FASHION_COARSE.to_vec()
    } else {
        spec.split(',')
            .map(|v| v.trim().parse::<i64>())
            .collect::<std::result::Result<_, _>>()
            .with_context(|| {
                format!("--coarse {spec}: expected 'fashion' or a comma-separated list of integers")
            })?
    };
    if map.len() as i64 != classes || map.iter().any(|&c| c < 0) {
        bail!(
            "--coarse {spec}: needs {classes} non-negative entries (one per class), got {}",
            map.len()
        );
    }
    Ok(map)
}
