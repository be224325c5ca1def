#![cfg(feature = "cuda-emu")]
//! The fused multi-tensor SGD step on the CUDA kernels of cuda/sgd.cu, run in the CUDA emulator
//! (`--features cuda-emu`) on a pretend GPU of 4 SMs against several steps of the CPU's `Sgd` (f16
//! weights with f32 masters, f32 parameters, biases and norm parameters exempt from weight decay,
//! odd sizes, an empty tensor, a loss scale, Nesterov on and off). The per-tensor optimiser paths are
//! tested in tests/cuda_emu_optimizers_per_tensor.rs, the kernels on their own in
//! tests/cuda_emu_optim_kernels.rs.
//!
//! The path, as `multi_tensor_sgd_step` launches it: `multi_tensor_all_finite_*` then
//! `multi_tensor_sgd_*` per gradient dtype, with the launcher's calls (kernel names and argument
//! lists), `#[repr(C)]` table of tensor descriptors, chunk prefix sums and grid, all from
//! `engine::backend::kernel_abi::sgd` as the launcher takes them, plus small chunks so tensors span
//! many chunks and the grid-stride over chunks wraps.
//!
//! Invariants checked:
//! - Weights, f32 masters and momentum buffers match the CPU optimiser's after every step
//!   (`optim_tol`), and the momentum buffers exist exactly when the CPU's do.
//! - Steps with an inf or NaN gradient set the flag and are reported as skipped like on the CPU; the
//!   fused kernels (which are responsible for it) then leave every master, momentum buffer and f16
//!   weight bit-identical and the fresh momentum buffers of first steps unwritten.
//! - A sweep puts one inf/NaN at every interesting position (first/last element of a tensor, both
//!   sides of a chunk boundary, a chunk past the grid's wrap) of either gradient-dtype group: the
//!   shared flag must catch it and neither group's update may change a bit. The same table with
//!   finite gradients then matches the CPU's `SgdStep` per tensor.
//! - Parameters and gradients are seeded random values; the fresh momentum buffers start as NaN;
//!   every buffer's guard zones are checked after each of the two passes.
//! - Every kernel of the `multi_tensor_` family is launched here.

mod cuda_emu_optim_common;

use cuda_emu_optim_common::*;
use engine::backend::cpu::CpuStorage;
use engine::backend::cuda_emu::test_support::{
    assert_family_covered, cpu_run, run_call, to_elems, to_f64s, SM_COUNT,
};
use engine::backend::cuda_emu::Buf;
use engine::backend::kernel_abi::sgd::{
    self, group_by_grad_dtype, multi_tensor_launch, SgdTensorArgs, CHUNK, SGD_FIRST,
};
use engine::nn::ParamKind;
use engine::optim::sgd::{MultiTensorHyper, SgdStep};
use engine::optim::{Sgd, SgdConfig};
use engine::DType;
use half::f16;

// ---- the fused multi-tensor SGD step ----

/// A buffer's address as a `SgdTensorArgs` field holds it.
fn addr<T: bytemuck::Pod>(b: &mut Buf<T>) -> u64 {
    b.ptr() as u64
}

enum GradBuf {
    H(Buf<f16>),
    S(Buf<f32>),
}

/// One parameter's device state on the fused path: f32 master (the parameter itself when f32),
/// f32 momentum (created by the first applied step), the f16 weights of an f16 parameter.
struct FusedSlot {
    dtype: DType,
    master: Buf<f32>,
    momentum: Option<Buf<f32>>,
    param_f16: Option<Buf<f16>>,
    wd: f64,
}

struct MultiCfg {
    chunk: i64,
    /// None: the launcher's grid (chunks clamped to 1..=sm_count·8); Some: a fixed grid.
    grid: Option<u32>,
    nesterov: bool,
    no_bias_decay: bool,
}

/// A gradient-dtype group on the "device": (gradient dtype, tensor count, the tensor table, the chunk
/// prefix sums, the total chunks).
type Uploaded = (DType, usize, Buf<SgdTensorArgs>, Buf<i64>, i64);

