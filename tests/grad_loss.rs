//! f64 finite-difference gradient checks for softmax, the losses, dropout and the AdaIN ops, plus
//! value checks: dropout statistics and reproducibility, AdaIN output statistics, and argument errors.

use engine::testing::{check_gradients, randn_var};
use engine::{DType, Device, Result, Tensor};

fn check(name: &str, inputs: &[Tensor], f: impl Fn(&[Tensor]) -> Result<Tensor>) {
    check_gradients(name, inputs, f, 64, 1e-6, 1e-5).unwrap_or_else(|e| panic!("{e}"));
}

fn f64s(data: &[f64], dims: &[usize]) -> Tensor {
    Tensor::from_f64s(data, dims.to_vec(), DType::F64, Device::Cpu).unwrap()
}

#[test]
fn softmax_and_log_softmax() {
    let x = randn_var(&[3, 4, 5], 1);
    for dim in [0, 1, -1] {
        check(&format!("softmax dim {dim}"), &[x.clone()], |v| {
            v[0].softmax(dim)
        });
        check(&format!("log_softmax dim {dim}"), &[x.clone()], |v| {
            v[0].log_softmax(dim)
        });
    }
    // Rows sum to one, and stability for large logits.
    let big = f64s(&[1000.0, 1001.0, 999.0, -1000.0, 0.0, 1000.0], &[2, 3]);
    let s = big.softmax(-1).unwrap().to_vec_f64().unwrap();
    assert!(s.iter().all(|v| v.is_finite()));
    assert!((s[0] + s[1] + s[2] - 1.0).abs() < 1e-12);
    let ls = big.log_softmax(-1).unwrap().to_vec_f64().unwrap();
    assert!(ls.iter().all(|v| v.is_finite()));
    assert!((ls[3] - (-2000.0)).abs() < 1e-9);
}

#[test]
fn cross_entropy_hard_and_smoothed() {
    let logits = randn_var(&[4, 5], 2);
    let labels = [0usize, 3, 4, 1];
    for eps in [0.0, 0.1] {
        check(
            &format!("cross_entropy eps {eps}"),
            &[logits.clone()],
            |v| v[0].cross_entropy(&labels, eps),
        );
    }
    // Hand value: a single row, no smoothing.
    let x = f64s(&[1.0, 2.0, 3.0], &[1, 3]);
    let l = x.cross_entropy(&[2], 0.0).unwrap().to_scalar().unwrap();
    let lse = (1f64.exp() + 2f64.exp() + 3f64.exp()).ln();
    assert!((l - (lse - 3.0)).abs() < 1e-12);
    assert_eq!(x.cross_entropy(&[2], 0.0).unwrap().dims(), &[] as &[usize]);
}

#[test]
fn cross_entropy_soft_mixup_targets() {
    let logits = randn_var(&[4, 6], 3);
    let a = Tensor::one_hot_smoothed(&[0, 1, 2, 5], 6, 0.0, DType::F64, Device::Cpu).unwrap();
    let b = Tensor::one_hot_smoothed(&[3, 1, 4, 0], 6, 0.0, DType::F64, Device::Cpu).unwrap();
    let lam = 0.7;
    let t = a
        .scale(lam)
        .unwrap()
        .add(&b.scale(1.0 - lam).unwrap())
        .unwrap();
    check("cross_entropy_soft mixup", &[logits.clone()], |v| {
        v[0].cross_entropy_soft(&t)
    });
    // Mixup of the loss equals the loss of the mixed target.
    let mixed = logits.cross_entropy_soft(&t).unwrap().to_scalar().unwrap();
    let la = logits
        .cross_entropy(&[0, 1, 2, 5], 0.0)
        .unwrap()
        .to_scalar()
        .unwrap();
    let lb = logits
        .cross_entropy(&[3, 1, 4, 0], 0.0)
        .unwrap()
        .to_scalar()
        .unwrap();
    assert!((mixed - (lam * la + (1.0 - lam) * lb)).abs() < 1e-12);
    // The targets get no gradient.
    let tv = t.var();
    let g = logits.cross_entropy_soft(&tv).unwrap().backward().unwrap();
    assert!(g.get(&tv).is_none());
    assert!(g.get(&logits).is_some());
}

#[test]
fn one_hot_smoothed_values() {
    let t = Tensor::one_hot_smoothed(&[1, 0], 4, 0.2, DType::F64, Device::Cpu).unwrap();
    assert_eq!(t.dims(), &[2, 4]);
    let v = t.to_vec_f64().unwrap();
    let expect = [0.05, 0.85, 0.05, 0.05, 0.85, 0.05, 0.05, 0.05];
    for (a, b) in v.iter().zip(expect) {
        assert!((a - b).abs() < 1e-15);
    }
}

