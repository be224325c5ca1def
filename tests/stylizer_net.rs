//! The AdaIN stylizer (src/models/stylizer.rs) against the PyTorch reference of
//! tools/fixtures/gen_stylizer.py (fixture `stylizer`, width 4):
//! - parameter names and shapes are the state-dict keys of naoto0804/pytorch-AdaIN's `net.vgg`
//!   (through relu4_1) and `net.decoder` at full width; the encoder is frozen;
//! - encoder taps, decoder output, style transfer (paired and broadcast styles, α 1 and 0.6, a
//!   two-style mix, colour preservation with CORAL) and the training losses with their gradients
//!   w.r.t. the content image and the decoder's weights, in f64 (per element) and f32 (relative L2
//!   within 4× PyTorch's own f32 error), on every device;
//! - loading converted weight files, ignoring the full VGG's later keys, and the loader's errors;
//! - an f64 finite-difference check of the decoder + AdaIN path.

use engine::models::stylizer::{coral, Decoder, Stylizer, VggEncoder, ADAIN_EPS, TAP_NAMES};
use engine::nn::init::Init;
use engine::nn::state::save_tensors;
use engine::nn::{named_params, Module, ParamKind};
use engine::testing::{assert_close_deep, check_gradients, randn_var, test_devices, Fixtures};
use engine::{DType, Device, Tensor};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// The fixture nets' width (WIDTH in gen_stylizer.py).
const WIDTH: usize = 4;

/// Copies the fixture's weights into `net`; every parameter must have one.
fn assign_weights(fx: &Fixtures, prefix: &str, net: &dyn Module, device: Device) {
    for (name, p) in named_params(net) {
        let t = fx.tensor(
            &format!("weights/{prefix}/{name}"),
            p.tensor.dtype(),
            device,
        );
        p.tensor
            .assign(&t)
            .unwrap_or_else(|e| panic!("{prefix}: {name}: {e}"));
    }
}

fn fixture_stylizer(fx: &Fixtures, dtype: DType, device: Device) -> Stylizer {
    let s = Stylizer::new(&mut Init::new(0, dtype, device), WIDTH).unwrap();
    assign_weights(fx, "vgg", &s.encoder, device);
    assign_weights(fx, "decoder", &s.decoder, device);
    s
}

/// Runs `f` for f64 and f32 on every device with the fixture's stylizer.
fn for_each_setting(f: impl Fn(&Fixtures, &Stylizer, DType, Device)) {
    let fx = Fixtures::load("stylizer");
    for device in test_devices() {
        for dtype in [DType::F64, DType::F32] {
            f(&fx, &fixture_stylizer(&fx, dtype, device), dtype, device);
        }
    }
}

#[track_caller]
fn check(fx: &Fixtures, case: &str, name: &str, actual: &Tensor, dtype: DType) {
    check_with_floor(fx, case, name, actual, dtype, 0.0);
}

/// [`check`] with the relative tolerance raised to at least `rtol_floor`.
#[track_caller]
fn check_with_floor(
    fx: &Fixtures,
    case: &str,
    name: &str,
    actual: &Tensor,
    dtype: DType,
    rtol_floor: f64,
) {
    let (atol, rtol) = fx.network_tolerance(case, dtype);
    let rtol = rtol.max(rtol_floor);
    let (shape, expected) = fx.raw(name);
    assert_eq!(actual.dims(), &shape[..], "{name}: shape");
    let what = format!("{name} [{dtype} on {}]", actual.device());
    assert_close_deep(&what, actual, expected, dtype, atol, rtol);
}

fn names_and_shapes(m: &dyn Module) -> Vec<(String, Vec<usize>)> {
    named_params(m)
        .into_iter()
        .map(|(n, p)| (n, p.tensor.dims().to_vec()))
        .collect()
}

