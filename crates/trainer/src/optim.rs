//! The optimisers, written out over the var store so that their state (AdamW's moments, SGD's
//! momentum buffers and the step count) is saved with the model and restored by `--resume`.
//! The updates are PyTorch's (`torch.optim.AdamW`, `torch.optim.SGD` with Nesterov momentum),
//! which the parity test checks against a PyTorch replica. The two towers' logit scale and
//! bias are not decayed ([`NOT_DECAYED`]).

use anyhow::{Context, Result};
use std::path::Path;
use tch::nn::VarStore;
use tch::{Kind, Tensor};

/// Which optimiser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Optimizer {
    /// AdamW, betas (0.9, 0.999), eps 1e-8, decoupled weight decay.
    Adamw,
    /// SGD with Nesterov momentum 0.9 and L2 weight decay.
    Sgd,
}

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPS: f64 = 1e-8;
const MOMENTUM: f64 = 0.9;

/// Variables without weight decay: the two towers' logit scale and bias (open_clip exempts
/// them, as it does gains and biases).
pub const NOT_DECAYED: [&str; 2] = ["logit_scale", "logit_bias"];

/// An optimiser over the trainable variables of a var store, with its state.
pub struct Optimiser {
    kind: Optimizer,
    weight_decay: f64,
    /// Trainable variables by name (sorted).
    params: Vec<(String, Tensor)>,
    /// AdamW: first and second moments; SGD: the momentum buffer (and an unused zero).
    state: Vec<(Tensor, Tensor)>,
    /// Steps taken.
    step: i64,
}

impl Optimiser {
    /// An optimiser of the trainable variables of `vs`, with no state yet.
    pub fn new(vs: &VarStore, kind: Optimizer, weight_decay: f64) -> Optimiser {
        let mut params: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let state = params
            .iter()
            .map(|(_, p)| (p.zeros_like(), p.zeros_like()))
            .collect();
        Optimiser {
            kind,
            weight_decay,
            params,
            state,
            step: 0,
        }
    }

    /// Steps taken so far.
    pub fn steps(&self) -> i64 {
        self.step
    }

    /// Clear the gradients.
    pub fn zero_grad(&mut self) {
        for (_, p) in &self.params {
            let mut grad = p.grad();
            if grad.defined() {
                let _ = grad.zero_();
            }
        }
    }

    /// One update with learning rate `lr` from the gradients of the last backward pass.
    pub fn step(&mut self, lr: f64) {
        self.step += 1;
        let t = self.step as f64;
        tch::no_grad(|| {
            for ((name, p), (first, second)) in self.params.iter_mut().zip(self.state.iter_mut()) {
                let wd = match NOT_DECAYED.contains(&name.as_str()) {
                    true => 0.0,
                    false => self.weight_decay,
                };
                let grad = p.grad();
                if !grad.defined() {
                    continue;
                }
                match self.kind {
                    // The operations of torch.optim.AdamW (single-tensor), in its order, so
                    // that the rounding is the same: lerp, addcmul, addcdiv with the scalar
                    // applied to the first operand.
                    Optimizer::Adamw => {
                        let _ = p.g_mul_scalar_(1.0 - lr * wd);
                        let _ = first.lerp_(&grad, 1.0 - BETA1);
                        let _ = second.g_mul_scalar_(BETA2);
                        let _ = second.addcmul_(&(&grad * (1.0 - BETA2)), &grad);
                        let bias1 = 1.0 - BETA1.powf(t);
                        let bias2 = 1.0 - BETA2.powf(t);
                        let denominator = second.sqrt() / bias2.sqrt() + EPS;
                        let _ = p.addcdiv_(&(&*first * (-lr / bias1)), &denominator);
                    }
                    Optimizer::Sgd => {
                        let decayed = &grad + &*p * wd;
                        if self.step == 1 {
                            first.copy_(&decayed);
                        } else {
                            let _ = first.g_mul_scalar_(MOMENTUM);
                            let _ = first.g_add_(&decayed);
                        }
                        let nesterov = decayed + &*first * MOMENTUM;
                        let _ = p.g_add_(&(nesterov * -lr));
                    }
                }
            }
        });
    }

    /// Save the state (`step`, and `first.NAME` / `second.NAME` per variable) to `path`
    /// (safetensors).
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut tensors: Vec<(String, Tensor)> =
            vec![("step".into(), Tensor::from_slice(&[self.step]))];
        for ((name, _), (first, second)) in self.params.iter().zip(&self.state) {
            tensors.push((format!("first.{name}"), first.to_device(tch::Device::Cpu)));
            tensors.push((format!("second.{name}"), second.to_device(tch::Device::Cpu)));
        }
        embgeom_write::write_output_with(path, |temporary: &Path| {
            Tensor::write_safetensors(&tensors, temporary)
                .with_context(|| format!("cannot write {}", path.display()))
        })
    }

    /// Restore the state saved by [`Optimiser::save`]; every variable must be there.
    pub fn load(&mut self, path: &Path) -> Result<()> {
        let saved: std::collections::HashMap<String, Tensor> = Tensor::read_safetensors(path)
            .with_context(|| format!("cannot read {}", path.display()))?
            .into_iter()
            .collect();
        let get = |key: &str| {
            saved
                .get(key)
                .with_context(|| format!("{}: no {key}", path.display()))
        };
        self.step = get("step")?.int64_value(&[0]);
        for ((name, p), (first, second)) in self.params.iter().zip(self.state.iter_mut()) {
            let device = p.device();
            *first = get(&format!("first.{name}"))?
                .to_kind(Kind::Float)
                .to_device(device);
            *second = get(&format!("second.{name}"))?
                .to_kind(Kind::Float)
                .to_device(device);
        }
        Ok(())
    }
}
