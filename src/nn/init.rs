//! Seeded parameter initialisation (PyTorch's conventions): Kaiming normal for convolutions (fan-out,
//! ReLU gain, as torchvision's ResNet does), Kaiming-uniform-style defaults for linear layers, Xavier.
//! Every initialiser draws from an `Init` stream, so one seed reproduces a whole model.
//! `init_normal` re-initialises a built module the way pix2pix / DCGAN do.

use super::{named_params, Module, ParamKind};
use crate::{DType, Device, Result, Tensor};
use rand::{RngCore, SeedableRng};

/// A seeded source of initial values: each call takes a fresh sub-seed from one ChaCha8 stream.
pub struct Init {
    rng: rand_chacha::ChaCha8Rng,
    pub dtype: DType,
    pub device: Device,
}

impl Init {
    pub fn new(seed: u64, dtype: DType, device: Device) -> Init {
        Init {
            rng: rand_chacha::ChaCha8Rng::seed_from_u64(seed),
            dtype,
            device,
        }
    }
    /// A fresh sub-seed from the stream (for layers that draw their own randomness, e.g. dropout).
    pub fn next_seed(&mut self) -> u64 {
        self.rng.next_u64()
    }
    pub fn normal(&mut self, dims: &[usize], std: f64) -> Result<Tensor> {
        let s = self.next_seed();
        Tensor::randn(dims.to_vec(), 0.0, std, s, self.dtype, self.device)
    }
    pub fn uniform(&mut self, dims: &[usize], bound: f64) -> Result<Tensor> {
        let s = self.next_seed();
        Tensor::rand_uniform(dims.to_vec(), -bound, bound, s, self.dtype, self.device)
    }
    pub fn constant(&mut self, dims: &[usize], value: f64) -> Result<Tensor> {
        Tensor::full(value, dims.to_vec(), self.dtype, self.device)
    }
    /// `N(0, sqrt(2 / fan_out))` for a weight `[out, in/groups, kh, kw]` (torchvision ResNet).
    pub fn kaiming_normal_fan_out(&mut self, dims: &[usize]) -> Result<Tensor> {
        let receptive: usize = dims[2..].iter().product();
        let fan_out = dims[0] * receptive;
        self.normal(dims, (2.0 / fan_out as f64).sqrt())
    }
    /// PyTorch's default for Conv/Linear weights: U(±1/sqrt(fan_in)) (kaiming_uniform with a = √5).
    pub fn default_weight(&mut self, dims: &[usize]) -> Result<Tensor> {
        let fan_in: usize = dims[1..].iter().product();
        self.uniform(dims, 1.0 / (fan_in.max(1) as f64).sqrt())
    }
    /// PyTorch's default for biases: U(±1/sqrt(fan_in)).
    pub fn default_bias(&mut self, len: usize, fan_in: usize) -> Result<Tensor> {
        self.uniform(&[len], 1.0 / (fan_in.max(1) as f64).sqrt())
    }
    /// Xavier/Glorot uniform: U(±sqrt(6 / (fan_in + fan_out))).
    pub fn xavier_uniform(&mut self, dims: &[usize]) -> Result<Tensor> {
        let receptive: usize = dims[2..].iter().product::<usize>().max(1);
        let (fan_in, fan_out) = (dims[1] * receptive, dims[0] * receptive);
        self.uniform(dims, (6.0 / (fan_in + fan_out) as f64).sqrt())
    }
}

/// pix2pix's `init_weights(net, "normal", gain)` (DCGAN's scheme) applied to a built module:
/// conv / linear weights ~ N(0, gain), BN γ ~ N(1, gain), every bias and BN β = 0; buffers are left
/// as they are. Draws in the module's visiting order.
pub fn init_normal(init: &mut Init, module: &dyn Module, gain: f64) -> Result<()> {
    for (name, p) in named_params(module) {
        let dims = p.tensor.dims().to_vec();
        let value = match p.kind {
            ParamKind::Weight => init.normal(&dims, gain)?,
            ParamKind::Norm if name.ends_with("weight") => {
                init.normal(&dims, gain)?.add_scalar(1.0)?
            }
            ParamKind::Bias | ParamKind::Norm => init.constant(&dims, 0.0)?,
            ParamKind::Buffer => continue,
        };
        p.tensor.assign(&value)?;
    }
    Ok(())
}
