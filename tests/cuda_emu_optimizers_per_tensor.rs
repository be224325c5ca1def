#![cfg(feature = "cuda-emu")]
//! The per-tensor optimiser paths on the CUDA kernels of cuda/sgd.cu and cuda/adam.cu, run in the CUDA
//! emulator (`--features cuda-emu`) on a pretend GPU of 4 SMs against several steps of the CPU's
//! `Sgd` and `Adam` (f16 weights with f32 masters, f32 and f64 parameters, biases and norm parameters
//! exempt from weight decay, odd sizes, an empty tensor, a loss scale, Nesterov on and off). The fused
//! multi-tensor step is tested in tests/cuda_emu_optimizers_fused.rs, the kernels on their own in
//! tests/cuda_emu_optim_kernels.rs.
//!
//! The path: `all_finite_*` + `all_finite_finish` per gradient, then `sgd_step_f32/f64` /
//! `adam_step_f32/f64` per parameter (f16 gradients widened to f32 as `cuda::run` does), launched as
//! the kernel-level tests launch them (`emu_all_finite`, `emu_optim_step` of `test_support`, with the
//! calls of `engine::backend::kernel_abi::{sgd, adam}`).
//!
//! Invariants checked:
//! - Weights, f32 masters and optimiser buffers match the CPU optimiser's after every step
//!   (`optim_tol`), and the optimiser buffers exist exactly when the CPU's do.
//! - Steps with an inf or NaN gradient are reported as skipped like on the CPU.
//! - Parameters and gradients are seeded random values; the kernels' outputs start as NaN; every
//!   buffer's guard zones are checked after each launch.

mod cuda_emu_optim_common;

use cuda_emu_optim_common::*;
use engine::backend::cuda_emu::test_support::{
    emu_all_finite, emu_optim_step, grid_1d, to_elems, to_f64s,
};
use engine::backend::kernel_abi::{adam, sgd};
use engine::nn::{Param, ParamKind};
use engine::optim::adam::AdamStep;
use engine::optim::sgd::SgdStep;
use engine::optim::{Adam, AdamConfig, Sgd, SgdConfig};
use engine::DType;
use half::f16;
use std::collections::BTreeMap;

// ---- the per-tensor paths (SgdStep / AdamStep per parameter after an AllFinite per gradient) ----

/// The parameters of the per-tensor tests: f16 (f32 masters), f32 and f64.
const PER_TENSOR_SPECS: [Spec; 7] = [
    spec(&[1025], DType::F16, ParamKind::Weight),
    spec(&[4, 3, 3], DType::F16, ParamKind::Weight),
    spec(&[19], DType::F32, ParamKind::Bias),
    spec(&[6], DType::F32, ParamKind::Norm),
    spec(&[300], DType::F32, ParamKind::Weight),
    spec(&[261], DType::F64, ParamKind::Weight),
    spec(&[4], DType::F64, ParamKind::Bias),
];

/// What `grads_finite` does on CUDA: `AllFinite` per gradient in slot order, stopping at the first
/// non-finite one.
fn emu_grads_finite(specs: &[Spec], g: &[Vec<f64>]) -> bool {
    for (s, v) in specs.iter().zip(g) {
        let n = v.len();
        let ok = match s.dtype {
            DType::F16 => emu_all_finite(&to_elems::<f16>(v), grid_1d(n)).0,
            DType::F32 => emu_all_finite(&to_elems::<f32>(v), grid_1d(n)).0,
            DType::F64 => emu_all_finite(&to_elems::<f64>(v), grid_1d(n)).0,
        };
        if ok != 1.0 {
            return false;
        }
    }
    true
}

/// One parameter's state on the per-tensor path: the compute-dtype master (f32 for f16 parameters,
/// else the parameter itself), the optimiser buffers, and the f16 weights.
struct PerTensorSlot {
    compute: DType,
    master: Vec<f64>,
    bufs: Option<Vec<Vec<f64>>>,
    param_f16: Option<Vec<f64>>,
}

