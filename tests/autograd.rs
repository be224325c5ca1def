//! The autograd tape's contract: gradients accumulate over every use of a tensor, `no_grad` records
//! nothing, `detach` stops gradients, non-scalar `backward` and ops without a backward rule are clear
//! errors, and gradients of f16/f32 leaves come back in their dtype.

use engine::{no_grad, DType, Device, Error, Tensor};

fn t(v: &[f64], dims: &[usize]) -> Tensor {
    Tensor::from_f64s(v, dims.to_vec(), DType::F64, Device::Cpu).unwrap()
}

#[test]
fn gradients_accumulate_over_every_use() {
    // y = Σ (x·x + 3x) → dy/dx = 2x + 3, with x used three times.
    let x = t(&[1.0, -2.0, 0.5], &[3]).var();
    let y = x
        .mul(&x)
        .unwrap()
        .add(&x.scale(3.0).unwrap())
        .unwrap()
        .sum_all()
        .unwrap();
    let g = y.backward().unwrap();
    assert_eq!(
        g.get(&x).unwrap().to_vec_f64().unwrap(),
        vec![5.0, -1.0, 4.0]
    );
}

#[test]
fn no_grad_and_detach_record_nothing() {
    let x = t(&[1.0, 2.0], &[2]).var();
    let y = no_grad(|| x.mul(&x).unwrap());
    assert!(!y.requires_grad());
    let z = x.detach().mul(&x).unwrap().sum_all().unwrap();
    let g = z.backward().unwrap();
    // Only the non-detached factor contributes: d/dx (c · x) = c.
    assert_eq!(g.get(&x).unwrap().to_vec_f64().unwrap(), vec![1.0, 2.0]);
    // A graph without variables needs no gradients at all.
    assert!(t(&[1.0], &[1])
        .sum_all()
        .unwrap()
        .backward()
        .unwrap()
        .is_empty());
}

#[test]
fn errors_name_the_problem() {
    let x = t(&[1.0, 2.0], &[2]).var();
    let err = x.mul(&x).unwrap().backward().unwrap_err();
    assert!(matches!(err, Error::BackwardNotScalar(_)), "{err}");
    let y = x
        .scale(2.0)
        .unwrap()
        .track_no_backward("argmax_like", &[&x])
        .sum_all()
        .unwrap();
    let err = y.backward().unwrap_err().to_string();
    assert!(
        err.contains("argmax_like") && err.contains("no backward rule"),
        "{err}"
    );
}

#[test]
fn low_precision_gradients_keep_their_dtype() {
    for dtype in [DType::F16, DType::F32] {
        let x = Tensor::from_f64s(&[0.5, -1.5, 2.0], vec![3], dtype, Device::Cpu)
            .unwrap()
            .var();
        let g = x
            .tanh()
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let gx = g.get(&x).unwrap();
        assert_eq!(gx.dtype(), dtype);
        let expect: Vec<f64> = [0.5f64, -1.5, 2.0]
            .iter()
            .map(|v| 1.0 - v.tanh().powi(2))
            .collect();
        for (a, b) in gx.to_vec_f64().unwrap().iter().zip(&expect) {
            assert!((a - b).abs() < if dtype == DType::F16 { 2e-3 } else { 1e-6 });
        }
    }
}

#[test]
fn mixing_devices_or_dtypes_is_an_error_not_a_panic() {
    let a = Tensor::zeros(vec![2], DType::F32, Device::Cpu).unwrap();
    let b = Tensor::zeros(vec![2], DType::F16, Device::Cpu).unwrap();
    let err = a.add(&b).unwrap_err().to_string();
    assert!(
        err.contains("f32 and f16") && err.contains("to_dtype"),
        "{err}"
    );
    let c = Tensor::zeros(vec![3], DType::F32, Device::Cpu).unwrap();
    let err = a.add(&c).unwrap_err().to_string();
    assert!(err.contains("[2]") && err.contains("[3]"), "{err}");
    assert!(Tensor::from_vec(vec![1.0f32; 5], [2, 3], Device::Cpu).is_err());
}
