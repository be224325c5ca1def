//! Checkpoints of decoder training, and the decoder weights file exported beside them.
//!
//! - `<out_dir>/checkpoint.safetensors`: the classification trainer's layout
//!   (`train::checkpoint::save_state`): the decoder under `model/<name>`, Adam's state under
//!   `optim/<name>`, and in the metadata `format` = `engine-decoder-checkpoint-1` and `run`, the
//!   `DecoderRunState` as JSON (next iteration, data-stream positions, loss scaler, full config).
//! - `<out_dir>/decoder.safetensors`: the decoder alone, f32, under the exact key names of the
//!   reference `decoder.pth` (`1.weight` … `28.bias`), so `Decoder::load`, `Stylizer::load` and
//!   `engine stylize --decoder` take it as they take a converted `decoder.pth`, and `--decoder`
//!   continues training from it. It cannot be the checkpoint itself: `Decoder::load` is strict
//!   and would refuse the optimiser tensors.
//!
//! Both are written atomically (temp file, fsync, rename), the checkpoint first, so a crash leaves
//! the previous pair or a newer checkpoint with the previous decoder file.

use super::config::DecoderTrainConfig;
use crate::models::stylizer::Decoder;
use crate::nn::{named_params, state};
use crate::optim::{Adam, DynamicLossScaler};
use crate::train::checkpoint::{parse_run, save_state, split_state};
use crate::{DType, Device, Result, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const FORMAT: &str = "engine-decoder-checkpoint-1";

/// Where a run stands.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DecoderRunState {
    /// Iterations completed: the next one to run (0-based).
    pub iteration: usize,
    /// Images drawn so far from the content and the style stream (`iteration · batch_size`: the
    /// streams are functions of the position, so this is where they continue).
    pub content_position: u64,
    pub style_position: u64,
    pub scaler: DynamicLossScaler,
    /// Usable images found in the content and style folders when the run started; a resumed run
    /// warns when the folders changed since (its data order then differs).
    pub content_images: usize,
    pub style_images: usize,
    pub config: DecoderTrainConfig,
}

pub fn checkpoint_path(out_dir: &Path) -> PathBuf {
    out_dir.join("checkpoint.safetensors")
}

pub fn decoder_path(out_dir: &Path) -> PathBuf {
    out_dir.join("decoder.safetensors")
}

pub fn save(path: &Path, decoder: &Decoder, opt: &Adam, run: &DecoderRunState) -> Result<()> {
    save_state(path, decoder, opt.state_tensors()?, FORMAT, run)
}

/// Reads only the run state (the file's header).
pub fn read_run_state(path: &Path) -> Result<DecoderRunState> {
    parse_run(
        path,
        &state::read_metadata(path)?,
        FORMAT,
        "engine decoder-training checkpoint",
    )
}

/// Loads the decoder's weights and Adam's state from a checkpoint into a built decoder (whose
/// width must be the checkpoint's) and optimiser; returns the run state.
pub fn load(path: &Path, decoder: &Decoder, opt: &mut Adam) -> Result<DecoderRunState> {
    let run = read_run_state(path)?;
    let (tensors, _) = state::load_tensors(path, Device::Cpu)?;
    let (model_t, optim_t) = split_state(tensors);
    state::load_into(path, model_t, decoder, true)?;
    opt.load_state_tensors(&optim_t)?;
    Ok(run)
}

/// Writes the decoder's weights, as f32 under the reference key names, to `path`; the metadata
/// records what made it.
pub fn export_decoder(path: &Path, decoder: &Decoder, iteration: usize) -> Result<()> {
    let tensors = named_params(decoder)
        .into_iter()
        .map(|(n, p)| Ok((n, p.tensor.detach().to_dtype(DType::F32)?)))
        .collect::<Result<Vec<(String, Tensor)>>>()?;
    let meta = BTreeMap::from([
        ("source".to_string(), "engine train-decoder".to_string()),
        ("iteration".to_string(), iteration.to_string()),
        ("width".to_string(), decoder.width().to_string()),
    ]);
    state::save_tensors(path, &tensors, &meta)
}
