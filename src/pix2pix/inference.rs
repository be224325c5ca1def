//! `engine pix2pix test`: a trained generator over every image of a dataset's `val/` split. Writes,
//! under the output folder, `images/<name>.png` (each output alone), `grids/grid_NNN.png` (rows of
//! input | output | target, `rows_per_grid` images a file, in dataset order) and `metrics.json`
//! (mean L1 and PSNR — see `eval` for their definitions — the optional perceptual distance, and
//! every image's values).
//!
//! Invariants: outputs are deterministic (`GenMode::Reference` seeds dropout by image index); the
//! image size, channels and direction come from the checkpoint's config (the direction may be
//! overridden); every file is written atomically; the default output folder is `test/` beside the
//! checkpoint.

use super::checkpoint::load_generator;
use super::config::{Direction, PerceptualSpec};
use super::dataset::PairedFolder;
use super::eval::{evaluate, grid_row, EvalOptions, GenMode, ImageMetrics};
use super::losses::load_perceptual;
use super::trainer::transform;
use crate::nn::state::write_atomic;
use crate::viz::{save_png, tensor_to_rgb8, ImageGrid, PixelRange};
use crate::{Device, Error, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub struct TestOptions {
    pub checkpoint: PathBuf,
    /// Dataset folder; its `val/` split is used.
    pub data: PathBuf,
    /// Output folder (default `<checkpoint folder>/test`).
    pub out: Option<PathBuf>,
    pub mode: GenMode,
    /// Direction (default: the training run's).
    pub direction: Option<Direction>,
    /// A network for the perceptual distance between outputs and targets.
    pub perceptual: Option<PerceptualSpec>,
    /// Images (rows) per grid file; at least 1.
    pub rows_per_grid: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct TestReport {
    pub checkpoint: PathBuf,
    pub data: PathBuf,
    pub out: PathBuf,
    pub mode: GenMode,
    /// Training epochs the checkpoint had completed.
    pub epochs_trained: usize,
    pub images: usize,
    /// Mean L1 in [-1, 1] units and mean PSNR in dB (images in [0, 1], capped at 100 dB).
    pub l1: f64,
    pub psnr: f64,
    pub perceptual_net: Option<String>,
    pub perceptual: Option<f64>,
    pub grids: Vec<PathBuf>,
    pub per_image: Vec<ImageMetrics>,
}

/// The default output folder for `checkpoint`.
pub fn default_out(checkpoint: &Path) -> PathBuf {
    checkpoint
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join("test")
}

pub fn run_test(opts: &TestOptions, device: Device) -> Result<TestReport> {
    let (g, run) = load_generator(&opts.checkpoint, device)?;
    let cfg = &run.config;
    let data = PairedFolder::open(&opts.data, "val", opts.direction.unwrap_or(cfg.direction))?;
    let perceptual = match &opts.perceptual {
        Some(spec) => {
            let taps = vec![1.0; spec.taps()];
            Some(load_perceptual(spec, &taps, cfg.output_nc, device)?)
        }
        None => None,
    };
    let out = opts
        .out
        .clone()
        .unwrap_or_else(|| default_out(&opts.checkpoint));
    let rows = opts.rows_per_grid.max(1);
    for sub in ["images", "grids"] {
        std::fs::create_dir_all(out.join(sub)).map_err(|e| Error::Io {
            path: out.join(sub).display().to_string(),
            source: e,
        })?;
    }
    let mut grid = ImageGrid::with_min_cell(crate::viz::GRID_MIN_CELL);
    let mut grids = Vec::new();
    let mut flush = |grid: &mut ImageGrid| -> Result<()> {
        if !grid.is_empty() {
            let path = out
                .join("grids")
                .join(format!("grid_{:03}.png", grids.len()));
            grid.save(&path)?;
            grids.push(path);
            *grid = ImageGrid::with_min_cell(crate::viz::GRID_MIN_CELL);
        }
        Ok(())
    };
    let eval_opts = EvalOptions {
        mode: opts.mode,
        limit: None,
        perceptual: perceptual.as_ref(),
    };
    let summary = evaluate(
        &g,
        &data,
        &transform(cfg, false),
        eval_opts,
        device,
        |img| {
            let name = &img.metrics.name;
            save_png(
                &out.join("images").join(format!("{name}.png")),
                &tensor_to_rgb8(img.output, 0, PixelRange::MinusOneOne)?,
            )?;
            grid.push_row(grid_row(img)?);
            if (img.index + 1) % rows == 0 {
                flush(&mut grid)?;
            }
            Ok(())
        },
    )?;
    flush(&mut grid)?;
    let report = TestReport {
        checkpoint: opts.checkpoint.clone(),
        data: opts.data.clone(),
        out: out.clone(),
        mode: opts.mode,
        epochs_trained: run.epoch,
        images: summary.images.len(),
        l1: summary.l1,
        psnr: summary.psnr,
        perceptual_net: opts.perceptual.as_ref().map(|s| s.to_string()),
        perceptual: summary.perceptual,
        grids,
        per_image: summary.images,
    };
    write_atomic(
        &out.join("metrics.json"),
        serde_json::to_string_pretty(&report)
            .expect("json")
            .as_bytes(),
    )?;
    Ok(report)
}
