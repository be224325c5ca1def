//! `engine bench-stylize` and `engine bench-pix2pix`: the generative models on synthetic inputs,
//! timed as `bench-step` times ResNets (warm-up first, device synchronised around each timed
//! iteration), for the GPU check to set beside tools/torch_gpu_bench_generative.py on the same card.
//!
//! - stylize: the AdaIN stylizer at full width (VGG-19 to relu4_1 + decoder, random weights, the
//!   architecture is what costs) on a batch of content and style images, no gradient: images/s.
//! - pix2pix: one training iteration of unet_256 (levels = log2(image)) and the 70×70 PatchGAN:
//!   D step on (real, detached fake), then G step on GAN + 100·L1, Adam(2e-4, β1 0.5) for both.
//!   f32 (as pix2pix trains).

use super::{device_json, failed, stats_ms, sync};
use crate::backend::cuda::take_widened_elements;
use crate::backend::take_device_reads;
use crate::models::{PatchGan, PatchGanConfig, Stylizer, UnetConfig, UnetGenerator};
use crate::nn::init::Init;
use crate::nn::{named_params, Mode, Module};
use crate::optim::{Adam, AdamConfig};
use crate::pix2pix::losses::{discriminator_loss, generator_loss};
use crate::{DType, Device, Error, Result, Tensor};
use serde_json::{json, Value};
use std::time::Instant;

/// What `engine bench-stylize` runs.
#[derive(Clone, Debug)]
pub struct StylizeBenchOptions {
    pub batch: usize,
    pub image: usize,
    /// VGG width (64 for the real network).
    pub width: usize,
    pub fp16: bool,
    pub iters: usize,
    pub warmup: usize,
    pub device: Device,
}

/// What `engine bench-pix2pix` trains.
#[derive(Clone, Debug)]
pub struct Pix2pixBenchOptions {
    pub batch: usize,
    pub image: usize,
    pub ngf: usize,
    pub ndf: usize,
    pub steps: usize,
    pub warmup: usize,
    pub device: Device,
}

impl Pix2pixBenchOptions {
    /// A tiny pix2pix pair (32², ngf = ndf = 4, batch 1), one warm-up and one timed step: tests and
    /// smoke runs.
    pub fn smoke(device: Device) -> Pix2pixBenchOptions {
        Pix2pixBenchOptions {
            batch: 1,
            image: 32,
            ngf: 4,
            ndf: 4,
            steps: 1,
            warmup: 1,
            device,
        }
    }
}

/// Times `iters` calls of `f` after `warmup` untimed ones; ms per call.
fn timed(
    device: Device,
    warmup: usize,
    iters: usize,
    what: &str,
    mut f: impl FnMut() -> Result<()>,
) -> Result<Vec<f64>> {
    let mut times = Vec::with_capacity(iters);
    let _ = take_widened_elements();
    for i in 0..warmup + iters {
        sync(device)?;
        if i == warmup {
            take_device_reads();
        }
        let t = Instant::now();
        f()?;
        sync(device)?;
        let ms = t.elapsed().as_secs_f64() * 1e3;
        if i >= warmup {
            times.push(ms);
        }
        eprintln!(
            "{what}: {}/{} {ms:.1} ms{}",
            i + 1,
            warmup + iters,
            if i < warmup { " (warm-up)" } else { "" }
        );
    }
    Ok(times)
}

fn finish(mut out: Value, times: &[f64], batch: usize, device: Device) -> Value {
    let total_s: f64 = times.iter().sum::<f64>() / 1e3;
    out["status"] = json!("ok");
    out["iter_ms"] = stats_ms(times);
    out["images_per_s"] = json!((batch * times.len()) as f64 / total_s.max(1e-12));
    out["device_report"] = device_json(device);
    // f16 elements CUDA kernels had to widen to f32 copies during the timed calls (none expected).
    out["widened_f16_elements"] = json!(take_widened_elements());
    // Host-blocking reads of device memory per timed call (each drains the device's queue).
    out["device_reads_per_iter"] = json!(take_device_reads() as f64 / times.len().max(1) as f64);
    out
}