#[test]
fn distillation() {
    let s = randn_var(&[3, 5], 4);
    let t = randn_var(&[3, 5], 5).scale(2.0).unwrap().detach();
    for temp in [1.0, 4.0] {
        check(&format!("distillation T={temp}"), &[s.clone()], |v| {
            v[0].distillation_loss(&t, temp)
        });
    }
    // Zero when student equals teacher; teacher gets no gradient.
    let z = t.distillation_loss(&t, 2.0).unwrap().to_scalar().unwrap();
    assert!(z.abs() < 1e-12);
    let tv = t.var();
    let g = s.distillation_loss(&tv, 4.0).unwrap().backward().unwrap();
    assert!(g.get(&tv).is_none());
}

#[test]
fn mse_l1_bce() {
    let a = randn_var(&[3, 4], 6);
    let b = randn_var(&[3, 4], 7);
    check("mse_loss", &[a.clone(), b.clone()], |v| {
        v[0].mse_loss(&v[1])
    });
    // Random normals: no ties, and finite differences of h = 1e-6 never cross one.
    check("l1_loss", &[a.clone(), b.clone()], |v| v[0].l1_loss(&v[1]));
    let x = randn_var(&[2, 3, 4], 8).scale(3.0).unwrap().var();
    let t = Tensor::rand_uniform([2, 3, 4], 0.0, 1.0, 9, DType::F64, Device::Cpu).unwrap();
    check("bce_with_logits", &[x.clone()], |v| {
        v[0].bce_with_logits(&t)
    });
    // Stable for large |x|.
    let big = f64s(&[800.0, -800.0], &[2]);
    let tt = f64s(&[0.0, 1.0], &[2]);
    let l = big.bce_with_logits(&tt).unwrap().to_scalar().unwrap();
    assert!((l - 800.0).abs() < 1e-9, "{l}");
    // Hand values.
    let p = f64s(&[1.0, 2.0, 3.0], &[3]);
    let q = f64s(&[0.0, 4.0, 3.0], &[3]);
    assert!((p.mse_loss(&q).unwrap().to_scalar().unwrap() - 5.0 / 3.0).abs() < 1e-15);
    assert!((p.l1_loss(&q).unwrap().to_scalar().unwrap() - 1.0).abs() < 1e-15);
}

#[test]
fn dropout_grads_and_statistics() {
    let x = randn_var(&[4, 8], 10);
    check("dropout", &[x.clone()], |v| v[0].dropout(0.3, 42, true));
    // Same seed ⇒ same mask; another seed ⇒ another mask.
    let ones = Tensor::ones([1000], DType::F64, Device::Cpu).unwrap();
    let m1 = ones.dropout(0.4, 7, true).unwrap().to_vec_f64().unwrap();
    let m2 = ones.dropout(0.4, 7, true).unwrap().to_vec_f64().unwrap();
    let m3 = ones.dropout(0.4, 8, true).unwrap().to_vec_f64().unwrap();
    assert_eq!(m1, m2);
    assert_ne!(m1, m3);
    // About p zeroed, survivors scaled by 1/(1−p), expectation kept.
    let n = 200_000;
    let p = 0.3;
    let y = Tensor::ones([n], DType::F32, Device::Cpu)
        .unwrap()
        .dropout(p, 123, true)
        .unwrap()
        .to_vec_f64()
        .unwrap();
    let zeros = y.iter().filter(|&&v| v == 0.0).count() as f64 / n as f64;
    assert!((zeros - p).abs() < 0.005, "dropped fraction {zeros}");
    let kept = 1.0 / (1.0 - p);
    assert!(y.iter().all(|&v| v == 0.0 || (v - kept).abs() < 1e-6));
    let mean = y.iter().sum::<f64>() / n as f64;
    assert!((mean - 1.0).abs() < 0.01, "mean {mean}");
    // The backward uses the forward's mask.
    let xv = Tensor::ones([64], DType::F64, Device::Cpu).unwrap().var();
    let yv = xv.dropout(0.5, 3, true).unwrap();
    let g = yv.sum_all().unwrap().backward().unwrap();
    assert_eq!(
        g.get(&xv).unwrap().to_vec_f64().unwrap(),
        yv.to_vec_f64().unwrap()
    );
    // Identity in eval and for p = 0; errors for p outside [0, 1).
    let e = x.dropout(0.5, 1, false).unwrap();
    assert_eq!(e.to_vec_f64().unwrap(), x.to_vec_f64().unwrap());
    let z = x.dropout(0.0, 1, true).unwrap();
    assert_eq!(z.to_vec_f64().unwrap(), x.to_vec_f64().unwrap());
    for bad in [1.0, -0.1, f64::NAN] {
        assert!(x.dropout(bad, 1, true).is_err());
    }
}

