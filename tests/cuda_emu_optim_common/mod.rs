//! What the optimiser-level emulator tests share (tests/cuda_emu_optimizers_fused.rs and
//! tests/cuda_emu_optimizers_per_tensor.rs): the parameter specs and their seeded CPU parameters, the
//! seeded (optionally poisoned) gradients of each step, the step schedule with its skipped steps, and
//! the tolerance check of `test_support::optim_tol`.
//!
//! Invariants: the same seed always gives the same parameters and gradients (the engine's own
//! `Tensor::randn`), gradients are rounded to their parameter's dtype as the CPU gradient tensor holds
//! them, and steps 0 and 3 of [`schedule`] carry an inf/NaN so every path must skip them.

use engine::backend::cuda_emu::test_support::{assert_close, optim_tol, seeded_randn};
use engine::nn::{Param, ParamKind};
use engine::{DType, Device, GradStore, Tensor};
use std::collections::BTreeMap;

/// Seeded N(0, std) values (`Tensor::randn`'s, which are std·z for the same z).
pub fn randn(n: usize, std: f64, seed: u64) -> Vec<f64> {
    seeded_randn(n, seed).into_iter().map(|z| z * std).collect()
}

#[track_caller]
pub fn check(what: &str, got: &[f64], want: &[f64], dtype: DType) {
    assert_close(what, got, want, optim_tol(dtype));
}

/// One parameter of the optimiser-level tests.
pub struct Spec {
    pub dims: &'static [usize],
    pub dtype: DType,
    pub kind: ParamKind,
}

pub const fn spec(dims: &'static [usize], dtype: DType, kind: ParamKind) -> Spec {
    Spec { dims, dtype, kind }
}

pub fn numel(s: &Spec) -> usize {
    s.dims.iter().product()
}

/// The CPU parameters (seeded N(0, 0.5)).
pub fn make_params(specs: &[Spec], seed: u64) -> Vec<(String, Param)> {
    specs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let t = Tensor::randn(
                s.dims.to_vec(),
                0.0,
                0.5,
                seed + i as u64,
                s.dtype,
                Device::Cpu,
            )
            .unwrap();
            (format!("p{i}"), Param::new(t, s.kind))
        })
        .collect()
}

/// The weight decay the optimisers give a parameter (`optim::decay_for`).
pub fn decay_for(kind: ParamKind, wd: f64, no_bias_decay: bool) -> f64 {
    if no_bias_decay && kind != ParamKind::Weight {
        0.0
    } else {
        wd
    }
}

/// Step `step`'s gradients (N(0, scale), stored in each parameter's dtype) as f64, with the poisoned
/// entries of `poison` (slot, index, value).
pub fn step_grads(
    specs: &[Spec],
    step: u64,
    scale: f64,
    poison: &[(usize, usize, f64)],
) -> Vec<Vec<f64>> {
    specs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut v = randn(numel(s), scale, 10_000 + 100 * step + i as u64);
            for &(slot, at, bad) in poison {
                if slot == i {
                    v[at] = bad;
                }
            }
            // Round to the gradient's storage type, as the CPU gradient tensor holds it.
            Tensor::from_f64s(&v, [v.len()], s.dtype, Device::Cpu)
                .unwrap()
                .to_vec_f64()
                .unwrap()
        })
        .collect()
}

pub fn cpu_grads(ps: &[(String, Param)], specs: &[Spec], g: &[Vec<f64>]) -> GradStore {
    let mut store = GradStore::default();
    for ((_, p), (s, v)) in ps.iter().zip(specs.iter().zip(g)) {
        store.insert(
            &p.tensor,
            Tensor::from_f64s(v, s.dims.to_vec(), s.dtype, Device::Cpu).unwrap(),
        );
    }
    store
}

pub fn state_map(v: Vec<(String, Tensor)>) -> BTreeMap<String, Vec<f64>> {
    v.into_iter()
        .map(|(k, t)| (k, t.to_vec_f64().unwrap()))
        .collect()
}

/// Gradient entries to poison: (slot, index, value).
pub type Poison = Vec<(usize, usize, f64)>;

/// The steps of the optimiser-level tests: (learning rate, poisoned gradient entries). Step 0 (a first
/// step, so the momentum would be created) and step 3 are skipped on every path.
pub fn schedule() -> Vec<(f64, Poison)> {
    vec![
        // The last tensor: with 100-element chunks its chunk is past the fused grid's first wrap.
        (0.1, vec![(6, 2, f64::INFINITY)]),
        (0.1, vec![]),
        (0.05, vec![]),
        (0.05, vec![(3, 2, f64::NAN), (0, 0, f64::NEG_INFINITY)]),
        (0.02, vec![]),
        (0.01, vec![]),
    ]
}
