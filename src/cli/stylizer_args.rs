//! The flags that say where and with what the AdaIN stylizer runs, shared by `engine stylize` and
//! `engine stylize-idx`: its weights (the installed copies, two files, or seeded random networks
//! for tests), the device and the precision.
//!
//! Invariants: `--fp16` is refused on the CPU (whose stylizer runs in f32) before any weights are
//! read; random weights are seeded by the command's own seed, so a rerun draws the same networks;
//! weight files are identified by their bytes, never by their paths.

use super::{device, DeviceArg};
use crate::models::Stylizer;
use crate::stylize::random_stylizer;
use crate::{DType, Device, Error, Result};
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub(super) struct StylizerArgs {
    /// The encoder weights: vgg_normalised.pth converted by tools/convert_adain_weights.py
    /// (default: the installed copy, see below).
    #[arg(long)]
    vgg: Option<PathBuf>,
    /// The decoder weights: decoder.pth converted by tools/convert_adain_weights.py, or the
    /// decoder.safetensors of `engine train-decoder` (default: the installed copy).
    #[arg(long)]
    decoder: Option<PathBuf>,
    /// For testing only: seeded random networks of this width (64 is the real size) instead of
    /// --vgg/--decoder; the outputs are not paintings.
    #[arg(long, value_name = "WIDTH", conflicts_with_all = ["vgg", "decoder"])]
    random_weights: Option<usize>,
    /// Where the stylizer runs (auto: CUDA when a GPU is usable, else the CPU).
    #[arg(long, value_enum, default_value = "auto")]
    device: DeviceArg,
    /// FP16 weights and activations (CUDA only).
    #[arg(long)]
    fp16: bool,
}

impl StylizerArgs {
    /// The device and precision these flags name; `--fp16` on the CPU is an error.
    pub(super) fn placement(&self) -> Result<(Device, DType)> {
        let dev = device(self.device)?;
        if self.fp16 && dev.is_cpu() {
            return Err(Error::Msg(
                "--fp16 needs a CUDA device (--device cuda); the CPU runs in f32".into(),
            ));
        }
        Ok((dev, if self.fp16 { DType::F16 } else { DType::F32 }))
    }

    /// Where the weights come from: seeded random networks (seeded by `seed`) or the two files
    /// (given, or the installed copies).
    pub(super) fn source(&self, seed: u64) -> Result<WeightsSource> {
        if let Some(width) = self.random_weights {
            return Ok(WeightsSource::Random { width, seed });
        }
        let (vgg, decoder) =
            crate::stylize::weights::resolve_pair(self.vgg.as_deref(), self.decoder.as_deref())?;
        Ok(WeightsSource::Files { vgg, decoder })
    }
}

/// Where a stylizer's weights come from.
pub(super) enum WeightsSource {
    Random { width: usize, seed: u64 },
    Files { vgg: PathBuf, decoder: PathBuf },
}

impl WeightsSource {
    pub(super) fn load(&self, dtype: DType, dev: Device) -> Result<Stylizer> {
        match self {
            WeightsSource::Random { width, seed } => random_stylizer(*seed, *width, dtype, dev),
            WeightsSource::Files { vgg, decoder } => Stylizer::load(vgg, decoder, dtype, dev),
        }
    }

    /// What identifies the weights in a job's recorded settings: the random width and seed, or
    /// the two files' contents (size and hash, not their paths). A job that records it reads it
    /// before `load`, so the record cannot describe a file rewritten after loading.
    pub(super) fn identity(&self) -> Result<String> {
        Ok(match self {
            WeightsSource::Random { width, seed } => format!("random width {width} seed {seed}"),
            WeightsSource::Files { vgg, decoder } => {
                crate::stylize::weights::pair_identity(vgg, decoder)?
            }
        })
    }
}

/// " (fp16)" after a device name in the commands' first line, or nothing.
pub(super) fn precision_note(dtype: DType) -> &'static str {
    if dtype == DType::F16 {
        " (fp16)"
    } else {
        ""
    }
}