fn per_tensor_slots(ps: &[(String, Param)], specs: &[Spec]) -> Vec<PerTensorSlot> {
    ps.iter()
        .zip(specs)
        .map(|((_, p), s)| {
            let v = p.tensor.to_vec_f64().unwrap();
            PerTensorSlot {
                compute: if s.dtype == DType::F64 {
                    DType::F64
                } else {
                    DType::F32
                },
                master: v.clone(),
                bufs: None,
                param_f16: (s.dtype == DType::F16).then_some(v),
            }
        })
        .collect()
}

/// The kernel's new master goes to the f16 weights through the f32 → f16 cast (round to nearest).
fn refresh_f16(s: &mut PerTensorSlot) {
    if s.param_f16.is_some() {
        s.param_f16 = Some(to_f64s(&to_elems::<f16>(&s.master)));
    }
}

/// Compares a per-tensor slot with the CPU optimiser (`keys`: the state tensor names of its buffers).
fn check_per_tensor(
    what: &str,
    ps: &[(String, Param)],
    slots: &[PerTensorSlot],
    state: &BTreeMap<String, Vec<f64>>,
    keys: &[&str],
) {
    for (i, ((_, p), s)) in ps.iter().zip(slots).enumerate() {
        let w = format!("{what}, p{i}");
        let cpu_param = p.tensor.to_vec_f64().unwrap();
        match &s.param_f16 {
            Some(p16) => {
                check(&format!("{w}: f16 weights"), p16, &cpu_param, DType::F16);
                check(
                    &format!("{w}: master"),
                    &s.master,
                    &state[&format!("p{i}.master")],
                    DType::F32,
                );
            }
            None => check(&format!("{w}: weights"), &s.master, &cpu_param, s.compute),
        }
        for (k, key) in keys.iter().enumerate() {
            let key = format!("p{i}.{key}");
            assert_eq!(
                s.bufs.is_some(),
                state.contains_key(&key),
                "{w}: {key} exists"
            );
            if let Some(b) = &s.bufs {
                check(&format!("{w}: {key}"), &b[k], &state[&key], s.compute);
            }
        }
    }
}

#[test]
fn per_tensor_sgd_matches_the_cpu_optimiser() {
    let specs = &PER_TENSOR_SPECS;
    for (c, (nesterov, no_bias_decay, momentum)) in [(true, true, 0.9), (false, false, 0.8)]
        .into_iter()
        .enumerate()
    {
        let config = SgdConfig {
            momentum,
            nesterov,
            weight_decay: 0.05,
            no_bias_decay,
        };
        let scale = 512.0;
        let ps = make_params(specs, 4000 + 100 * c as u64);
        let mut opt = Sgd::new(ps.clone(), config.clone()).unwrap();
        let mut slots = per_tensor_slots(&ps, specs);
        for (step, (lr, poison)) in schedule().into_iter().enumerate() {
            let what = format!(
                "per-tensor SGD nesterov={nesterov} no_bias_decay={no_bias_decay} step {step}"
            );
            let g = step_grads(specs, 50 + step as u64, scale, &poison);
            let cpu_applied = opt.step(&cpu_grads(&ps, specs, &g), lr, scale).unwrap();
            let applied = emu_grads_finite(specs, &g);
            assert_eq!(
                applied, cpu_applied,
                "{what}: applied (kernel flags vs CPU)"
            );
            assert_eq!(applied, poison.is_empty(), "{what}: applied");
            if applied {
                for (i, s) in slots.iter_mut().enumerate() {
                    let first = s.bufs.is_none();
                    // `Sgd::step` passes a zero buffer on the first step.
                    let buf = s
                        .bufs
                        .as_ref()
                        .map_or(vec![0.0; s.master.len()], |b| b[0].clone());
                    let k = SgdStep {
                        lr,
                        momentum,
                        nesterov,
                        weight_decay: decay_for(specs[i].kind, config.weight_decay, no_bias_decay),
                        inv_scale: 1.0 / scale,
                        first_step: first,
                    };
                    // f16 gradients meet an f32 master: `cuda::run` widens them to f32 (exact).
                    let ins: [&[f64]; 3] = [&s.master, &g[i], &buf];
                    let grid = grid_1d(s.master.len());
                    let dt = s.compute;
                    let call = |n, i: &[usize], o: &[usize]| {
                        sgd::sgd_step(dt, n, &k, i[0], i[1], i[2], o[0], o[1])
                    };
                    let out = match dt {
                        DType::F64 => emu_optim_step::<f64>(grid, &ins, 2, call),
                        _ => emu_optim_step::<f32>(grid, &ins, 2, call),
                    };
                    s.master = out[0].clone();
                    s.bufs = Some(vec![out[1].clone()]);
                    refresh_f16(s);
                }
            }
            check_per_tensor(
                &what,
                &ps,
                &slots,
                &state_map(opt.state_tensors()),
                &["momentum_buffer"],
            );
        }
    }
}