fn layout(fx: &Fixtures, net: &str) -> Vec<(String, Vec<usize>)> {
    serde_json::from_value(fx.params("layout")[net].clone()).expect("layout")
}

#[test]
fn parameter_names_are_the_reference_state_dict_keys() {
    let fx = Fixtures::load("stylizer");
    let mut init = Init::new(0, DType::F32, Device::Cpu);
    let enc = VggEncoder::new(&mut init, 64).unwrap();
    let full_vgg = layout(&fx, "vgg");
    // The encoder is the full VGG's prefix through relu4_1 (entry 30); the rest are conv5_x keys.
    let ours = names_and_shapes(&enc);
    assert_eq!(ours[..], full_vgg[..ours.len()]);
    for (k, _) in &full_vgg[ours.len()..] {
        let index: usize = k.split('.').next().unwrap().parse().unwrap();
        assert!(index > 30, "{k} is not past relu4_1");
    }
    let dec = Decoder::new(&mut init, 64).unwrap();
    assert_eq!(names_and_shapes(&dec), layout(&fx, "decoder"));
    assert!(named_params(&enc)
        .iter()
        .all(|(_, p)| p.kind == ParamKind::Buffer && !p.tensor.is_variable()));
    for (n, p) in named_params(&dec) {
        let want = if n.ends_with("weight") {
            ParamKind::Weight
        } else {
            ParamKind::Bias
        };
        assert_eq!(p.kind, want, "{n}");
    }
}

#[test]
fn encoder_taps_match_pytorch() {
    for_each_setting(|fx, s, dtype, device| {
        let x = fx.tensor("in/content_a", dtype, device);
        let taps = s.encoder.features(&x).unwrap();
        for (t, name) in taps.iter().zip(TAP_NAMES) {
            check(
                fx,
                "encoder",
                &format!("encoder/content_a/{name}"),
                t,
                dtype,
            );
        }
        for img in ["content_b", "style_b"] {
            let x = fx.tensor(&format!("in/{img}"), dtype, device);
            let r4 = s.encoder.encode(&x).unwrap();
            check(fx, "encoder", &format!("encoder/{img}/relu4_1"), &r4, dtype);
        }
    });
}

#[test]
fn decoder_matches_pytorch() {
    for_each_setting(|fx, s, dtype, device| {
        let x = fx.tensor("in/content_a", dtype, device);
        let out = s.decoder.decode(&s.encoder.encode(&x).unwrap()).unwrap();
        check(fx, "decoder", "decoder/out", &out, dtype);
    });
}

/// Runs a style-transfer case as its params describe it.
fn transfer(fx: &Fixtures, s: &Stylizer, case: &str, dtype: DType, device: Device) -> Tensor {
    let p = fx.params(case);
    let content = fx.tensor(
        &format!("in/{}", p["content"].as_str().unwrap()),
        dtype,
        device,
    );
    let styles: Vec<(Tensor, f64)> = p["styles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let img = format!("in/{}", e[0].as_str().unwrap());
            (fx.tensor(&img, dtype, device), e[1].as_f64().unwrap())
        })
        .collect();
    let alpha = p["alpha"].as_f64().unwrap();
    let preserve = p["preserve_color"].as_bool().unwrap();
    engine::no_grad(|| s.stylize(&content, &styles, alpha, preserve)).unwrap()
}

#[test]
fn style_transfer_matches_pytorch() {
    for_each_setting(|fx, s, dtype, device| {
        for case in ["transfer_a", "transfer_b", "mix", "color"] {
            let out = transfer(fx, s, case, dtype, device);
            check(fx, case, &format!("{case}/out"), &out, dtype);
        }
    });
}

