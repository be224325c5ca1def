//! Training checkpoints: one safetensors file holding the model (`model/<name>`), the optimiser state
//! (`optim/<name>`) and, in its metadata, the run state (next epoch and batch, global step, loss
//! scaler, full config) as JSON. Written atomically (temp file, fsync, rename), so a crash or Ctrl-C
//! during a save leaves the previous checkpoint intact. Loading refuses a checkpoint of another
//! architecture with a message naming both.

use super::TrainConfig;
use crate::models::ResNet;
use crate::nn::init::Init;
use crate::nn::{named_params, state, Module};
use crate::optim::{DynamicLossScaler, Sgd};
use crate::{DType, Device, Error, Result, Tensor};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

pub const FORMAT: &str = "engine-checkpoint-1";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunState {
    /// Next epoch to run (0-based) and the batch within it to start from.
    pub epoch: usize,
    pub batch: usize,
    /// Optimiser steps taken so far (including skipped ones).
    pub step: usize,
    pub scaler: DynamicLossScaler,
    pub best_top1: f64,
    pub config: TrainConfig,
    /// The current epoch's figures so far, so an epoch resumed mid-way reports the whole epoch, not
    /// its second part. Absent from checkpoints written before they were kept: zero.
    #[serde(default)]
    pub this_epoch: EpochTotals,
}

/// What an epoch has counted so far (zero when it starts).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct EpochTotals {
    /// Training-loss sum over images (loss × batch size, finite losses only) and those images.
    pub loss_sum: f64,
    pub loss_images: usize,
    /// Optimiser steps skipped for non-finite gradients, and unreadable samples skipped.
    pub skipped_steps: usize,
    pub skipped_samples: usize,
}

impl EpochTotals {
    /// The mean training loss so far (0 before any finite loss).
    pub fn mean_loss(&self) -> f64 {
        self.loss_sum / self.loss_images.max(1) as f64
    }
}

impl RunState {
    /// The state of a run about to take its first step under `config` (loss scaling on with
    /// `config.fp16`).
    pub fn start(config: TrainConfig) -> RunState {
        RunState {
            epoch: 0,
            batch: 0,
            step: 0,
            scaler: if config.fp16 {
                DynamicLossScaler::default()
            } else {
                DynamicLossScaler::disabled()
            },
            best_top1: 0.0,
            config,
            this_epoch: EpochTotals::default(),
        }
    }
}

pub fn save(path: &Path, model: &dyn Module, opt: &Sgd, run: &RunState) -> Result<()> {
    save_state(path, model, opt.state_tensors(), FORMAT, run)
}

/// Writes a training checkpoint atomically: `model/<name>` for every parameter and buffer of
/// `model`, `optim/<name>` for the optimiser state, and metadata `format` plus `run` (the run state
/// as JSON). Shared by the trainers; each has its own `format` and run-state type.
pub(crate) fn save_state(
    path: &Path,
    model: &dyn Module,
    optim: Vec<(String, Tensor)>,
    format: &str,
    run: &impl Serialize,
) -> Result<()> {
    let mut tensors: Vec<(String, Tensor)> = named_params(model)
        .into_iter()
        .map(|(n, p)| (format!("model/{n}"), p.tensor))
        .collect();
    tensors.extend(optim.into_iter().map(|(n, t)| (format!("optim/{n}"), t)));
    let mut meta = BTreeMap::new();
    meta.insert("format".to_string(), format.to_string());
    meta.insert(
        "run".to_string(),
        serde_json::to_string(run).expect("serialisable"),
    );
    state::save_tensors(path, &tensors, &meta)
}

/// Reads only the run state from the file's header (to decide how to build the model before loading
/// weights); the tensor data is not read.
pub fn read_run_state(path: &Path) -> Result<RunState> {
    parse_meta(path, &state::read_metadata(path)?)
}

fn parse_meta(path: &Path, meta: &BTreeMap<String, String>) -> Result<RunState> {
    parse_run(path, meta, FORMAT, "engine training checkpoint")
}

/// The run state of a checkpoint written by `save_state`, from its metadata; `format` must match
/// (`what` names the kind of checkpoint in the error).
pub(crate) fn parse_run<T: DeserializeOwned>(
    path: &Path,
    meta: &BTreeMap<String, String>,
    format: &str,
    what: &str,
) -> Result<T> {
    let err = |msg: String| Error::Checkpoint {
        path: path.display().to_string(),
        msg,
    };
    if meta.get("format").map(String::as_str) != Some(format) {
        return Err(err(format!(
            "not an {what} (format {:?}, expected {format})",
            meta.get("format")
        )));
    }
    serde_json::from_str(
        meta.get("run")
            .ok_or_else(|| err("missing run state".into()))?,
    )
    .map_err(|e| err(format!("unreadable run state: {e}")))
}

/// A checkpoint's tensors split into its `model/` and `optim/` parts, prefixes removed.
pub(crate) fn split_state(
    tensors: BTreeMap<String, Tensor>,
) -> (BTreeMap<String, Tensor>, BTreeMap<String, Tensor>) {
    let mut model_t = BTreeMap::new();
    let mut optim_t = BTreeMap::new();
    for (k, v) in tensors {
        if let Some(n) = k.strip_prefix("model/") {
            model_t.insert(n.to_string(), v);
        } else if let Some(n) = k.strip_prefix("optim/") {
            optim_t.insert(n.to_string(), v);
        }
    }
    (model_t, optim_t)
}