/// One emulated `multi_tensor_sgd_step`; returns whether the step was applied (flag clear).
fn fused_step(
    slots: &mut [FusedSlot],
    grads: &[Vec<f64>],
    lr: f64,
    momentum: f64,
    inv_scale: f64,
    cfg: &MultiCfg,
) -> bool {
    // Gradient buffers in their own dtype; momentum buffers for first steps start as NaN (the kernel
    // must not read them; the launcher passes zeros).
    let mut gbufs: Vec<GradBuf> = slots
        .iter()
        .zip(grads)
        .map(|(s, g)| match s.dtype {
            DType::F16 => GradBuf::H(Buf::from_slice(&to_elems::<f16>(g))),
            _ => GradBuf::S(Buf::from_slice(&to_elems::<f32>(g))),
        })
        .collect();
    let mut fresh: Vec<Option<Buf<f32>>> = slots
        .iter()
        .map(|s| {
            s.momentum
                .is_none()
                .then(|| Buf::<f32>::nan(s.master.to_vec().len()))
        })
        .collect();
    // The launcher's records, grouped as it groups them (kernel_abi's `group_by_grad_dtype`).
    let mut records = Vec::with_capacity(slots.len());
    for (i, s) in slots.iter_mut().enumerate() {
        let n = s.master.to_vec().len();
        let first = s.momentum.is_none();
        let momentum_addr = match (&mut s.momentum, &mut fresh[i]) {
            (Some(m), _) => addr(m),
            (None, Some(f)) => addr(f),
            (None, None) => unreachable!(),
        };
        let grad = match &mut gbufs[i] {
            GradBuf::H(b) => addr(b),
            GradBuf::S(b) => addr(b),
        };
        let args = SgdTensorArgs {
            master: addr(&mut s.master),
            momentum: momentum_addr,
            grad,
            param_f16: s.param_f16.as_mut().map_or(0, addr),
            numel: n as i64,
            weight_decay: s.wd as f32,
            flags: if first { SGD_FIRST } else { 0 },
        };
        records.push((s.dtype, args));
    }
    let groups = group_by_grad_dtype(cfg.chunk, records);
    let mut flag = Buf::from_slice(&[0u32]);
    let mut uploaded: Vec<Uploaded> = groups
        .iter()
        .map(|g| {
            (
                g.grad_dtype,
                g.tensors.len(),
                Buf::from_slice(&g.tensors),
                Buf::from_slice(&g.chunk_starts),
                g.chunks(),
            )
        })
        .collect();
    let grid = |chunks: i64| -> [u32; 3] {
        match cfg.grid {
            Some(g) => [g, 1, 1],
            None => multi_tensor_launch(chunks, SM_COUNT).grid(),
        }
    };
    let check_all = |slots: &[FusedSlot],
                     fresh: &[Option<Buf<f32>>],
                     gbufs: &[GradBuf],
                     up: &[Uploaded],
                     flag: &Buf<u32>| {
        for s in slots {
            s.master.check_guards("master").unwrap();
            if let Some(m) = &s.momentum {
                m.check_guards("momentum").unwrap();
            }
            if let Some(p) = &s.param_f16 {
                p.check_guards("f16 parameter").unwrap();
            }
        }
        for f in fresh.iter().flatten() {
            f.check_guards("fresh momentum").unwrap();
        }
        for g in gbufs {
            match g {
                GradBuf::H(b) => b.check_guards("f16 gradient").unwrap(),
                GradBuf::S(b) => b.check_guards("f32 gradient").unwrap(),
            }
        }
        for (_, _, ts, cs, _) in up {
            ts.check_guards("tensor table").unwrap();
            cs.check_guards("chunk starts").unwrap();
        }
        flag.check_guards("flag").unwrap();
    };
    // The launcher's two passes over every gradient-dtype group: the shared flag, then the step
    // (which reads the flag and skips everything once it is set).
    let hp = MultiTensorHyper {
        lr,
        momentum,
        nesterov: cfg.nesterov,
        inv_scale,
    };
    for step_pass in [false, true] {
        for (dt, n_tensors, ts, cs, chunks) in uploaded.iter_mut() {
            if *chunks == 0 {
                continue;
            }
            let (ts, cs, flag) = (ts.ptr(), cs.ptr(), flag.ptr());
            let call = if step_pass {
                sgd::multi_tensor_sgd(*dt, ts, *n_tensors, cs, cfg.chunk, &hp, flag)
            } else {
                sgd::multi_tensor_all_finite(*dt, ts, *n_tensors, cs, cfg.chunk, flag)
            };
            run_call(&call, grid(*chunks));
        }
        check_all(slots, &fresh, &gbufs, &uploaded, &flag);
    }
    let bits = flag.to_vec()[0];
    assert!(bits <= 1, "flag holds {bits:#x}, expected 0 or 1");
    let applied = bits == 0;
    if applied {
        for (s, f) in slots.iter_mut().zip(fresh) {
            if f.is_some() {
                s.momentum = f;
            }
        }
    } else {
        for (i, f) in fresh.iter().enumerate() {
            if let Some(f) = f {
                assert!(
                    f.to_vec().iter().all(|v| v.is_nan()),
                    "slot {i}: a skipped step wrote the fresh momentum buffer"
                );
            }
        }
    }
    applied
}