#[test]
fn coral_matches_pytorch() {
    let fx = Fixtures::load("stylizer");
    for dtype in [DType::F64, DType::F32] {
        let style = fx.tensor("in/style_b", dtype, Device::Cpu);
        let content = fx.tensor("in/content_b", dtype, Device::Cpu);
        let out = coral(&style, &content).unwrap();
        assert_eq!(out.dtype(), dtype);
        check(&fx, "color", "color/coral", &out, dtype);
    }
    // A constant channel has no colour statistics to match.
    let flat = Tensor::full(0.5, vec![1, 3, 4, 4], DType::F64, Device::Cpu).unwrap();
    let img = fx.tensor("in/content_a", DType::F64, Device::Cpu);
    let e = coral(&flat, &img).unwrap_err().to_string();
    assert!(e.contains("channel 0 of the source image has std 0"), "{e}");
}

/// The f32 floor of the loss gradients' relative L2 tolerance. These gradients are ill-conditioned in
/// the fixture's α = 0.8 case: given the simulated CUDA device's f32 AdaIN output, which is as close
/// to f64 as the CPU's (1.6e-6 relative L2 both), the gradient w.r.t. that output differs from f64 by
/// 7.2e-3 even when everything after AdaIN runs on the CPU, against 9.9e-5 from the CPU's own AdaIN
/// output (measured in session 12). So which f32 rounding of the AdaIN target a device produces decides
/// the error, not the kernels' accuracy; f64 (checked per element above) is where they are pinned down.
const LOSS_GRAD_F32_RTOL: f64 = 2e-2;

#[track_caller]
fn check_loss_grad(fx: &Fixtures, name: &str, actual: &Tensor, dtype: DType) {
    let floor = if dtype == DType::F64 {
        0.0
    } else {
        LOSS_GRAD_F32_RTOL
    };
    check_with_floor(fx, "loss", name, actual, dtype, floor);
}

#[test]
fn losses_and_gradients_match_pytorch() {
    for_each_setting(|fx, s, dtype, device| {
        let p = fx.params("loss");
        let content = fx.tensor("in/content_a", dtype, device).var();
        let style = fx.tensor("in/style_a", dtype, device);
        let (loss_c, loss_s) = s
            .losses(&content, &style, p["alpha"].as_f64().unwrap())
            .unwrap();
        check(fx, "loss", "loss/loss_c", &loss_c, dtype);
        check(fx, "loss", "loss/loss_s", &loss_s, dtype);
        let total = loss_c
            .add(&loss_s.scale(p["style_weight"].as_f64().unwrap()).unwrap())
            .unwrap();
        let grads = total.backward().unwrap();
        check_loss_grad(
            fx,
            "loss/grad/content",
            grads.get(&content).expect("content gradient"),
            dtype,
        );
        for (name, param) in named_params(&s.decoder) {
            let g = grads
                .get(&param.tensor)
                .unwrap_or_else(|| panic!("no gradient for decoder {name}"));
            check_loss_grad(fx, &format!("loss/grad/decoder/{name}"), g, dtype);
        }
        for (name, param) in named_params(&s.encoder) {
            assert!(grads.get(&param.tensor).is_none(), "frozen {name} got one");
        }
    });
}

/// A scratch folder for weight files, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(test: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("engine-stylizer-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The fixture's weights of one net as a converted (f32 safetensors) file would hold them.
fn weight_file(fx: &Fixtures, prefix: &str) -> BTreeMap<String, Tensor> {
    let s = Stylizer::new(&mut Init::new(0, DType::F32, Device::Cpu), WIDTH).unwrap();
    let net: &dyn Module = if prefix == "vgg" {
        &s.encoder
    } else {
        &s.decoder
    };
    named_params(net)
        .into_iter()
        .map(|(n, _)| {
            let t = fx.tensor(&format!("weights/{prefix}/{n}"), DType::F32, Device::Cpu);
            (n, t)
        })
        .collect()
}

fn save(path: &Path, tensors: &BTreeMap<String, Tensor>) {
    let named: Vec<(String, Tensor)> = tensors
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let meta = BTreeMap::from([("source".to_string(), "test".to_string())]);
    save_tensors(path, &named, &meta).unwrap();
}

