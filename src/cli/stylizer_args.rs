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

    /// The stylizer these flags name (random weights seeded by `seed`) and where its weights came
    /// from.
    pub(super) fn load(
        &self,
        seed: u64,
        dtype: DType,
        dev: Device,
    ) -> Result<(Stylizer, WeightsSource)> {
        if let Some(width) = self.random_weights {
            let s = random_stylizer(seed, width, dtype, dev)?;
            return Ok((s, WeightsSource::Random { width, seed }));
        }
        let (vgg, decoder) =
            crate::stylize::weights::resolve_pair(self.vgg.as_deref(), self.decoder.as_deref())?;
        let s = Stylizer::load(&vgg, &decoder, dtype, dev)?;
        Ok((s, WeightsSource::Files { vgg, decoder }))
    }
}

/// Where a loaded stylizer's weights came from.
pub(super) enum WeightsSource {
    Random { width: usize, seed: u64 },
    Files { vgg: PathBuf, decoder: PathBuf },
}

impl WeightsSource {
    /// What identifies the weights in a job's recorded settings: the random width and seed, or
    /// the two files' contents (size and hash, not their paths).
    pub(super) fn identity(&self) -> Result<String> {
        Ok(match self {
            WeightsSource::Random { width, seed } => format!("random width {width} seed {seed}"),
            WeightsSource::Files { vgg, decoder } => {
                let fp = crate::stylize::weights::content_fingerprint;
                format!("encoder {}; decoder {}", fp(vgg)?, fp(decoder)?)
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
