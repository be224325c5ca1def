//! pix2pix (Isola et al. 2017, "Image-to-Image Translation with Conditional Adversarial Networks")
//! on the engine's U-Net generator and PatchGAN discriminator (`models::unet`, `models::patchgan`),
//! with an optional perceptual loss over a frozen ResNet (`models::perceptual`). One job a file,
//! mirroring `train/`:
//! - `config`: the run configuration, network sizing for the image size, the LR schedule;
//! - `pairs`: `make-pairs`, A|B training pairs computed from plain photos (gray2color, edges2photo,
//!   blur2sharp);
//! - `dataset`: the aligned A|B format, jitter, seeded batches;
//! - `losses`: the GAN + L1 (+ perceptual) objective, loading the perceptual network;
//! - `checkpoint`: G, D, both optimisers and the run state in one atomic file;
//! - `trainer`: the training loop (exact resume, Ctrl-C, progress, metrics, samples);
//! - `plots`: the run's loss and validation charts;
//! - `eval`: L1 / PSNR, test-time generation, one pass over a validation split;
//! - `inference`: `engine pix2pix test`, outputs, grids and metrics.json for a val split.

pub mod checkpoint;
pub mod config;
pub mod dataset;
pub mod eval;
pub mod inference;
pub mod losses;
pub mod pairs;
pub mod plots;
pub mod trainer;

pub use config::{Direction, PerceptualSpec, PerceptualTerm, Pix2PixConfig};
pub use eval::{psnr, GenMode, PSNR_CAP_DB};
pub use inference::{run_test, TestOptions, TestReport};
pub use pairs::{make_pairs, MakePairsConfig, PairSource, PairTask};
pub use trainer::{train, TrainSummary};
