//! Test support shared by the unit tests, the integration tests in `tests/` and the benches:
//! f64 finite-difference gradient checks, tolerance comparisons and the list of devices to run a test
//! on (the CPU always; CUDA when this build and machine have it).

use crate::nn::{named_params, Module};
use crate::{DType, Device, Error, Result, Tensor};
use rand::{Rng, SeedableRng};

/// CUDA device 0 when this build and machine have one; otherwise prints why and returns `None`,
/// unless `ENGINE_REQUIRE_CUDA=1` (set by scripts/gpu_check.sh on the GPU machines), which turns a
/// missing or unusable GPU into a test failure instead of a skip.
pub fn cuda_device() -> Option<Device> {
    match Device::cuda(0) {
        Ok(d) => Some(d),
        Err(e) => {
            assert!(
                std::env::var("ENGINE_REQUIRE_CUDA").as_deref() != Ok("1"),
                "ENGINE_REQUIRE_CUDA=1 but {e}"
            );
            eprintln!("skipped CUDA: {e}");
            None
        }
    }
}

/// The devices every op test runs on: the CPU always, CUDA when `cuda_device` finds it.
pub fn test_devices() -> Vec<Device> {
    let mut v = vec![Device::Cpu];
    v.extend(cuda_device());
    v
}

/// Seeded normal f64 input marked as a variable (gradients are returned for it).
pub fn randn_var(dims: &[usize], seed: u64) -> Tensor {
    Tensor::randn(dims.to_vec(), 0.0, 1.0, seed, DType::F64, Device::Cpu)
        .expect("randn")
        .var()
}

