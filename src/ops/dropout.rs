//! Inverted dropout: in training each element is zeroed with probability `p` and the survivors are
//! scaled by `1/(1−p)`, so the expectation is unchanged; in evaluation (or with `p = 0`) it is the
//! identity.
//!
//! Invariants: the keep-mask depends only on `(seed, numel, p)`. It is drawn on the host from
//! ChaCha8 streams — element `i` belongs to block `i / MASK_BLOCK`, and block `b` uses the stream
//! `b` of a ChaCha8Rng seeded with `seed` — so it is reproducible whatever the thread count or
//! device, and the same seed gives the same mask. The mask (0/1 values, exact in every dtype) is
//! uploaded as a tensor; forward and backward are the same kernel `x · mask · scale`, so the
//! backward multiplies by exactly the forward's mask.

use super::{apply1, chunk_len};
use crate::backend::CpuKernel;
use crate::dtype::Float;
use crate::{Error, Result, Tensor};
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

/// Elements per independent RNG stream of the mask.
pub const MASK_BLOCK: usize = 1 << 16;

/// The 0/1 keep-mask for `numel` elements (1 = kept), as f64.
pub fn dropout_mask(numel: usize, p: f64, seed: u64) -> Vec<f64> {
    let mut mask = vec![0.0; numel];
    mask.par_chunks_mut(MASK_BLOCK)
        .enumerate()
        .for_each(|(b, chunk)| {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(b as u64);
            for m in chunk.iter_mut() {
                *m = if rng.random::<f64>() < p { 0.0 } else { 1.0 };
            }
        });
    mask
}

/// y = x · mask · scale; inputs `[x, mask]` of equal length.
pub struct MaskScale {
    pub scale: f64,
}

impl CpuKernel for MaskScale {
    const NAME: &'static str = "dropout";
    fn run<T: Float>(&self, inputs: &[&[T]]) -> Result<Vec<Vec<T>>> {
        let (x, m) = (inputs[0], inputs[1]);
        let s = T::c(self.scale);
        let mut y = vec![T::zero(); x.len()];
        if y.is_empty() {
            return Ok(vec![y]);
        }
        let c = chunk_len(x.len(), 1 << 14);
        y.par_chunks_mut(c)
            .zip(x.par_chunks(c).zip(m.par_chunks(c)))
            .for_each(|(yc, (xc, mc))| {
                for ((yi, &xi), &mi) in yc.iter_mut().zip(xc).zip(mc) {
                    *yi = xi * mi * s;
                }
            });
        Ok(vec![y])
    }
}

impl Tensor {
    /// Inverted dropout with drop probability `p` ∈ [0, 1) and a mask from ChaCha8 seeded with
    /// `seed` (same seed, same mask). Identity when `!training` or `p == 0`.
    pub fn dropout(&self, p: f64, seed: u64, training: bool) -> Result<Tensor> {
        if !(0.0..1.0).contains(&p) {
            return Err(Error::bad(
                "dropout",
                format!("drop probability must be in [0, 1), got {p}"),
            ));
        }
        if !training || p == 0.0 {
            return Ok(self.clone());
        }
        let mask = Tensor::from_f64s(
            &dropout_mask(self.numel(), p, seed),
            self.shape().clone(),
            self.dtype(),
            self.device(),
        )?;
        let kernel = MaskScale {
            scale: 1.0 / (1.0 - p),
        };
        let y = apply1(&kernel, &[self, &mask], self.shape().clone(), self.dtype())?;
        Ok(y.track("dropout", &[self], move |dy| {
            let dx = apply1(&kernel, &[dy, &mask], mask.shape().clone(), dy.dtype())?;
            Ok(vec![Some(dx)])
        }))
    }
}
