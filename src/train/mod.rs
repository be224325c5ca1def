//! Image-classification training: the run configuration and the Bag of Tricks recipes
//! (`config`), the loop (`trainer`), checkpoints that survive a crash (`checkpoint`), metrics
//! (`metrics`) and the PNG charts of a run (`plots`).

pub mod checkpoint;
pub mod config;
pub mod metrics;
pub mod plots;
pub(crate) mod step_inputs;
pub mod trainer;

pub use config::{DataSpec, Recipe, TextureSwapSpec, TrainConfig};
pub use trainer::{train, RunOptions, TrainSummary};
