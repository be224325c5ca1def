//! f64 finite-difference gradient checks for batch norm (and its fused ReLU / residual variants),
//! pooling and resizing ops; the running-statistics update compared with PyTorch over two training
//! steps; and the errors (never panics) these ops give on bad input.

use engine::testing::{assert_close, check_gradients, randn_var, tolerance, Fixtures};
use engine::{BatchNormArgs, DType, Device, Error, Pool2dParams, Result, Tensor};

fn check(name: &str, inputs: &[Tensor], f: impl Fn(&[Tensor]) -> Result<Tensor>) {
    check_gradients(name, inputs, f, 64, 1e-6, 1e-5).unwrap_or_else(|e| panic!("{e}"));
}

fn stat(c: usize, lo: f64, hi: f64, seed: u64) -> Tensor {
    Tensor::rand_uniform(vec![c], lo, hi, seed, DType::F64, Device::Cpu).unwrap()
}

fn args<'a>(
    w: Option<&'a Tensor>,
    b: Option<&'a Tensor>,
    rm: Option<&'a Tensor>,
    rv: Option<&'a Tensor>,
    training: bool,
) -> BatchNormArgs<'a> {
    BatchNormArgs {
        weight: w,
        bias: b,
        running_mean: rm,
        running_var: rv,
        training,
        momentum: 0.1,
        eps: 1e-5,
    }
}

#[test]
fn batch_norm_gradients() {
    for dims in [&[2usize, 3, 4, 5][..], &[7, 4][..], &[1, 2, 3, 5][..]] {
        let c = dims[1];
        let x = randn_var(dims, 1)
            .scale(1.5)
            .unwrap()
            .add_scalar(0.3)
            .unwrap();
        let w = stat(c, 0.5, 1.5, 2).var();
        let b = randn_var(&[c], 3);
        let (rm, rv) = (stat(c, -0.5, 0.5, 4), stat(c, 0.5, 2.0, 5));
        let tag = format!("{dims:?}");
        check(
            &format!("bn train affine {tag}"),
            &[x.clone(), w.clone(), b.clone()],
            |v| v[0].batch_norm(&args(Some(&v[1]), Some(&v[2]), Some(&rm), Some(&rv), true)),
        );
        check(&format!("bn train plain {tag}"), &[x.clone()], |v| {
            v[0].batch_norm(&args(None, None, None, None, true))
        });
        check(
            &format!("bn eval affine {tag}"),
            &[x.clone(), w.clone(), b.clone()],
            |v| v[0].batch_norm(&args(Some(&v[1]), Some(&v[2]), Some(&rm), Some(&rv), false)),
        );
        check(&format!("bn eval plain {tag}"), &[x.clone()], |v| {
            v[0].batch_norm(&args(None, None, Some(&rm), Some(&rv), false))
        });
    }
}

#[test]
fn fused_batch_norm_gradients() {
    let x = randn_var(&[2, 3, 4, 5], 11);
    let r = randn_var(&[2, 3, 4, 5], 12);
    let w = stat(3, 0.5, 1.5, 13).var();
    let b = randn_var(&[3], 14);
    let (rm, rv) = (stat(3, -0.5, 0.5, 15), stat(3, 0.5, 2.0, 16));
    for training in [true, false] {
        check(
            &format!("bn_relu training={training}"),
            &[x.clone(), w.clone(), b.clone()],
            |v| {
                v[0].batch_norm_relu(&args(
                    Some(&v[1]),
                    Some(&v[2]),
                    Some(&rm),
                    Some(&rv),
                    training,
                ))
            },
        );
        check(
            &format!("bn_add_relu training={training}"),
            &[x.clone(), r.clone(), w.clone(), b.clone()],
            |v| {
                v[0].batch_norm_add_relu(
                    &v[1],
                    &args(Some(&v[2]), Some(&v[3]), Some(&rm), Some(&rv), training),
                )
            },
        );
    }
    let x2 = randn_var(&[6, 3], 17);
    let r2 = randn_var(&[6, 3], 18);
    check("bn_add_relu 2-d no affine", &[x2, r2], |v| {
        v[0].batch_norm_add_relu(&v[1], &args(None, None, None, None, true))
    });
}