#[test]
fn channel_stats() {
    let x = randn_var(&[2, 3, 4, 5], 11);
    check("channel_mean", &[x.clone()], |v| v[0].channel_mean());
    check("channel_std", &[x.clone()], |v| v[0].channel_std(1e-5));
    // Values: against a direct computation.
    let m = x.channel_mean().unwrap();
    let s = x.channel_std(1e-5).unwrap();
    assert_eq!(m.dims(), &[2, 3, 1, 1]);
    assert_eq!(s.dims(), &[2, 3, 1, 1]);
    let xv = x.to_vec_f64().unwrap();
    let (mv, sv) = (m.to_vec_f64().unwrap(), s.to_vec_f64().unwrap());
    for p in 0..6 {
        let pl = &xv[p * 20..(p + 1) * 20];
        let mu = pl.iter().sum::<f64>() / 20.0;
        let var = pl.iter().map(|v| (v - mu).powi(2)).sum::<f64>() / 19.0;
        assert!((mv[p] - mu).abs() < 1e-12);
        assert!((sv[p] - (var + 1e-5).sqrt()).abs() < 1e-12);
    }
}

#[test]
fn adain_grads() {
    let c = randn_var(&[2, 3, 4, 5], 12);
    let s = randn_var(&[2, 3, 3, 6], 13)
        .scale(2.0)
        .unwrap()
        .add_scalar(1.0)
        .unwrap()
        .var();
    check("adain content+style", &[c.clone(), s.clone()], |v| {
        v[0].adain(&v[1], 1e-5)
    });
    // A style batch of 1 broadcast over a content batch of 2.
    let s1 = randn_var(&[1, 3, 5, 4], 14);
    check("adain broadcast style", &[c.clone(), s1.clone()], |v| {
        v[0].adain(&v[1], 1e-5)
    });
    // Composite of the primitive ops agrees with the fused op.
    let eps = 1e-5;
    let fused = c.adain(&s1, eps).unwrap().to_vec_f64().unwrap();
    let reference = c
        .sub(&c.channel_mean().unwrap())
        .unwrap()
        .div(&c.channel_std(eps).unwrap())
        .unwrap()
        .mul(&s1.channel_std(eps).unwrap())
        .unwrap()
        .add(&s1.channel_mean().unwrap())
        .unwrap()
        .to_vec_f64()
        .unwrap();
    for (a, b) in fused.iter().zip(&reference) {
        assert!((a - b).abs() < 1e-12);
    }
}

#[test]
fn adain_output_has_style_statistics() {
    let c = randn_var(&[2, 3, 8, 8], 15);
    let s = randn_var(&[2, 3, 6, 7], 16)
        .scale(3.0)
        .unwrap()
        .add_scalar(-2.0)
        .unwrap();
    let eps = 1e-5;
    let y = c.adain(&s, eps).unwrap();
    // σ_y² = σs² · var_c/(var_c + eps); compare with eps = 0 to see the style std exactly.
    let y0 = c.adain(&s, 0.0).unwrap();
    let (my, ms) = (
        y.channel_mean().unwrap().to_vec_f64().unwrap(),
        s.channel_mean().unwrap().to_vec_f64().unwrap(),
    );
    let (sy, ss) = (
        y0.channel_std(0.0).unwrap().to_vec_f64().unwrap(),
        s.channel_std(0.0).unwrap().to_vec_f64().unwrap(),
    );
    let sy_eps = y.channel_std(eps).unwrap().to_vec_f64().unwrap();
    let ss_eps = s.channel_std(eps).unwrap().to_vec_f64().unwrap();
    for p in 0..6 {
        assert!((my[p] - ms[p]).abs() < 1e-10, "mean {} vs {}", my[p], ms[p]);
        assert!((sy[p] - ss[p]).abs() < 1e-10, "std {} vs {}", sy[p], ss[p]);
        assert!((sy_eps[p] - ss_eps[p]).abs() < 1e-4);
    }
}