#[test]
fn loads_converted_weights_and_ignores_later_vgg_keys() {
    let fx = Fixtures::load("stylizer");
    let dir = Scratch::new("load");
    let mut vgg = weight_file(&fx, "vgg");
    // The real vgg_normalised file goes on to relu5_4: conv4_2 … conv5_4 are `32.weight` … `51.bias`.
    for (k, dims) in [("32.weight", vec![32, 32, 3, 3]), ("51.bias", vec![32])] {
        vgg.insert(
            k.into(),
            Tensor::zeros(dims, DType::F32, Device::Cpu).unwrap(),
        );
    }
    save(&dir.path("vgg.safetensors"), &vgg);
    save(
        &dir.path("decoder.safetensors"),
        &weight_file(&fx, "decoder"),
    );
    for device in test_devices() {
        for dtype in [DType::F64, DType::F32] {
            let s = Stylizer::load(
                dir.path("vgg.safetensors"),
                dir.path("decoder.safetensors"),
                dtype,
                device,
            )
            .unwrap();
            assert_eq!((s.encoder.width(), s.decoder.width()), (WIDTH, WIDTH));
            let out = transfer(&fx, &s, "transfer_a", dtype, device);
            // The weights went through f32: compare at f32 tolerance.
            check(&fx, "transfer_a", "transfer_a/out", &out, DType::F32);
        }
    }
}

fn load_error(vgg: &Path, decoder: &Path) -> String {
    match Stylizer::load(vgg, decoder, DType::F32, Device::Cpu) {
        Ok(_) => panic!(
            "loading {} and {} succeeded",
            vgg.display(),
            decoder.display()
        ),
        Err(e) => e.to_string(),
    }
}

#[test]
fn loader_errors_name_the_file_the_key_and_the_shapes() {
    let fx = Fixtures::load("stylizer");
    let dir = Scratch::new("errors");
    let (good_vgg, good_dec) = (dir.path("vgg.safetensors"), dir.path("decoder.safetensors"));
    save(&good_vgg, &weight_file(&fx, "vgg"));
    save(&good_dec, &weight_file(&fx, "decoder"));

    let missing = dir.path("nowhere.safetensors");
    let e = load_error(&missing, &good_dec);
    assert!(
        e.contains("nowhere.safetensors")
            && e.contains("no such file")
            && e.contains("python3 tools/convert_adain_weights.py vgg_normalised.pth"),
        "{e}"
    );
    let e = load_error(&good_vgg, &missing);
    assert!(e.contains("convert_adain_weights.py decoder.pth"), "{e}");

    let pickle = dir.path("decoder.pth");
    std::fs::write(&pickle, b"PK\x03\x04 a zip archive, as torch.save writes").unwrap();
    let e = load_error(&good_vgg, &pickle);
    assert!(
        e.contains("not a safetensors file") && e.contains("convert_adain_weights.py"),
        "{e}"
    );

    let mut vgg = weight_file(&fx, "vgg");
    vgg.remove("29.weight");
    let w5 = Tensor::zeros(vec![4, 4, 1, 1], DType::F32, Device::Cpu).unwrap();
    vgg.insert("5.weight".into(), w5);
    let bad_vgg = dir.path("bad_vgg.safetensors");
    save(&bad_vgg, &vgg);
    let e = load_error(&bad_vgg, &good_dec);
    assert!(e.contains("bad_vgg.safetensors"), "{e}");
    assert!(
        e.contains("missing 29.weight (expected shape [32, 16, 3, 3])"),
        "{e}"
    );
    assert!(
        e.contains("5.weight: file has shape [4, 4, 1, 1], model expects [4, 4, 3, 3]"),
        "{e}"
    );

    // The decoder file must hold exactly the decoder's keys.
    let mut dec = weight_file(&fx, "decoder");
    dec.insert(
        "29.weight".into(),
        Tensor::zeros(vec![1], DType::F32, Device::Cpu).unwrap(),
    );
    let bad_dec = dir.path("bad_decoder.safetensors");
    save(&bad_dec, &dec);
    let e = load_error(&good_vgg, &bad_dec);
    assert!(e.contains("unexpected 29.weight"), "{e}");

    // Nets of different widths do not fit together.
    let wide = Decoder::new(&mut Init::new(0, DType::F32, Device::Cpu), 2 * WIDTH).unwrap();
    let wide_dec = dir.path("wide_decoder.safetensors");
    engine::nn::state::save_module(&wide_dec, &wide, &BTreeMap::new()).unwrap();
    let e = load_error(&good_vgg, &wide_dec);
    assert!(
        e.contains("the decoder takes 64 channels") && e.contains("gives 32"),
        "{e}"
    );
}