#[test]
fn fused_equals_unfused() {
    let x = randn_var(&[2, 3, 4, 5], 21).detach();
    let r = randn_var(&[2, 3, 4, 5], 22).detach();
    let w = stat(3, 0.5, 1.5, 23);
    let b = randn_var(&[3], 24).detach();
    let a = args(Some(&w), Some(&b), None, None, true);
    let plain = x.batch_norm(&a).unwrap();
    let relu = x.batch_norm_relu(&a).unwrap();
    let add = x.batch_norm_add_relu(&r, &a).unwrap();
    let ref_relu = plain.relu().unwrap().to_vec_f64().unwrap();
    let ref_add = plain.add(&r).unwrap().relu().unwrap().to_vec_f64().unwrap();
    assert_close("bn_relu", &relu, &ref_relu, 1e-12, 1e-12);
    assert_close("bn_add_relu", &add, &ref_add, 1e-12, 1e-12);
}

/// Two training steps on the same buffers, compared with PyTorch's in-place buffer updates.
#[test]
fn running_stats_update_like_pytorch() {
    let fx = Fixtures::load("norm_pool");
    let case = "bn_two_steps";
    let p = fx.params(case);
    for dtype in [DType::F64, DType::F32] {
        let (atol, rtol) = tolerance(dtype);
        let t = |n: &str| fx.tensor(n, dtype, Device::Cpu);
        let x = t(&format!("{case}/in/x"));
        let x2 = t(&format!("{case}/extra/x2"));
        let (w, b) = (
            t(&format!("{case}/in/weight")),
            t(&format!("{case}/in/bias")),
        );
        let rm = t(&format!("{case}/in/running_mean"));
        let rv = t(&format!("{case}/in/running_var"));
        let a = |w, b| BatchNormArgs {
            weight: w,
            bias: b,
            running_mean: Some(&rm),
            running_var: Some(&rv),
            training: true,
            momentum: p["momentum"].as_f64().unwrap(),
            eps: p["eps"].as_f64().unwrap(),
        };
        x.batch_norm(&a(Some(&w), Some(&b))).unwrap();
        for (got, name) in [(&rm, "running_mean"), (&rv, "running_var")] {
            let (_, e) = fx.raw(&format!("{case}/extra/{name}"));
            assert_close(&format!("{dtype} step 1 {name}"), got, e, atol, rtol);
        }
        x2.batch_norm(&a(None, None)).unwrap();
        for (got, name) in [(&rm, "running_mean2"), (&rv, "running_var2")] {
            let (_, e) = fx.raw(&format!("{case}/extra/{name}"));
            assert_close(&format!("{dtype} step 2 {name}"), got, e, atol, rtol);
        }
        // Eval mode reads but never writes the running statistics.
        let before = (rm.to_vec_f64().unwrap(), rv.to_vec_f64().unwrap());
        x.batch_norm(&BatchNormArgs {
            training: false,
            ..a(None, None)
        })
        .unwrap();
        assert_eq!(before.0, rm.to_vec_f64().unwrap());
        assert_eq!(before.1, rv.to_vec_f64().unwrap());
    }
}

#[test]
fn pooling_gradients() {
    // randn inputs have no ties, so the max-pool argmax is stable under the finite-difference steps.
    let x = randn_var(&[2, 3, 7, 7], 31);
    check("max 3x3 s2 p1", &[x.clone()], |v| {
        v[0].max_pool2d(Pool2dParams::new(3, 2, 1))
    });
    let odd = randn_var(&[2, 2, 5, 7], 32);
    check("max 2x2 s2 ceil odd", &[odd.clone()], |v| {
        v[0].max_pool2d(Pool2dParams::new(2, 2, 0).ceil())
    });
    check("avg 2x2 s2", &[randn_var(&[2, 3, 6, 4], 33)], |v| {
        v[0].avg_pool2d(Pool2dParams::new(2, 2, 0), true)
    });
    for incl in [true, false] {
        check(&format!("avg 3x3 s1 p1 incl={incl}"), &[x.clone()], |v| {
            v[0].avg_pool2d(Pool2dParams::new(3, 1, 1), incl)
        });
        check(
            &format!("avg 3x3 s2 p1 ceil incl={incl}"),
            &[odd.clone()],
            |v| v[0].avg_pool2d(Pool2dParams::new(3, 2, 1).ceil(), incl),
        );
    }
    check("avg 2x2 s2 ceil odd", &[odd.clone()], |v| {
        v[0].avg_pool2d(Pool2dParams::new(2, 2, 0).ceil(), true)
    });
    check("global avg", &[randn_var(&[2, 3, 4, 5], 34)], |v| {
        v[0].global_avg_pool2d()
    });
}

