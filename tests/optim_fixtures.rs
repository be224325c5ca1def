//! The optimisers against torch.optim (tests/fixtures/optim.safetensors, tools/fixtures/gen_optim.py):
//! three steps of Adam (default betas; pix2pix's betas with L2 decay, no bias decay and a loss scale)
//! and of Nesterov SGD, on every available device, in f32, f64 and f16 (f32 masters). Also: Adam's
//! state survives a save/load between steps, and a step with a non-finite gradient changes nothing
//! (on a CUDA device, one read of device memory checks every gradient).

use engine::backend::take_device_reads;
use engine::nn::{Param, ParamKind};
use engine::optim::{Adam, AdamConfig, Sgd, SgdConfig};
use engine::testing::{test_devices, Fixtures};
use engine::{DType, Device, GradStore, Tensor};

enum Opt {
    Adam(Adam),
    Sgd(Sgd),
}

impl Opt {
    fn step(&mut self, g: &GradStore, lr: f64, scale: f64) -> bool {
        match self {
            Opt::Adam(o) => o.step(g, lr, scale).unwrap(),
            Opt::Sgd(o) => o.step(g, lr, scale).unwrap(),
        }
    }
}

fn params(fx: &Fixtures, case: &str, dtype: DType, dev: Device) -> Vec<(String, Param)> {
    ["w", "b"]
        .iter()
        .map(|&k| {
            let kind = if k == "b" {
                ParamKind::Bias
            } else {
                ParamKind::Weight
            };
            let t = fx.tensor(&format!("{case}/p0/{k}"), dtype, dev);
            (k.to_string(), Param::new(t, kind))
        })
        .collect()
}

fn make_opt(p: &serde_json::Value, ps: Vec<(String, Param)>) -> Opt {
    let f = |k: &str| p[k].as_f64().unwrap();
    match p["optim"].as_str().unwrap() {
        "adam" => Opt::Adam(
            Adam::new(
                ps,
                AdamConfig {
                    beta1: f("beta1"),
                    beta2: f("beta2"),
                    eps: f("eps"),
                    weight_decay: f("weight_decay"),
                    no_bias_decay: p["no_bias_decay"].as_bool().unwrap(),
                },
            )
            .unwrap(),
        ),
        _ => Opt::Sgd(
            Sgd::new(
                ps,
                SgdConfig {
                    momentum: f("momentum"),
                    nesterov: p["nesterov"].as_bool().unwrap(),
                    weight_decay: f("weight_decay"),
                    no_bias_decay: p["no_bias_decay"].as_bool().unwrap(),
                },
            )
            .unwrap(),
        ),
    }
}

fn grads(fx: &Fixtures, case: &str, t: usize, ps: &[(String, Param)], dtype: DType) -> GradStore {
    let mut g = GradStore::default();
    for (k, p) in ps {
        let dev = p.tensor.device();
        g.insert(
            &p.tensor,
            fx.tensor(&format!("{case}/grad{t}/{k}"), dtype, dev),
        );
    }
    g
}

fn check(fx: &Fixtures, case: &str, t: usize, ps: &[(String, Param)], tol: f64) {
    for (k, p) in ps {
        let want = &fx.raw(&format!("{case}/after{t}/{k}")).1;
        let got = p.tensor.to_vec_f64().unwrap();
        for (i, (a, b)) in got.iter().zip(want).enumerate() {
            assert!(
                (a - b).abs() <= tol * (1.0 + b.abs()),
                "{case} step {t} {k}[{i}]: engine {a}, torch {b} (tol {tol})"
            );
        }
    }
}