#[test]
fn stylize_checks_its_arguments() {
    let s = Stylizer::new(&mut Init::new(0, DType::F32, Device::Cpu), 1).unwrap();
    let img = |n: usize, c: usize| {
        Tensor::rand_uniform(vec![n, c, 16, 16], 0.0, 1.0, 1, DType::F32, Device::Cpu).unwrap()
    };
    let c = img(2, 3);
    let err = |styles: &[(Tensor, f64)], alpha: f64| {
        s.stylize(&c, styles, alpha, false).unwrap_err().to_string()
    };
    assert!(err(&[(img(1, 3), 1.0)], 1.5).contains("alpha must be in [0, 1]"));
    assert!(err(&[], 1.0).contains("at least one style"));
    assert!(err(&[(img(3, 3), 1.0)], 1.0).contains("batch 3"));
    assert!(err(&[(img(1, 1), 1.0)], 1.0).contains("RGB"));
    assert!(err(&[(img(1, 3), -1.0)], 1.0).contains("finite and ≥ 0"));
    assert!(err(&[(img(1, 3), 0.0)], 1.0).contains("sum to 0"));
    let out = s.stylize(&c, &[(img(1, 3), 1.0), (img(2, 3), 3.0)], 0.5, true);
    assert_eq!(out.unwrap().dims(), &[2, 3, 16, 16]);
}

#[test]
fn decoder_and_adain_gradients_match_finite_differences() {
    // Width 2: relu4_1 has 16 channels; a 2×3 feature map decodes to 16×24.
    let dec = Decoder::new(&mut Init::new(5, DType::F64, Device::Cpu), 2).unwrap();
    let params: HashMap<String, Tensor> = named_params(&dec)
        .into_iter()
        .map(|(n, p)| (n, p.tensor))
        .collect();
    let (first, last) = (params["1.weight"].clone(), params["28.weight"].clone());
    let copy =
        |t: &Tensor| Tensor::from_vec(t.to_vec_f64().unwrap(), t.dims(), Device::Cpu).unwrap();
    let (first0, last0) = (copy(&first), copy(&last));
    let content = randn_var(&[2, 16, 2, 3], 11)
        .relu()
        .unwrap()
        .add_scalar(0.1)
        .unwrap();
    let style = randn_var(&[1, 16, 3, 2], 12);
    check_gradients(
        "decoder(α·adain(c, s) + (1 − α)·c)",
        &[content, style, first.clone(), last.clone()],
        |v| {
            // The decoder reads its own parameters: write in the values this evaluation is for (a
            // perturbed copy while that weight is probed, the original otherwise).
            for (x, p, p0) in [(&v[2], &first, &first0), (&v[3], &last, &last0)] {
                p.assign(if x.same_storage(p) { p0 } else { x })?;
            }
            let t = v[0].adain(&v[1], ADAIN_EPS)?;
            let t = t.scale(0.7)?.add(&v[0].scale(0.3)?)?;
            dec.decode(&t)
        },
        20,
        1e-6,
        1e-5,
    )
    .unwrap();
}