#[test]
fn resize_gradients() {
    let x = randn_var(&[2, 3, 4, 5], 41);
    check("upsample x2", &[x.clone()], |v| v[0].upsample_nearest2d(2));
    check("upsample x3", &[randn_var(&[1, 2, 3, 2], 42)], |v| {
        v[0].upsample_nearest2d(3)
    });
    check("reflection pad", &[x.clone()], |v| {
        v[0].reflection_pad2d((1, 2, 3, 1))
    });
    check("reflection pad max", &[x.clone()], |v| {
        v[0].reflection_pad2d((4, 4, 3, 3))
    });
    check("zero pad", &[x.clone()], |v| v[0].zero_pad2d((2, 0, 1, 3)));
}

#[test]
fn bad_inputs_are_errors() {
    let x = Tensor::zeros(vec![2, 3, 4, 4], DType::F32, Device::Cpu).unwrap();
    let c4 = Tensor::ones(vec![4], DType::F32, Device::Cpu).unwrap();
    let c3 = Tensor::ones(vec![3], DType::F32, Device::Cpu).unwrap();
    let bad = |r: Result<Tensor>, needle: &str| {
        let e: Error = r.expect_err("expected an error");
        let msg = e.to_string();
        assert!(msg.contains(needle), "error {msg:?} lacks {needle:?}");
    };
    let x3 = Tensor::zeros(vec![2, 3, 4], DType::F32, Device::Cpu).unwrap();
    bad(
        x3.batch_norm(&args(None, None, None, None, true)),
        "batch_norm",
    );
    bad(
        x.batch_norm(&args(Some(&c4), None, None, None, true)),
        "weight must have shape [3]",
    );
    bad(
        x.batch_norm_relu(&args(None, None, None, None, false)),
        "needs running_mean",
    );
    let one = Tensor::zeros(vec![1, 3, 1, 1], DType::F32, Device::Cpu).unwrap();
    bad(
        one.batch_norm(&args(Some(&c3), None, None, None, true)),
        "more than 1 value",
    );
    bad(
        x.batch_norm_add_relu(&x3, &args(None, None, None, None, true)),
        "residual",
    );
    let c3_64 = Tensor::ones(vec![3], DType::F64, Device::Cpu).unwrap();
    bad(
        x.batch_norm(&args(Some(&c3_64), None, None, None, true)),
        "f64",
    );
    bad(
        x.max_pool2d(Pool2dParams::new(5, 1, 0)),
        "larger than the padded input",
    );
    bad(
        x.avg_pool2d(Pool2dParams::new(3, 1, 2), true),
        "at most half",
    );
    bad(x.max_pool2d(Pool2dParams::new(2, 0, 0)), "positive");
    bad(
        x3.reshape(vec![24])
            .unwrap()
            .max_pool2d(Pool2dParams::new(2, 2, 0)),
        "max_pool2d",
    );
    let empty = Tensor::zeros(vec![1, 1, 0, 3], DType::F32, Device::Cpu).unwrap();
    bad(
        empty.max_pool2d(Pool2dParams::new(2, 2, 1)),
        "empty spatial",
    );
    bad(x.reflection_pad2d((4, 0, 0, 0)), "smaller than");
    bad(x.upsample_nearest2d(0), "scale");
    bad(x3.upsample_nearest2d(2), "upsample_nearest2d");
    bad(
        x3.reshape(vec![24]).unwrap().global_avg_pool2d(),
        "global_avg_pool2d",
    );
}

#[test]
fn mixed_precision_batch_norm_keeps_dtypes() {
    let x = Tensor::randn(vec![2, 3, 4, 4], 0.0, 1.0, 51, DType::F16, Device::Cpu).unwrap();
    let w = Tensor::ones(vec![3], DType::F32, Device::Cpu)
        .unwrap()
        .var();
    let b = Tensor::zeros(vec![3], DType::F32, Device::Cpu)
        .unwrap()
        .var();
    let rm = Tensor::zeros(vec![3], DType::F32, Device::Cpu).unwrap();
    let rv = Tensor::ones(vec![3], DType::F32, Device::Cpu).unwrap();
    let xv = x.var();
    let y = xv
        .batch_norm_relu(&args(Some(&w), Some(&b), Some(&rm), Some(&rv), true))
        .unwrap();
    assert_eq!(y.dtype(), DType::F16);
    assert_eq!(rm.dtype(), DType::F32);
    let g = y
        .to_dtype(DType::F64)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert_eq!(g.get(&xv).unwrap().dtype(), DType::F16);
    assert_eq!(g.get(&w).unwrap().dtype(), DType::F32);
    assert_eq!(g.get(&b).unwrap().dtype(), DType::F32);
}