/// Loads weights (and optimiser state when `opt` is given) into an already built model, checking
/// that the checkpoint's architecture is `expected`.
pub fn load(
    path: &Path,
    model: &dyn Module,
    opt: Option<&mut Sgd>,
    expected: &crate::models::ResNetConfig,
) -> Result<RunState> {
    let device = named_params(model)
        .first()
        .map(|(_, p)| p.tensor.device())
        .unwrap_or(Device::Cpu);
    let (tensors, meta) = state::load_tensors(path, device)?;
    let run = parse_meta(path, &meta)?;
    if &run.config.model != expected {
        return Err(Error::Checkpoint {
            path: path.display().to_string(),
            msg: format!(
                "it is from another architecture: checkpoint {:?}, requested {:?}",
                run.config.model, expected
            ),
        });
    }
    let (model_t, optim_t) = split_state(tensors);
    let mut problems = Vec::new();
    for (name, p) in named_params(model) {
        match model_t.get(&name) {
            Some(t) if t.shape() == p.tensor.shape() => p.tensor.assign(t)?,
            Some(t) => problems.push(format!(
                "{name}: shape {:?} vs model {:?}",
                t.shape(),
                p.tensor.shape()
            )),
            None => problems.push(format!("missing {name}")),
        }
    }
    if !problems.is_empty() {
        return Err(Error::Checkpoint {
            path: path.display().to_string(),
            msg: problems.join("; "),
        });
    }
    if let Some(opt) = opt {
        opt.load_state_tensors(&optim_t)?;
    }
    Ok(run)
}

/// Builds the network a training checkpoint describes (architecture from its run state) in `dtype`
/// on `device` and loads its weights: what `engine eval` and `engine predict` do, for library users
/// (e.g. a perceptual loss over a trained classifier). Returns the run state too (its config holds
/// the input normalisation the network was trained with).
pub fn load_model(path: &Path, dtype: DType, device: Device) -> Result<(ResNet, RunState)> {
    let model_cfg = read_run_state(path)?.config.model;
    let model = ResNet::new(model_cfg.clone(), &mut Init::new(0, dtype, device))?;
    let run = load(path, &model, None, &model_cfg)?;
    Ok((model, run))
}

/// Builds the ResNet a checkpoint describes (f16 when it was trained with `--fp16`, else f32) on
/// `device` and loads its weights: the one way `eval`, `predict`, distillation teachers and
/// perceptual losses get a trained model.
pub fn load_resnet(path: &Path, device: Device) -> Result<(crate::models::ResNet, RunState)> {
    let dtype = if read_run_state(path)?.config.fp16 {
        DType::F16
    } else {
        DType::F32
    };
    load_model(path, dtype, device)
}

/// Copies weights into a freshly built model for fine-tuning, from an engine training checkpoint
/// (its `model/` tensors) or a plain state dict (a converted torchvision file). A classifier head
/// (`fc.*`) of another shape is left as initialised and returned by name; any other tensor that is
/// missing from the file or shaped differently is an error (another architecture).
pub fn init_from(path: &Path, model: &dyn Module) -> Result<Vec<String>> {
    let device = named_params(model)
        .first()
        .map(|(_, p)| p.tensor.device())
        .unwrap_or(Device::Cpu);
    let (tensors, meta) = state::load_tensors(path, device)?;
    let prefix = if meta.get("format").map(String::as_str) == Some(FORMAT) {
        "model/"
    } else {
        ""
    };
    let mut kept_fresh = Vec::new();
    let mut missing = Vec::new();
    for (name, p) in named_params(model) {
        match tensors.get(&format!("{prefix}{name}")) {
            Some(t) if t.shape() == p.tensor.shape() => p.tensor.assign(t)?,
            Some(_) if name.starts_with("fc.") => kept_fresh.push(name),
            Some(t) => missing.push(format!(
                "{name} is {:?}, not {:?}",
                t.shape(),
                p.tensor.shape()
            )),
            None => missing.push(format!("{name} missing")),
        }
    }
    if !missing.is_empty() {
        return Err(Error::Checkpoint {
            path: path.display().to_string(),
            msg: format!(
                "cannot initialise this model from it: {} tensor(s) do not fit ({}); is it the same architecture?",
                missing.len(),
                missing.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
            ),
        });
    }
    Ok(kept_fresh)
}

/// A perceptual loss over the network of an engine training checkpoint (`engine train`),
/// normalised with the mean/std of that run's data augmentation.
pub fn perceptual_loss(
    path: &Path,
    config: crate::models::PerceptualConfig,
    dtype: DType,
    device: Device,
) -> Result<crate::models::PerceptualLoss> {
    let (net, run) = load_model(path, dtype, device)?;
    let aug = &run.config.augment;
    let widen = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
    crate::models::PerceptualLoss::new(net, &widen(&aug.mean), &widen(&aug.std), config)
}