#[test]
fn optimisers_match_torch_optim_on_every_device() {
    let fx = Fixtures::load("optim");
    for dev in test_devices() {
        for (dtype, tol) in [(DType::F64, 1e-12), (DType::F32, 2e-6), (DType::F16, 2e-3)] {
            for case in fx.cases() {
                let p = fx.params(&case);
                let ps = params(&fx, &case, dtype, dev);
                let mut opt = make_opt(&p, ps.clone());
                let scale = p["loss_scale"].as_f64().unwrap();
                for t in 0..p["steps"].as_u64().unwrap() as usize {
                    let lr = p["lrs"][t].as_f64().unwrap();
                    // f16 gradients would overflow at loss scale 1024 only past 64; these are O(1).
                    assert!(opt.step(&grads(&fx, &case, t, &ps, dtype), lr, scale));
                    check(&fx, &case, t, &ps, tol);
                }
            }
        }
    }
}

#[test]
fn adam_state_round_trips_through_its_tensors() {
    let fx = Fixtures::load("optim");
    let case = "adam_pix2pix_wd";
    let p = fx.params(case);
    let scale = p["loss_scale"].as_f64().unwrap();
    let lr = |t: usize| p["lrs"][t].as_f64().unwrap();
    let ps = params(&fx, case, DType::F16, Device::Cpu);
    let Opt::Adam(mut first) = make_opt(&p, ps.clone()) else {
        unreachable!()
    };
    for t in 0..2 {
        assert!(first
            .step(&grads(&fx, case, t, &ps, DType::F16), lr(t), scale)
            .unwrap());
    }
    let saved: std::collections::BTreeMap<String, Tensor> =
        first.state_tensors().unwrap().into_iter().collect();
    assert!(saved.contains_key("w.exp_avg") && saved.contains_key("w.master"));
    // A fresh optimiser over the same parameters, restored from the saved state, takes step 3.
    let Opt::Adam(mut second) = make_opt(&p, ps.clone()) else {
        unreachable!()
    };
    second.load_state_tensors(&saved).unwrap();
    assert_eq!(second.steps(), 2);
    assert!(second
        .step(&grads(&fx, case, 2, &ps, DType::F16), lr(2), scale)
        .unwrap());
    check(&fx, case, 2, &ps, 2e-3);
}

/// On every device: a step with one non-finite gradient changes nothing; on a CUDA device the
/// finiteness check of all gradients is one read of device memory, in a skipped step and in a taken
/// one (one read per gradient would drain the device's queue once per parameter tensor).
#[test]
fn a_non_finite_gradient_skips_the_whole_step() {
    let fx = Fixtures::load("optim");
    let case = "adam_default";
    for dev in test_devices() {
        let ps = params(&fx, case, DType::F32, dev);
        let Opt::Adam(mut opt) = make_opt(&fx.params(case), ps.clone()) else {
            unreachable!()
        };
        let values = || -> Vec<Vec<f64>> {
            ps.iter()
                .map(|(_, p)| p.tensor.to_vec_f64().unwrap())
                .collect()
        };
        let before = values();
        let mut g = grads(&fx, case, 0, &ps, DType::F32);
        let mut bad = fx.raw(&format!("{case}/grad0/b")).1.clone();
        bad[1] = f64::NAN;
        g.insert(
            &ps[1].1.tensor,
            Tensor::from_f64s(&bad, vec![4], DType::F32, dev).unwrap(),
        );
        take_device_reads();
        assert!(!opt.step(&g, 1e-3, 1.0).unwrap(), "{dev}");
        let skipped_reads = take_device_reads();
        assert_eq!(opt.steps(), 0, "{dev}");
        assert_eq!(
            before,
            values(),
            "{dev}: a skipped step changed a parameter"
        );
        let g = grads(&fx, case, 0, &ps, DType::F32);
        take_device_reads();
        assert!(opt.step(&g, 1e-3, 1.0).unwrap(), "{dev}");
        let taken_reads = take_device_reads();
        assert_ne!(before, values(), "{dev}: a finite step changed nothing");
        if !dev.is_cpu() {
            assert_eq!(
                (skipped_reads, taken_reads),
                (1, 1),
                "{dev}: device reads per step"
            );
        }
    }
}

