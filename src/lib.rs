//! engine: a small deep-learning research engine. See docs/ARCHITECTURE.md for the layers:
//! tensor → backend (CPU, CUDA) → ops (forward + backward) → autograd → nn layers → models → training.

pub mod autograd;
pub mod backend;
pub mod bench;
pub mod cli;
pub mod data;
pub mod dtype;
pub mod error;
pub mod host_memory;
pub mod interrupt;
pub mod models;
pub mod nn;
pub mod ops;
pub mod optim;
pub mod pix2pix;
pub mod progress;
pub mod shape;
pub mod shape_bias;
pub mod stylize;
pub mod tensor;
pub mod testing;
pub mod train;
pub mod train_decoder;
pub mod viz;

pub use autograd::{no_grad, GradStore, NoGradGuard};
pub use backend::Device;
pub use dtype::{DType, Element, Float};
pub use error::{Error, Result};
pub use ops::batch_norm::BatchNormArgs;
pub use ops::pool::Pool2dParams;
pub use ops::{BinaryOp, Conv2dParams, ConvTranspose2dParams, UnaryOp};
pub use shape::Shape;
pub use tensor::{MemoryFormat, Tensor, TensorId};
