//! pix2pix checkpoints: one safetensors file with the generator (`g/<name>`), the discriminator
//! (`d/<name>`), both Adam states (`opt_g/…`, `opt_d/…`) and, in its metadata, the format tag and the
//! run state as JSON (next epoch and batch, iterations done, the whole config — which with the
//! seed is all the random state there is: data order, jitter and dropout masks are pure functions
//! of (seed, epoch, index, iteration)).
//!
//! Invariants: written atomically (`nn::state::save_tensors`), so a crash or Ctrl-C during a save
//! keeps the previous file; loading checks the format tag (an `engine train` classifier checkpoint or
//! any other file is refused with a message saying what it is) and every tensor's name and shape.

use super::config::Pix2PixConfig;
use crate::models::{PatchGan, UnetGenerator};
use crate::nn::init::Init;
use crate::nn::{named_params, state, Module};
use crate::optim::Adam;
use crate::{DType, Device, Error, Result, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const FORMAT: &str = "engine-pix2pix-checkpoint-1";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunState {
    /// Next epoch to run (0-based) and the batch within it to start from.
    pub epoch: usize,
    pub batch: usize,
    /// Training iterations (batches) done so far; also the dropout step of the next one.
    pub iteration: usize,
    pub config: Pix2PixConfig,
}

/// `<run dir>/checkpoint.safetensors`.
pub fn checkpoint_path(out_dir: &Path) -> PathBuf {
    out_dir.join("checkpoint.safetensors")
}

fn prefixed(prefix: &str, v: Vec<(String, Tensor)>) -> impl Iterator<Item = (String, Tensor)> + '_ {
    v.into_iter()
        .map(move |(n, t)| (format!("{prefix}/{n}"), t))
}

fn module_tensors(m: &dyn Module) -> Vec<(String, Tensor)> {
    named_params(m)
        .into_iter()
        .map(|(n, p)| (n, p.tensor))
        .collect()
}

pub fn save(
    path: &Path,
    g: &UnetGenerator,
    d: &PatchGan,
    opt_g: &Adam,
    opt_d: &Adam,
    run: &RunState,
) -> Result<()> {
    let mut tensors: Vec<(String, Tensor)> = prefixed("g", module_tensors(g)).collect();
    tensors.extend(prefixed("d", module_tensors(d)));
    tensors.extend(prefixed("opt_g", opt_g.state_tensors()?));
    tensors.extend(prefixed("opt_d", opt_d.state_tensors()?));
    let meta = BTreeMap::from([
        ("format".to_string(), FORMAT.to_string()),
        (
            "run".to_string(),
            serde_json::to_string(run).expect("serialisable"),
        ),
    ]);
    state::save_tensors(path, &tensors, &meta)
}

/// The run state from the file's header (no tensor data is read).
pub fn read_run_state(path: &Path) -> Result<RunState> {
    let err = |msg: String| Error::Checkpoint {
        path: path.display().to_string(),
        msg,
    };
    if !path.is_file() {
        return Err(err(
            "no such file (a pix2pix run writes RUN_DIR/checkpoint.safetensors)".into(),
        ));
    }
    let meta = state::read_metadata(path)?;
    match meta.get("format").map(String::as_str) {
        Some(FORMAT) => {}
        Some(crate::train::checkpoint::FORMAT) => {
            return Err(err(
                "this is an `engine train` classifier checkpoint, not a pix2pix one".into(),
            ))
        }
        Some("torchvision-state-dict") => {
            return Err(err(
                "this holds torchvision ResNet weights, not a pix2pix checkpoint".into(),
            ))
        }
        other => {
            return Err(err(format!(
                "not a pix2pix checkpoint (format tag {}, expected {FORMAT})",
                other.unwrap_or("missing")
            )))
        }
    }
    serde_json::from_str(
        meta.get("run")
            .ok_or_else(|| err("missing run state".into()))?,
    )
    .map_err(|e| err(format!("unreadable run state: {e}")))
}

/// The tensors under `prefix/`, prefix removed.
fn take(tensors: &BTreeMap<String, Tensor>, prefix: &str) -> BTreeMap<String, Tensor> {
    tensors
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(prefix)?.to_string(), v.clone())))
        .collect()
}

/// Loads a checkpoint into already built networks (and optimisers, when given); returns its run
/// state.
pub fn load(
    path: &Path,
    g: &UnetGenerator,
    d: Option<&PatchGan>,
    opts: Option<(&mut Adam, &mut Adam)>,
) -> Result<RunState> {
    let run = read_run_state(path)?;
    let (tensors, _) = state::load_tensors(path, Device::Cpu)?;
    state::load_into(path, take(&tensors, "g/"), g, true)?;
    if let Some(d) = d {
        state::load_into(path, take(&tensors, "d/"), d, true)?;
    }
    if let Some((opt_g, opt_d)) = opts {
        opt_g.load_state_tensors(&take(&tensors, "opt_g/"))?;
        opt_d.load_state_tensors(&take(&tensors, "opt_d/"))?;
    }
    Ok(run)
}

/// The generator of a checkpoint, built from its config on `device`, and the run state.
pub fn load_generator(path: &Path, device: Device) -> Result<(UnetGenerator, RunState)> {
    let run = read_run_state(path)?;
    let g = UnetGenerator::new(
        run.config.generator.clone(),
        &mut Init::new(run.config.seed, DType::F32, device),
    )?;
    load(path, &g, None, None)?;
    Ok((g, run))
}