#[test]
fn argument_errors() {
    let logits = randn_var(&[2, 3], 17);
    let x3 = randn_var(&[2, 3, 1], 18);
    assert!(logits.cross_entropy(&[0, 3], 0.0).is_err(), "label ≥ K");
    assert!(logits.cross_entropy(&[0], 0.0).is_err(), "label count");
    assert!(x3.cross_entropy(&[0, 1], 0.0).is_err(), "3-d logits");
    assert!(logits.cross_entropy(&[0, 1], 1.5).is_err(), "smoothing");
    let other = randn_var(&[2, 4], 19);
    assert!(logits.cross_entropy_soft(&other).is_err());
    assert!(x3.cross_entropy_soft(&x3).is_err());
    assert!(logits.distillation_loss(&other, 2.0).is_err());
    assert!(logits.distillation_loss(&logits, 0.0).is_err());
    assert!(logits.distillation_loss(&logits, -1.0).is_err());
    assert!(logits.mse_loss(&other).is_err());
    assert!(logits.l1_loss(&other).is_err());
    assert!(logits.bce_with_logits(&other).is_err());
    let f32s = logits.to_dtype(DType::F32).unwrap();
    assert!(logits.mse_loss(&f32s).is_err(), "dtype mismatch");
    assert!(Tensor::one_hot_smoothed(&[4], 4, 0.0, DType::F32, Device::Cpu).is_err());
    assert!(logits.softmax(2).is_err());
    let img = randn_var(&[2, 3, 4, 4], 20);
    assert!(img.adain(&randn_var(&[2, 2, 4, 4], 21), 1e-5).is_err(), "C");
    assert!(img.adain(&randn_var(&[3, 3, 4, 4], 22), 1e-5).is_err(), "N");
    assert!(
        img.adain(&randn_var(&[2, 3, 1, 1], 23), 1e-5).is_err(),
        "1×1"
    );
    assert!(img.adain(&logits, 1e-5).is_err(), "2-d style");
    assert!(logits.channel_mean().is_err());
    assert!(img.channel_std(-1.0).is_err());
}

#[test]
fn large_inputs_take_the_parallel_paths() {
    // Big enough for several rayon tasks; compared with compositions of other ops.
    let x = Tensor::randn([512, 40], 0.0, 2.0, 24, DType::F64, Device::Cpu).unwrap();
    let sm = x.softmax(-1).unwrap();
    let via_log = x.log_softmax(-1).unwrap().exp().unwrap();
    let (a, b) = (sm.to_vec_f64().unwrap(), via_log.to_vec_f64().unwrap());
    assert!(a.iter().zip(&b).all(|(p, q)| (p - q).abs() < 1e-12));
    let labels: Vec<usize> = (0..512).map(|i| (i * 7) % 40).collect();
    let t = Tensor::one_hot_smoothed(&labels, 40, 0.1, DType::F64, Device::Cpu).unwrap();
    let fused = x.cross_entropy(&labels, 0.1).unwrap().to_scalar().unwrap();
    let composite = x
        .log_softmax(-1)
        .unwrap()
        .mul(&t)
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar()
        .unwrap()
        / -512.0;
    assert!((fused - composite).abs() < 1e-10);
    let y = Tensor::randn([512, 40], 0.0, 1.0, 25, DType::F64, Device::Cpu).unwrap();
    let mse = x.mse_loss(&y).unwrap().to_scalar().unwrap();
    let d = x.sub(&y).unwrap();
    let mse2 = d.mul(&d).unwrap().mean_all().unwrap().to_scalar().unwrap();
    assert!((mse - mse2).abs() < 1e-10);

    let c = Tensor::randn([4, 32, 16, 16], 0.0, 1.0, 26, DType::F64, Device::Cpu)
        .unwrap()
        .var();
    let s = Tensor::randn([1, 32, 12, 12], 1.0, 2.0, 27, DType::F64, Device::Cpu)
        .unwrap()
        .var();
    let w = Tensor::randn([4, 32, 16, 16], 0.0, 1.0, 28, DType::F64, Device::Cpu).unwrap();
    let eps = 1e-5;
    let fused = c.adain(&s, eps).unwrap();
    let composite = c
        .sub(&c.channel_mean().unwrap())
        .unwrap()
        .div(&c.channel_std(eps).unwrap())
        .unwrap()
        .mul(&s.channel_std(eps).unwrap())
        .unwrap()
        .add(&s.channel_mean().unwrap())
        .unwrap();
    let gf = fused
        .mul(&w)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let gc = composite
        .mul(&w)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    for v in [&c, &s] {
        let (a, b) = (
            gf.get(v).unwrap().to_vec_f64().unwrap(),
            gc.get(v).unwrap().to_vec_f64().unwrap(),
        );
        let max = a
            .iter()
            .zip(&b)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0, f64::max);
        assert!(max < 1e-9, "adain grad differs from composite by {max}");
    }
}