/// The multi-tensor CUDA SGD step (what `Sgd::step` runs when every parameter is on one GPU) against
/// the per-tensor step on the same GPU and against the CPU: f16 weights with f32 masters beside f32
/// biases and BN parameters in one optimiser (two gradient dtypes, so two kernel pairs), one tensor
/// spanning three 32Ki-element chunks, Nesterov, no bias decay, a loss scale, then a step with one
/// non-finite gradient that must change nothing on any path.
#[test]
fn multi_tensor_sgd_matches_the_per_tensor_step() {
    let Some(gpu) = engine::testing::cuda_device() else {
        return;
    };
    let specs: [(&[usize], DType, ParamKind); 4] = [
        (&[70_000], DType::F16, ParamKind::Weight),
        (&[32, 3, 3, 3], DType::F16, ParamKind::Weight),
        (&[32], DType::F32, ParamKind::Bias),
        (&[32], DType::F32, ParamKind::Norm),
    ];
    let make = |dev: Device| -> Vec<(String, Param)> {
        specs
            .iter()
            .enumerate()
            .map(|(i, (dims, dt, kind))| {
                let t = Tensor::randn(dims.to_vec(), 0.0, 0.5, 100 + i as u64, *dt, dev).unwrap();
                (format!("p{i}"), Param::new(t, *kind))
            })
            .collect()
    };
    let config = SgdConfig {
        momentum: 0.9,
        nesterov: true,
        weight_decay: 5e-4,
        no_bias_decay: true,
    };
    let scale = 256.0;
    let grads_for = |ps: &[(String, Param)], step: u64, poison: bool| {
        let mut g = GradStore::default();
        for (i, (_, p)) in ps.iter().enumerate() {
            let t = &p.tensor;
            let mut v = Tensor::randn(
                t.shape().clone(),
                0.0,
                scale,
                1000 * step + i as u64,
                DType::F64,
                Device::Cpu,
            )
            .unwrap()
            .to_vec_f64()
            .unwrap();
            if poison && i == 1 {
                v[7] = f64::INFINITY;
            }
            g.insert(
                t,
                Tensor::from_f64s(&v, t.shape().clone(), t.dtype(), t.device()).unwrap(),
            );
        }
        g
    };
    let values = |ps: &[(String, Param)]| -> Vec<Vec<f64>> {
        ps.iter()
            .map(|(_, p)| p.tensor.to_vec_f64().unwrap())
            .collect()
    };
    let (cpu_ps, fused_ps, single_ps) = (make(Device::Cpu), make(gpu), make(gpu));
    let mut cpu = Sgd::new(cpu_ps.clone(), config.clone()).unwrap();
    let mut fused = Sgd::new(fused_ps.clone(), config.clone()).unwrap();
    let mut single = Sgd::new(single_ps.clone(), config.clone()).unwrap();
    fused.set_multi_tensor(true); // whatever ENGINE_MULTI_TENSOR_SGD says
    single.set_multi_tensor(false);
    for step in 0..4u64 {
        // Step 2 carries an infinite gradient: every path must skip it.
        let poison = step == 2;
        let lr = 0.1 / (1.0 + step as f64);
        let before = values(&fused_ps);
        let applied = [
            cpu.step(&grads_for(&cpu_ps, step, poison), lr, scale)
                .unwrap(),
            fused
                .step(&grads_for(&fused_ps, step, poison), lr, scale)
                .unwrap(),
            single
                .step(&grads_for(&single_ps, step, poison), lr, scale)
                .unwrap(),
        ];
        assert_eq!(
            applied, [!poison; 3],
            "step {step}: applied on CPU, multi-tensor, per-tensor"
        );
        if poison {
            assert_eq!(
                values(&fused_ps),
                before,
                "a skipped multi-tensor step changed a parameter"
            );
        }
        let (want, got, alt) = (values(&cpu_ps), values(&fused_ps), values(&single_ps));
        for (i, (dims, dt, _)) in specs.iter().enumerate() {
            // f16 parameters are rounded copies of f32 masters: they may differ by one f16 ulp where
            // an FMA changed the master's last bit; f32 parameters by a few f32 ulps.
            let tol = if *dt == DType::F16 { 1e-3 } else { 1e-6 };
            for (j, ((a, b), c)) in got[i].iter().zip(&want[i]).zip(&alt[i]).enumerate() {
                assert!(
                    (a - b).abs() <= tol * (1.0 + b.abs()) && (a - c).abs() <= tol * (1.0 + c.abs()),
                    "step {step}, p{i} {dims:?}[{j}]: multi-tensor {a}, CPU {b}, per-tensor CUDA {c}"
                );
            }
        }
        // The f32 masters and momentum buffers too (what a checkpoint saves).
        let state = |o: &Sgd| -> std::collections::BTreeMap<String, Vec<f64>> {
            o.state_tensors()
                .into_iter()
                .map(|(k, t)| (k, t.to_vec_f64().unwrap()))
                .collect()
        };
        let (sw, sg) = (state(&cpu), state(&fused));
        assert_eq!(sw.keys().collect::<Vec<_>>(), sg.keys().collect::<Vec<_>>());
        for (k, w) in &sw {
            for (j, (a, b)) in sg[k].iter().zip(w).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                    "step {step}, {k}[{j}]: multi-tensor {a}, CPU {b}"
                );
            }
        }
    }
}