/// Bit patterns of a fused slot's state (to check that a skipped step changes nothing).
fn fused_bits(s: &FusedSlot) -> (Vec<u32>, Option<Vec<u32>>, Option<Vec<u16>>) {
    (
        s.master.to_vec().iter().map(|v| v.to_bits()).collect(),
        s.momentum
            .as_ref()
            .map(|m| m.to_vec().iter().map(|v| v.to_bits()).collect()),
        s.param_f16
            .as_ref()
            .map(|p| p.to_vec().iter().map(|v| v.to_bits()).collect()),
    )
}

fn run_multi_tensor(cfg: &MultiCfg, seed: u64) {
    // f16 weights (f32 masters) and f32 parameters: two gradient dtypes, so two kernel pairs; odd
    // sizes, an empty tensor (no chunks) between others, biases and norm parameters without decay.
    let specs = [
        spec(&[3001], DType::F16, ParamKind::Weight),
        spec(&[7, 3, 3, 3], DType::F16, ParamKind::Weight),
        spec(&[37], DType::F32, ParamKind::Bias),
        spec(&[5], DType::F32, ParamKind::Norm),
        spec(&[0], DType::F32, ParamKind::Weight),
        spec(&[513], DType::F32, ParamKind::Weight),
        spec(&[3], DType::F16, ParamKind::Norm),
    ];
    let config = SgdConfig {
        momentum: 0.9,
        nesterov: cfg.nesterov,
        weight_decay: 0.05,
        no_bias_decay: cfg.no_bias_decay,
    };
    let scale = 256.0;
    let ps = make_params(&specs, seed);
    let mut opt = Sgd::new(ps.clone(), config.clone()).unwrap();
    let mut slots: Vec<FusedSlot> = ps
        .iter()
        .zip(&specs)
        .map(|((_, p), s)| {
            let v = p.tensor.to_vec_f64().unwrap();
            FusedSlot {
                dtype: s.dtype,
                master: Buf::from_slice(&to_elems::<f32>(&v)),
                momentum: None,
                param_f16: (s.dtype == DType::F16).then(|| Buf::from_slice(&to_elems::<f16>(&v))),
                wd: decay_for(s.kind, config.weight_decay, config.no_bias_decay),
            }
        })
        .collect();
    for (step, (lr, poison)) in schedule().into_iter().enumerate() {
        let what = format!(
            "multi_tensor chunk={} grid={:?} nesterov={} no_bias_decay={} step {step}",
            cfg.chunk, cfg.grid, cfg.nesterov, cfg.no_bias_decay
        );
        let g = step_grads(&specs, step as u64, scale, &poison);
        let cpu_applied = opt.step(&cpu_grads(&ps, &specs, &g), lr, scale).unwrap();
        let before: Vec<_> = slots.iter().map(fused_bits).collect();
        let applied = fused_step(&mut slots, &g, lr, config.momentum, 1.0 / scale, cfg);
        assert_eq!(applied, cpu_applied, "{what}: applied (kernel flag vs CPU)");
        assert_eq!(applied, poison.is_empty(), "{what}: applied");
        if !applied {
            let after: Vec<_> = slots.iter().map(fused_bits).collect();
            assert!(before == after, "{what}: a skipped step changed the state");
        }
        let state = state_map(opt.state_tensors());
        for (i, ((_, p), s)) in ps.iter().zip(&mut slots).enumerate() {
            let w = format!("{what}, p{i} {:?} {}", specs[i].dims, s.dtype);
            let master = to_f64s(&s.master.to_vec());
            match &s.param_f16 {
                Some(p16) => {
                    check(
                        &format!("{w}: f16 weights"),
                        &to_f64s(&p16.to_vec()),
                        &p.tensor.to_vec_f64().unwrap(),
                        DType::F16,
                    );
                    check(
                        &format!("{w}: master"),
                        &master,
                        &state[&format!("p{i}.master")],
                        DType::F32,
                    );
                }
                None => check(
                    &format!("{w}: weights"),
                    &master,
                    &p.tensor.to_vec_f64().unwrap(),
                    DType::F32,
                ),
            }
            let key = format!("p{i}.momentum_buffer");
            assert_eq!(
                s.momentum.is_some(),
                state.contains_key(&key),
                "{w}: momentum exists"
            );
            if let Some(m) = &s.momentum {
                check(
                    &format!("{w}: momentum"),
                    &to_f64s(&m.to_vec()),
                    &state[&key],
                    DType::F32,
                );
            }
        }
    }
}