#[test]
fn per_tensor_adam_matches_the_cpu_optimiser() {
    let specs = &PER_TENSOR_SPECS;
    let configs = [
        AdamConfig::default(),
        // pix2pix's betas with L2 decay, biases and norm parameters exempt.
        AdamConfig {
            beta1: 0.5,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 1e-2,
            no_bias_decay: true,
        },
    ];
    for (c, config) in configs.into_iter().enumerate() {
        let scale = 128.0;
        let ps = make_params(specs, 5000 + 100 * c as u64);
        let mut opt = Adam::new(ps.clone(), config.clone()).unwrap();
        let mut slots = per_tensor_slots(&ps, specs);
        let mut steps = 0;
        for (step, (lr, poison)) in schedule().into_iter().enumerate() {
            let lr = lr / 50.0;
            let what = format!("per-tensor Adam {config:?} step {step}");
            let g = step_grads(specs, 80 + step as u64, scale, &poison);
            let cpu_applied = opt.step(&cpu_grads(&ps, specs, &g), lr, scale).unwrap();
            let applied = emu_grads_finite(specs, &g);
            assert_eq!(
                applied, cpu_applied,
                "{what}: applied (kernel flags vs CPU)"
            );
            assert_eq!(applied, poison.is_empty(), "{what}: applied");
            if applied {
                steps += 1;
                let (bias1, bias2) = (
                    1.0 - config.beta1.powi(steps),
                    1.0 - config.beta2.powi(steps),
                );
                for (i, s) in slots.iter_mut().enumerate() {
                    let zeros = vec![0.0; s.master.len()];
                    let (m, v) = s.bufs.as_ref().map_or((&zeros, &zeros), |b| (&b[0], &b[1]));
                    let k = AdamStep {
                        lr,
                        beta1: config.beta1,
                        beta2: config.beta2,
                        eps: config.eps,
                        weight_decay: decay_for(
                            specs[i].kind,
                            config.weight_decay,
                            config.no_bias_decay,
                        ),
                        inv_scale: 1.0 / scale,
                        bias1,
                        bias2,
                    };
                    let ins: [&[f64]; 4] = [&s.master, &g[i], m, v];
                    let grid = grid_1d(s.master.len());
                    let dt = s.compute;
                    let call = |n, i: &[usize], o: &[usize]| {
                        adam::adam_step(dt, n, &k, i[0], i[1], i[2], i[3], o[0], o[1], o[2])
                    };
                    let out = match dt {
                        DType::F64 => emu_optim_step::<f64>(grid, &ins, 3, call),
                        _ => emu_optim_step::<f32>(grid, &ins, 3, call),
                    };
                    s.master = out[0].clone();
                    s.bufs = Some(vec![out[1].clone(), out[2].clone()]);
                    refresh_f16(s);
                }
            }
            assert_eq!(opt.steps(), steps as u64, "{what}: step counter");
            let state = state_map(opt.state_tensors().unwrap());
            check_per_tensor(&what, &ps, &slots, &state, &["exp_avg", "exp_avg_sq"]);
        }
    }
}