/// Compares `f`'s analytic gradients with central finite differences in f64.
///
/// The scalar checked is `Σ f(inputs) ⊙ R` for a fixed random `R`, so every output element and every
/// direction of the output's gradient is exercised. At most `max_probes` elements per input are probed
/// (chosen by a seeded RNG). Fails when `|analytic − numeric| > atol + rtol·|numeric|` anywhere.
pub fn check_gradients(
    name: &str,
    inputs: &[Tensor],
    f: impl Fn(&[Tensor]) -> Result<Tensor>,
    max_probes: usize,
    atol: f64,
    rtol: f64,
) -> Result<()> {
    for t in inputs {
        if t.dtype() != DType::F64 {
            return Err(Error::Msg(format!(
                "{name}: gradient checks need f64 inputs, got {}",
                t.dtype()
            )));
        }
    }
    let vars: Vec<Tensor> = inputs
        .iter()
        .map(|t| if t.is_variable() { t.clone() } else { t.var() })
        .collect();
    let out = f(&vars)?;
    let weights = Tensor::randn(
        out.shape().clone(),
        0.0,
        1.0,
        0xC0FFEE,
        DType::F64,
        Device::Cpu,
    )?;
    let loss = out.mul(&weights)?.sum_all()?;
    let grads = loss.backward()?;
    let w = weights.to_vec_f64()?;
    let eval = |xs: &[Tensor]| -> Result<f64> {
        let y = crate::no_grad(|| f(xs))?.to_vec_f64()?;
        Ok(y.iter().zip(&w).map(|(a, b)| a * b).sum())
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    for (i, v) in vars.iter().enumerate() {
        let analytic = match grads.get(v) {
            Some(g) => g.to_vec_f64()?,
            None => vec![0.0; v.numel()],
        };
        let base = v.to_vec_f64()?;
        let probes: Vec<usize> = if base.len() <= max_probes {
            (0..base.len()).collect()
        } else {
            (0..max_probes)
                .map(|_| rng.random_range(0..base.len()))
                .collect()
        };
        for &p in &probes {
            let h = 1e-6 * base[p].abs().max(1.0);
            let mut plus = base.clone();
            plus[p] += h;
            let mut minus = base.clone();
            minus[p] -= h;
            let mut xs: Vec<Tensor> = vars.iter().map(|t| t.detach()).collect();
            xs[i] = Tensor::from_vec(plus, v.shape().clone(), Device::Cpu)?;
            let fp = eval(&xs)?;
            xs[i] = Tensor::from_vec(minus, v.shape().clone(), Device::Cpu)?;
            let fm = eval(&xs)?;
            let numeric = (fp - fm) / (2.0 * h);
            let err = (analytic[p] - numeric).abs();
            if err > atol + rtol * numeric.abs() {
                return Err(Error::Msg(format!(
                    "{name}: gradient of input {i} at flat index {p}: analytic {} vs numeric {numeric} (|diff| {err:.3e})",
                    analytic[p]
                )));
            }
        }
    }
    Ok(())
}

/// Largest `|a − b|` and whether every element satisfies `|a − b| ≤ atol + rtol·|b|`.
pub fn compare(a: &[f64], b: &[f64], atol: f64, rtol: f64) -> (f64, bool) {
    let mut max = 0.0f64;
    let mut ok = a.len() == b.len();
    for (x, y) in a.iter().zip(b) {
        let d = (x - y).abs();
        max = max.max(d);
        if d > atol + rtol * y.abs() || d.is_nan() {
            ok = false;
        }
    }
    (max, ok)
}

/// Panics with a readable message unless `actual` matches `expected` within tolerance.
#[track_caller]
pub fn assert_close(what: &str, actual: &Tensor, expected: &[f64], atol: f64, rtol: f64) {
    let a = actual.to_vec_f64().expect("read tensor");
    assert_eq!(
        a.len(),
        expected.len(),
        "{what}: {} elements, expected {}",
        a.len(),
        expected.len()
    );
    let (max, ok) = compare(&a, expected, atol, rtol);
    assert!(
        ok,
        "{what}: max |diff| {max:.3e} exceeds atol {atol:.1e} + rtol {rtol:.1e}"
    );
}

/// Tolerances for comparing against an f64 reference, by the dtype the engine computed in.
pub fn tolerance(dtype: DType) -> (f64, f64) {
    match dtype {
        DType::F64 => (1e-9, 1e-8),
        DType::F32 => (2e-5, 2e-4),
        DType::F16 => (2e-2, 2e-2),
    }
}

/// The PyTorch reference fixtures written by `tools/make_fixtures.py` (layout documented in
/// `tools/fixtures/common.py`).
pub struct Fixtures {
    family: String,
    tensors: std::collections::HashMap<String, (Vec<usize>, Vec<f64>)>,
    meta: std::collections::HashMap<String, String>,
}

/// The fixture format version this build understands (`FIXTURE_VERSION` in tools/fixtures/common.py).
pub const FIXTURE_VERSION: &str = "1";

/// The folder of the committed fixture files: `ENGINE_FIXTURES_DIR` when set (prebuilt test binaries,
/// e.g. the GPU bundle, find the fixtures in another checkout that way), else this source tree's
/// `tests/fixtures`.
pub fn fixtures_dir() -> String {
    std::env::var("ENGINE_FIXTURES_DIR")
        .unwrap_or_else(|_| format!("{}/tests/fixtures", env!("CARGO_MANIFEST_DIR")))
}

impl Fixtures {
    /// Loads `tests/fixtures/<family>.safetensors`; panics with regeneration advice if it is missing
    /// or of another version.
    pub fn load(family: &str) -> Fixtures {
        let path = format!("{}/{family}.safetensors", fixtures_dir());
        let bytes = std::fs::read(&path).unwrap_or_else(|e| {
            panic!("{path}: {e}; regenerate with `python3 tools/make_fixtures.py {family}`")
        });
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        let meta: std::collections::HashMap<String, String> = header
            .metadata()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        let version = meta.get("version").map(String::as_str).unwrap_or("none");
        assert_eq!(
            version, FIXTURE_VERSION,
            "{path} has fixture version {version}; regenerate with tools/make_fixtures.py"
        );
        let st =
            safetensors::SafeTensors::deserialize(&bytes).unwrap_or_else(|e| panic!("{path}: {e}"));
        let mut tensors = std::collections::HashMap::new();
        for (name, view) in st.tensors() {
            assert_eq!(
                view.dtype(),
                safetensors::Dtype::F64,
                "{path}: {name} is not F64"
            );
            let data: Vec<f64> = view
                .data()
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                .collect();
            tensors.insert(name, (view.shape().to_vec(), data));
        }
        Fixtures {
            family: family.to_string(),
            tensors,
            meta,
        }
    }

    /// Case names (those with params metadata), sorted.
    pub fn cases(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .meta
            .keys()
            .filter(|k| *k != "version" && *k != "torch")
            .cloned()
            .collect();
        v.sort();
        v
    }

    /// The case's op parameters (JSON object).
    pub fn params(&self, case: &str) -> serde_json::Value {
        let text = self
            .meta
            .get(case)
            .unwrap_or_else(|| panic!("{}: no case {case}", self.family));
        serde_json::from_str(text).expect("params are JSON")
    }

    /// Raw values of one stored tensor.
    pub fn raw(&self, name: &str) -> &(Vec<usize>, Vec<f64>) {
        self.tensors
            .get(name)
            .unwrap_or_else(|| panic!("{}: no tensor {name}", self.family))
    }

    /// A stored tensor as `dtype` on `device`.
    pub fn tensor(&self, name: &str, dtype: DType, device: Device) -> Tensor {
        let (shape, data) = self.raw(name);
        Tensor::from_f64s(data, shape.clone(), dtype, device).expect("fixture tensor")
    }

    /// Runs one case: builds its inputs in `dtype` on `device` (as variables where PyTorch computed a
    /// gradient), calls `f`, and compares the output and every input gradient with PyTorch's.
    pub fn check_case(
        &self,
        case: &str,
        dtype: DType,
        device: Device,
        f: impl Fn(&std::collections::HashMap<String, Tensor>) -> Result<Tensor>,
    ) {
        let (atol, rtol) = tolerance(dtype);
        let prefix = format!("{case}/in/");
        let mut inputs = std::collections::HashMap::new();
        let mut grads_expected = Vec::new();
        for name in self.tensors.keys().filter(|k| k.starts_with(&prefix)) {
            let short = name[prefix.len()..].to_string();
            let grad_name = format!("{case}/grad/{short}");
            let mut t = self.tensor(name, dtype, device);
            if self.tensors.contains_key(&grad_name) {
                t = t.var();
                grads_expected.push((short.clone(), grad_name));
            }
            inputs.insert(short, t);
        }
        let what = format!("{}:{case} [{dtype} on {device}]", self.family);
        let out = f(&inputs).unwrap_or_else(|e| panic!("{what}: forward failed: {e}"));
        let (_, expected) = self.raw(&format!("{case}/out"));
        assert_close(&format!("{what} output"), &out, expected, atol, rtol);
        if grads_expected.is_empty() {
            return;
        }
        let gout = self.tensor(&format!("{case}/grad_out"), out.dtype(), device);
        let loss = out
            .mul(&gout)
            .and_then(|t| t.to_dtype(DType::F64))
            .and_then(|t| t.sum_all())
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let grads = loss
            .backward()
            .unwrap_or_else(|e| panic!("{what}: backward failed: {e}"));
        for (short, grad_name) in grads_expected {
            let (_, exp) = self.raw(&grad_name);
            match grads.get(&inputs[&short]) {
                Some(g) => assert_close(&format!("{what} grad of {short}"), g, exp, atol, rtol),
                None => assert!(
                    exp.iter().all(|&v| v == 0.0),
                    "{what}: no gradient reached {short}"
                ),
            }
        }
    }
}

/// Compares with per-element tolerances in f64; in lower precision by relative L2 error ≤ `rtol`
/// per tensor (a deep composition's per-element error is dominated by values that cancel to ~0).
#[track_caller]
pub fn assert_close_deep(
    what: &str,
    actual: &Tensor,
    expected: &[f64],
    dtype: DType,
    atol: f64,
    rtol: f64,
) {
    if dtype == DType::F64 {
        assert_close(what, actual, expected, atol, rtol);
    } else {
        let e = relative_l2_error(actual, expected);
        assert!(e <= rtol, "{what}: relative L2 error {e:.3e} > {rtol:.1e}");
    }
}

impl Fixtures {
    /// Tolerances for a whole-network case (`assert_close_deep`): per element in f64; otherwise a
    /// relative L2 error within 4× PyTorch's own error in that precision on the case (its
    /// `torch_f32_rel_l2` param, measured by the generator).
    pub fn network_tolerance(&self, case: &str, dtype: DType) -> (f64, f64) {
        match dtype {
            DType::F64 => (1e-9, 1e-7),
            _ => (
                0.0,
                4.0 * self.params(case)["torch_f32_rel_l2"]
                    .as_f64()
                    .expect("torch_f32_rel_l2")
                    .max(1e-6),
            ),
        }
    }

    /// `assert_close_deep` of `actual` against the stored tensor `key`.
    #[track_caller]
    pub fn assert_matches(
        &self,
        what: &str,
        actual: &Tensor,
        key: &str,
        dtype: DType,
        (atol, rtol): (f64, f64),
    ) {
        assert_close_deep(what, actual, &self.raw(key).1, dtype, atol, rtol);
    }

    /// Copies a case's stored `p.<name>` (trainable) and `b.<name>` (buffer) inputs into `model`'s
    /// parameters of the same names.
    pub fn load_params(&self, case: &str, model: &dyn Module, device: Device) {
        for (name, p) in named_params(model) {
            let prefix = if p.kind.trainable() { "p" } else { "b" };
            let t = self.tensor(
                &format!("{case}/in/{prefix}.{name}"),
                p.tensor.dtype(),
                device,
            );
            p.tensor
                .assign(&t)
                .unwrap_or_else(|e| panic!("{case}: {name}: {e}"));
        }
    }

    /// Runs a whole-network case written by tools/fixtures/gen_models.py's `add_network`: loads the
    /// parameters and buffers into `model`, runs `forward` on the input `x` (as `dtype` on `device`)
    /// and compares the output, the gradients of `x` and of every trainable parameter, and the
    /// updated buffers with PyTorch's (`network_tolerance`).
    pub fn check_network(
        &self,
        case: &str,
        model: &dyn Module,
        dtype: DType,
        device: Device,
        forward: impl Fn(&Tensor) -> Result<Tensor>,
    ) {
        let (atol, rtol) = self.network_tolerance(case, dtype);
        self.load_params(case, model, device);
        let x = self.tensor(&format!("{case}/in/x"), dtype, device).var();
        let what = format!("{}:{case} [{dtype} on {device}]", self.family);
        let out = forward(&x).unwrap_or_else(|e| panic!("{what}: forward failed: {e}"));
        let close = |name: &str, t: &Tensor, key: &str| {
            self.assert_matches(&format!("{what} {name}"), t, key, dtype, (atol, rtol))
        };
        close("output", &out, &format!("{case}/out"));
        let gout = self.tensor(&format!("{case}/grad_out"), dtype, device);
        let grads = out
            .mul(&gout)
            .and_then(|t| t.to_dtype(DType::F64))
            .and_then(|t| t.sum_all())
            .and_then(|t| t.backward())
            .unwrap_or_else(|e| panic!("{what}: backward failed: {e}"));
        close(
            "grad x",
            grads.get(&x).expect("grad of x"),
            &format!("{case}/grad/x"),
        );
        for (name, p) in named_params(model) {
            if p.kind.trainable() {
                let g = grads
                    .get(&p.tensor)
                    .unwrap_or_else(|| panic!("{what}: no gradient for {name}"));
                close(&format!("grad {name}"), g, &format!("{case}/grad/p.{name}"));
            } else {
                close(
                    &format!("updated {name}"),
                    &p.tensor,
                    &format!("{case}/extra/b.{name}"),
                );
            }
        }
    }
}

/// Relative L2 error `‖actual − expected‖ / ‖expected‖`: the measure for deep compositions in
/// low precision, where per-element relative error is dominated by elements that cancel to ~0.
pub fn relative_l2_error(actual: &Tensor, expected: &[f64]) -> f64 {
    let a = actual.to_vec_f64().expect("read tensor");
    assert_eq!(a.len(), expected.len(), "element counts differ");
    let num: f64 = a.iter().zip(expected).map(|(x, y)| (x - y) * (x - y)).sum();
    let den: f64 = expected.iter().map(|y| y * y).sum();
    (num / den.max(f64::MIN_POSITIVE)).sqrt()
}

/// Writes a tiny Fashion-MNIST-shaped dataset for tests: train/t10k IDX files of 28×28 images whose
/// class (10 of them, `i % 10`) sets a stripe pattern, plus seeded noise; easy to learn quickly.
pub fn write_striped_idx(dir: &std::path::Path, n_train: usize, n_test: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let mut state = 12345u64;
    let mut noise = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % 64) as u8
    };
    for (split, n) in [("train", n_train), ("t10k", n_test)] {
        let mut images = Vec::with_capacity(n * 784);
        let mut labels = Vec::with_capacity(n);
        for i in 0..n {
            let class = i % 10;
            for y in 0..28 {
                for x in 0..28 {
                    let on = ((y * (class + 1)) / 7 + if class >= 5 { x / 4 } else { 0 }) % 2 == 0;
                    images.push(if on { 180 } else { 20 } + noise());
                }
            }
            labels.push(class as u8);
        }
        std::fs::write(
            dir.join(format!("{split}-images-idx3-ubyte")),
            crate::data::idx::encode_idx(&[n, 28, 28], &images),
        )
        .unwrap();
        std::fs::write(
            dir.join(format!("{split}-labels-idx1-ubyte")),
            crate::data::idx::encode_idx(&[n], &labels),
        )
        .unwrap();
    }
}