/// SGD state of a channels-last f16 parameter saved after one step and loaded into a fresh optimizer
/// continues exactly like the uninterrupted one, on every device. On CUDA the multi-tensor kernel
/// pairs master, momentum and gradient elements by storage order, so the loaded momentum buffer
/// (files hold contiguous tensors) must be put back into the master's channels-last format.
#[test]
fn sgd_state_of_a_channels_last_parameter_round_trips() {
    use engine::MemoryFormat::ChannelsLast;
    let config = SgdConfig {
        momentum: 0.9,
        nesterov: true,
        weight_decay: 5e-4,
        no_bias_decay: true,
    };
    for dev in test_devices() {
        let make = || {
            let t = Tensor::randn([4, 3, 3, 5], 0.0, 0.5, 7, DType::F16, dev)
                .unwrap()
                .to_format(ChannelsLast)
                .unwrap();
            vec![("w".to_string(), Param::new(t, ParamKind::Weight))]
        };
        let grads = |ps: &[(String, Param)], step: u64| {
            let t = &ps[0].1.tensor;
            let g = Tensor::randn(t.shape().clone(), 0.0, 1.0, 50 + step, DType::F16, dev)
                .unwrap()
                .to_format(ChannelsLast)
                .unwrap();
            let mut store = GradStore::default();
            store.insert(t, g);
            store
        };
        let (a_ps, b_ps) = (make(), make());
        let mut a = Sgd::new(a_ps.clone(), config.clone()).unwrap();
        assert!(a.step(&grads(&a_ps, 0), 0.1, 1.0).unwrap());
        let saved: std::collections::BTreeMap<String, Tensor> = a
            .state_tensors()
            .into_iter()
            .map(|(k, t)| (k, t.contiguous().unwrap().to_device(Device::Cpu).unwrap()))
            .collect();
        let mut b = Sgd::new(b_ps.clone(), config.clone()).unwrap();
        b_ps[0].1.tensor.assign(&a_ps[0].1.tensor).unwrap();
        b.load_state_tensors(&saved).unwrap();
        assert!(a.step(&grads(&a_ps, 1), 0.1, 1.0).unwrap());
        assert!(b.step(&grads(&b_ps, 1), 0.1, 1.0).unwrap());
        assert_eq!(
            b_ps[0].1.tensor.to_vec_f64().unwrap(),
            a_ps[0].1.tensor.to_vec_f64().unwrap(),
            "{dev}: the resumed step differs from the uninterrupted one"
        );
    }
}
