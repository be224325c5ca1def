//! Training the AdaIN decoder (Huang & Belongie 2017, as naoto0804/pytorch-AdaIN's `train.py`):
//! the run configuration and learning-rate schedule (`config`), the content and style image
//! streams (`data`), checkpoints and the exported decoder weights (`checkpoint`), and the loop
//! (`trainer`). It mirrors `train/` (the classifier trainer) and shares its Ctrl-C handling,
//! JSON-lines log, checkpoint layout and run options.
//!
//! Invariant: everything random is a function of the config's seed and the iteration, so on the
//! CPU a stopped and resumed run matches an uninterrupted one bit for bit.

pub mod checkpoint;
pub mod config;
pub mod data;
pub mod trainer;

pub use config::{inverse_time_lr, DecoderTrainConfig, EncoderSource};
pub use trainer::{train_decoder, DecoderTrainSummary, IterationMetrics};
