//! Layers and parameters. A layer owns its parameters (`Param`: a variable tensor plus what kind of
//! parameter it is, which decides weight decay) and buffers (running statistics). Every module lists
//! them under PyTorch's names (`layer1.0.conv1.weight`, `bn1.running_mean`, …) through
//! `Module::visit`, so checkpoints map one to one onto torchvision state dicts.

pub mod init;
pub mod layers;
pub mod state;

pub use layers::{
    AvgPool2d, BatchNorm2d, Conv2d, ConvTranspose2d, Dropout, Flatten, Linear, MaxPool2d,
    ReflectionPad2d, Relu, Sequential, UpsampleNearest2d,
};

use crate::{Result, Tensor};

/// What a named tensor of a module is; optimizers use it to exempt biases and BN γ/β from decay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamKind {
    /// Conv / linear weights: decayed.
    Weight,
    /// Conv / linear biases: trainable, no decay with `no_bias_decay`.
    Bias,
    /// BN γ and β: trainable, no decay with `no_bias_decay`.
    Norm,
    /// Running statistics and counters: saved, never trained.
    Buffer,
}

impl ParamKind {
    pub fn trainable(self) -> bool {
        self != ParamKind::Buffer
    }
}

/// A named tensor of a module. For trainable kinds `tensor` is a variable (`Tensor::var`) that
/// optimizers update in place.
#[derive(Clone, Debug)]
pub struct Param {
    pub tensor: Tensor,
    pub kind: ParamKind,
}

impl Param {
    pub fn new(tensor: Tensor, kind: ParamKind) -> Param {
        let tensor = if kind.trainable() {
            tensor.var()
        } else {
            tensor.detach()
        };
        Param { tensor, kind }
    }

    /// Takes the parameter out of training for good: the tensor becomes a plain handle to the same
    /// values (not a variable, so backward neither computes nor returns a gradient for it) and the
    /// kind becomes `Buffer` (optimizers skip it; saving and loading by name are unaffected).
    pub fn freeze(&mut self) {
        self.tensor = self.tensor.detach();
        self.kind = ParamKind::Buffer;
    }

    /// Stores a 4-d parameter in `format` (a new tensor with the same values, still trainable);
    /// other ranks have one layout and stay as they are. Do it before an optimizer is built from
    /// the module: optimizers hold the parameter tensors themselves.
    pub fn to_format(&mut self, format: crate::MemoryFormat) -> crate::Result<()> {
        if self.tensor.rank() == 4 && self.tensor.format() != format {
            *self = Param::new(self.tensor.detach().to_format(format)?, self.kind);
        }
        Ok(())
    }
}

/// Whether a forward pass trains (batch statistics, dropout on) or evaluates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mode {
    pub training: bool,
}

impl Mode {
    pub const TRAIN: Mode = Mode { training: true };
    pub const EVAL: Mode = Mode { training: false };
}

pub trait Module: Send + Sync {
    fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor>;
    /// Calls `f(name, param)` for every parameter and buffer, names prefixed by `prefix`.
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Param));
}

/// `prefix.name`, or `name` at the root.
pub fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// Every named parameter and buffer of a module, in visiting order.
pub fn named_params(m: &dyn Module) -> Vec<(String, Param)> {
    let mut out = Vec::new();
    m.visit("", &mut |name, p| out.push((name.to_string(), p.clone())));
    out
}

/// Number of trainable scalars.
pub fn count_trainable(m: &dyn Module) -> usize {
    named_params(m)
        .iter()
        .filter(|(_, p)| p.kind.trainable())
        .map(|(_, p)| p.tensor.numel())
        .sum()
}
