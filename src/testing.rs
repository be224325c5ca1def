//! Test support shared by the unit tests, the integration tests in `tests/` and the benches:
//! f64 finite-difference gradient checks, tolerance comparisons and the list of devices to run a test
//! on (the CPU always; CUDA when this build and machine have it).

use crate::{DType, Device, Error, Result, Tensor};
use rand::{Rng, SeedableRng};

/// The devices every op test runs on. Prints why CUDA is skipped, once per call.
pub fn test_devices() -> Vec<Device> {
    let mut v = vec![Device::Cpu];
    match Device::cuda(0) {
        Ok(d) => v.push(d),
        Err(e) => eprintln!("skipped CUDA: {e}"),
    }
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