/// `engine bench-stylize`.
pub fn bench_stylize(o: &StylizeBenchOptions) -> Value {
    let base = json!({"kind": "bench-stylize", "batch": o.batch, "image": o.image, "width": o.width,
        "fp16": o.fp16, "iters": o.iters, "warmup": o.warmup, "device": o.device.to_string()});
    let run = || -> Result<Value> {
        if o.batch == 0 || o.iters == 0 || o.image % 8 != 0 {
            return Err(Error::Msg(
                "bench-stylize needs --batch ≥ 1, --iters ≥ 1 and --image a multiple of 8".into(),
            ));
        }
        let dtype = if o.fp16 { DType::F16 } else { DType::F32 };
        let st = Stylizer::new(&mut Init::new(0, dtype, o.device), o.width)?;
        let dims = [o.batch, 3, o.image, o.image];
        let content = Tensor::rand_uniform(dims, 0.0, 1.0, 1, dtype, o.device)?;
        let style = Tensor::rand_uniform(dims, 0.0, 1.0, 2, dtype, o.device)?;
        let _g = crate::NoGradGuard::new();
        let times = timed(o.device, o.warmup, o.iters, "bench-stylize", || {
            st.stylize(&content, &[(style.clone(), 1.0)], 1.0, false)?;
            Ok(())
        })?;
        Ok(finish(base.clone(), &times, o.batch, o.device))
    };
    run().unwrap_or_else(|e| failed(base.clone(), &e))
}

/// `engine bench-pix2pix`.
pub fn bench_pix2pix(o: &Pix2pixBenchOptions) -> Value {
    let base = json!({"kind": "bench-pix2pix", "batch": o.batch, "image": o.image, "ngf": o.ngf,
        "ndf": o.ndf, "steps": o.steps, "warmup": o.warmup, "device": o.device.to_string()});
    let run = || -> Result<Value> {
        if o.batch == 0 || o.steps == 0 || !o.image.is_power_of_two() || o.image < 16 {
            return Err(Error::Msg(
                "bench-pix2pix needs --batch ≥ 1, --steps ≥ 1 and --image a power of two ≥ 16"
                    .into(),
            ));
        }
        let dev = o.device;
        let mut init = Init::new(0, DType::F32, dev);
        let g = UnetGenerator::new(
            UnetConfig {
                num_downs: o.image.trailing_zeros() as usize,
                ngf: o.ngf,
                ..UnetConfig::unet_256(3, 3)
            },
            &mut init,
        )?;
        let d = PatchGan::new(
            PatchGanConfig {
                ndf: o.ndf,
                ..PatchGanConfig::pix2pix(6)
            },
            &mut init,
        )?;
        let adam = AdamConfig {
            beta1: 0.5,
            ..AdamConfig::default()
        };
        let mut opt_g = Adam::new(named_params(&g), adam.clone())?;
        let mut opt_d = Adam::new(named_params(&d), adam)?;
        let dims = [o.batch, 3, o.image, o.image];
        let a = Tensor::rand_uniform(dims, -1.0, 1.0, 1, DType::F32, dev)?;
        let b = Tensor::rand_uniform(dims, -1.0, 1.0, 2, DType::F32, dev)?;
        // The trainer's own objective (src/pix2pix/losses.rs), scalar read-backs included.
        let times = timed(dev, o.warmup, o.steps, "bench-pix2pix", || {
            let fake = g.forward(&a, Mode::TRAIN)?;
            let loss_d = discriminator_loss(&d, &a, &b, &fake)?;
            opt_d.step(&loss_d.loss.backward_releasing()?, 2e-4, 1.0)?;
            let loss_g = generator_loss(&d, &a, &b, &fake, 100.0, None)?;
            opt_g.step(&loss_g.loss.backward_releasing()?, 2e-4, 1.0)?;
            Ok(())
        })?;
        let mut out = finish(base.clone(), &times, o.batch, dev);
        out["parameters_g"] = json!(crate::nn::count_trainable(&g));
        out["parameters_d"] = json!(crate::nn::count_trainable(&d));
        Ok(out)
    };
    run().unwrap_or_else(|e| failed(base.clone(), &e))
}