#[test]
fn multi_tensor_sgd_matches_the_cpu_optimiser() {
    // The launcher's chunk and grid (each tensor one chunk here).
    run_multi_tensor(
        &MultiCfg {
            chunk: CHUNK,
            grid: None,
            nesterov: true,
            no_bias_decay: true,
        },
        1000,
    );
    // Chunks smaller than a block: the f16 group has 34 chunks, so the 32-block grid wraps.
    run_multi_tensor(
        &MultiCfg {
            chunk: 100,
            grid: None,
            nesterov: false,
            no_bias_decay: true,
        },
        2000,
    );
    // Chunks larger than a block, all on one block, every parameter decayed.
    run_multi_tensor(
        &MultiCfg {
            chunk: 333,
            grid: Some(1),
            nesterov: true,
            no_bias_decay: false,
        },
        3000,
    );
}

/// The fused kernels on their own: one non-finite gradient element anywhere (first and last element of
/// a tensor, both sides of a chunk boundary, the middle; in either gradient dtype group) sets the
/// shared flag, and then neither group's `multi_tensor_sgd_*` changes a bit. Then the same table with
/// finite gradients against the CPU's `SgdStep` per tensor (f32, on the widened gradient), the f16
/// weights against its result rounded to f16.
#[test]
fn multi_tensor_flag_sees_every_position_and_skips_both_groups() {
    let sizes: [(usize, DType, bool, f64); 6] = [
        // (numel, gradient dtype, first step, weight decay)
        (250, DType::F16, false, 0.05),
        (0, DType::F32, true, 0.05),
        (1, DType::F16, true, 0.0),
        (101, DType::F32, false, 0.0),
        (37, DType::F16, true, 0.05),
        (300, DType::F32, false, 0.05),
    ];
    let (lr, mu, scale) = (0.1, 0.9, 64.0);
    let make = |seed: u64| -> Vec<FusedSlot> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, &(n, dtype, first, wd))| {
                let master: Vec<f32> = to_elems(&randn(n, 1.0, seed + 3 * i as u64));
                let p16: Vec<f16> = to_elems(&to_f64s(&master));
                FusedSlot {
                    dtype,
                    // An f16 parameter's master is its f16 weights widened (as `f32_master` makes it).
                    master: Buf::from_slice(&if dtype == DType::F16 {
                        to_elems(&to_f64s(&p16))
                    } else {
                        master
                    }),
                    momentum: (!first).then(|| {
                        Buf::from_slice(&to_elems::<f32>(&randn(n, 0.5, seed + 3 * i as u64 + 1)))
                    }),
                    param_f16: (dtype == DType::F16).then(|| Buf::from_slice(&p16)),
                    wd,
                }
            })
            .collect()
    };
    let grads = |seed: u64| -> Vec<Vec<f64>> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, &(n, dtype, ..))| {
                let v = randn(n, scale, seed + i as u64);
                match dtype {
                    DType::F16 => to_f64s(&to_elems::<f16>(&v)),
                    _ => to_f64s(&to_elems::<f32>(&v)),
                }
            })
            .collect()
    };
    let mut slots = make(7000);
    let clean = grads(7100);
    let mut case = 0;
    for (t, &(n, ..)) in sizes.iter().enumerate() {
        let mut at: Vec<usize> = [0, n / 2, 99, 100, n.wrapping_sub(1)]
            .into_iter()
            .filter(|&i| i < n)
            .collect();
        at.sort();
        at.dedup();
        for i in at {
            let bad = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY][case % 3];
            let mut g = clean.clone();
            g[t][i] = bad;
            // 8-element chunks: the f16 group has 38 chunks, so the launcher's 32-block grid wraps.
            for chunk in [100, 8, 33] {
                let cfg = MultiCfg {
                    chunk,
                    grid: if case % 2 == 0 { None } else { Some(1) },
                    nesterov: case % 2 == 0,
                    no_bias_decay: true,
                };
                case += 1;
                let before: Vec<_> = slots.iter().map(fused_bits).collect();
                assert!(
                    !fused_step(&mut slots, &g, lr, mu, 1.0 / scale, &cfg),
                    "{bad} at tensor {t} [{i}] of {n} (chunk {chunk}, grid {:?}): flag not set",
                    cfg.grid
                );
                let after: Vec<_> = slots.iter().map(fused_bits).collect();
                assert!(
                    before == after,
                    "{bad} at tensor {t} [{i}] (chunk {chunk}): a skipped step changed the state"
                );
            }
        }
    }
    for nesterov in [false, true] {
        let mut slots = make(7200);
        let before: Vec<(Vec<f64>, Option<Vec<f64>>)> = slots
            .iter()
            .map(|s| {
                (
                    to_f64s(&s.master.to_vec()),
                    s.momentum.as_ref().map(|m| to_f64s(&m.to_vec())),
                )
            })
            .collect();
        let cfg = MultiCfg {
            chunk: 100,
            grid: None,
            nesterov,
            no_bias_decay: true,
        };
        assert!(fused_step(&mut slots, &clean, lr, mu, 1.0 / scale, &cfg));
        for (t, (s, (p, buf))) in slots.iter().zip(before).enumerate() {
            let (n, _, first, wd) = sizes[t];
            let k = SgdStep {
                lr,
                momentum: mu,
                nesterov,
                weight_decay: wd,
                inv_scale: 1.0 / scale,
                first_step: first,
            };
            let want = cpu_run(
                &k,
                vec![
                    CpuStorage::F32(to_elems(&p)),
                    CpuStorage::F32(to_elems(&clean[t])),
                    CpuStorage::F32(to_elems(&buf.unwrap_or(vec![0.0; n]))),
                ],
                &[DType::F32, DType::F32],
            );
            let what = format!("multi_tensor nesterov={nesterov} tensor {t} ({n} elements)");
            check(
                &format!("{what}: master"),
                &to_f64s(&s.master.to_vec()),
                &want[0],
                DType::F32,
            );
            check(
                &format!("{what}: momentum"),
                &to_f64s(&s.momentum.as_ref().unwrap().to_vec()),
                &want[1],
                DType::F32,
            );
            if let Some(p16) = &s.param_f16 {
                check(
                    &format!("{what}: f16 weights"),
                    &to_f64s(&p16.to_vec()),
                    &to_f64s(&to_elems::<f16>(&want[0])),
                    DType::F16,
                );
            }
        }
    }
}

/// Every kernel of the `multi_tensor_` family is exercised above (the per-tensor kernels' families
/// are tests/cuda_emu_optim_kernels.rs's).
#[test]
fn every_multi_tensor_kernel_is_covered() {
    let covered = [
        "multi_tensor_all_finite_f16",
        "multi_tensor_all_finite_f32",
        "multi_tensor_sgd_f16",
        "multi_tensor_sgd_f32",
    ];
    assert_family_covered(&covered, &["multi_tensor_"]);
}
