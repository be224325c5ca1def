//! Batch norm (plain, fused ReLU, fused residual + ReLU; training and eval), pooling and resizing ops
//! against PyTorch fixtures (`tools/fixtures/gen_norm_pool.py`), on every device, in f64 and f32 —
//! and, for batch norm, in mixed precision (f16 activations with f32 γ/β/running statistics).
//! Training-mode cases also compare the running statistics updated in place with PyTorch's buffers.

use engine::testing::{assert_close, test_devices, tolerance, Fixtures};
use engine::{BatchNormArgs, DType, Device, Pool2dParams, Result, Tensor};
use serde_json::Value;
use std::cell::RefCell;
use std::collections::HashMap;

type Stash = RefCell<Option<(Tensor, Tensor)>>;

fn pool_params(p: &Value) -> Pool2dParams {
    let u = |k: &str| p[k].as_u64().expect("pool param") as usize;
    let q = Pool2dParams::new(u("kernel"), u("stride"), u("padding"));
    if p["ceil_mode"].as_bool().unwrap() {
        q.ceil()
    } else {
        q
    }
}

fn pad4(p: &Value) -> (usize, usize, usize, usize) {
    let v: Vec<usize> = p["pad"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect();
    (v[0], v[1], v[2], v[3])
}

/// Calls the engine op a case's params name; batch-norm running statistics are stashed so the caller
/// can compare their in-place update.
fn run_op(p: &Value, i: &HashMap<String, Tensor>, stash: &Stash) -> Result<Tensor> {
    let x = &i["x"];
    let op = p["op"].as_str().expect("op");
    match op {
        "batch_norm" | "batch_norm_relu" | "batch_norm_add_relu" => {
            let args = BatchNormArgs {
                weight: i.get("weight"),
                bias: i.get("bias"),
                running_mean: i.get("running_mean"),
                running_var: i.get("running_var"),
                training: p["training"].as_bool().unwrap(),
                momentum: p["momentum"].as_f64().unwrap(),
                eps: p["eps"].as_f64().unwrap(),
            };
            if let (Some(m), Some(v)) = (args.running_mean, args.running_var) {
                *stash.borrow_mut() = Some((m.clone(), v.clone()));
            }
            match op {
                "batch_norm" => x.batch_norm(&args),
                "batch_norm_relu" => x.batch_norm_relu(&args),
                _ => x.batch_norm_add_relu(&i["residual"], &args),
            }
        }
        "max_pool2d" => x.max_pool2d(pool_params(p)),
        "avg_pool2d" => x.avg_pool2d(pool_params(p), p["count_include_pad"].as_bool().unwrap()),
        "global_avg_pool2d" => x.global_avg_pool2d(),
        "upsample_nearest2d" => x.upsample_nearest2d(p["scale"].as_u64().unwrap() as usize),
        "reflection_pad2d" => x.reflection_pad2d(pad4(p)),
        "zero_pad2d" => x.zero_pad2d(pad4(p)),
        other => panic!("no engine op mapped for fixture op {other}"),
    }
}

fn is_bn(p: &Value) -> bool {
    p["op"].as_str().unwrap().starts_with("batch_norm")
}

/// Compares the stashed running statistics with the case's recorded PyTorch buffers.
fn check_running(fx: &Fixtures, case: &str, p: &Value, stash: &Stash, what: &str, dtype: DType) {
    if !(is_bn(p) && p["training"].as_bool().unwrap() && p["running"].as_bool().unwrap()) {
        return;
    }
    let (atol, rtol) = tolerance(dtype);
    let (m, v) = stash
        .borrow_mut()
        .take()
        .expect("running stats were passed");
    let (_, em) = fx.raw(&format!("{case}/extra/running_mean"));
    let (_, ev) = fx.raw(&format!("{case}/extra/running_var"));
    assert_close(&format!("{what} running_mean"), &m, em, atol, rtol);
    assert_close(&format!("{what} running_var"), &v, ev, atol, rtol);
}

#[test]
fn norm_pool_ops_match_pytorch() {
    let fx = Fixtures::load("norm_pool");
    let cases = fx.cases();
    assert!(cases.len() >= 30, "fixture has {} cases", cases.len());
    for device in test_devices() {
        for dtype in [DType::F64, DType::F32] {
            for case in &cases {
                let p = fx.params(case);
                let stash: Stash = RefCell::new(None);
                fx.check_case(case, dtype, device, |i| run_op(&p, i, &stash));
                let what = format!("norm_pool:{case} [{dtype} on {device}]");
                check_running(&fx, case, &p, &stash, &what, dtype);
            }
        }
    }
}

/// f16 activations (x, residual) with f32 γ, β and running statistics, as in mixed-precision
/// training: the output and dx are f16, dγ/dβ and the running statistics f32.
fn check_bn_mixed(fx: &Fixtures, case: &str, device: Device) {
    let p = fx.params(case);
    let what = format!("norm_pool:{case} [f16 x, f32 params on {device}]");
    let (atol, rtol) = tolerance(DType::F16);
    let name = |n: &str| format!("{case}/in/{n}");
    // Which inputs exist and which get gradients follows from the params (see gen_norm_pool.py).
    let affine = p["affine"].as_bool().unwrap();
    let running = p["running"].as_bool().unwrap();
    let residual = p["op"] == "batch_norm_add_relu";
    let mut i: HashMap<String, Tensor> = HashMap::new();
    let mut grads: Vec<String> = Vec::new();
    for (n, dt, present, grad) in [
        ("x", DType::F16, true, true),
        ("residual", DType::F16, residual, true),
        ("weight", DType::F32, affine, true),
        ("bias", DType::F32, affine, true),
        ("running_mean", DType::F32, running, false),
        ("running_var", DType::F32, running, false),
    ] {
        if !present {
            continue;
        }
        let mut t = fx.tensor(&name(n), dt, device);
        if grad {
            t = t.var();
            grads.push(n.to_string());
        }
        i.insert(n.to_string(), t);
    }
    let stash: Stash = RefCell::new(None);
    let out = run_op(&p, &i, &stash).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(out.dtype(), DType::F16, "{what}: output dtype");
    let (_, exp) = fx.raw(&format!("{case}/out"));
    assert_close(&format!("{what} output"), &out, exp, atol, rtol);
    check_running(fx, case, &p, &stash, &what, DType::F16);
    let gout = fx.tensor(&format!("{case}/grad_out"), DType::F16, device);
    let g = out
        .mul(&gout)
        .and_then(|t| t.to_dtype(DType::F64))
        .and_then(|t| t.sum_all())
        .and_then(|l| l.backward())
        .unwrap_or_else(|e| panic!("{what}: backward: {e}"));
    for n in grads {
        let gt = g
            .get(&i[&n])
            .unwrap_or_else(|| panic!("{what}: no grad for {n}"));
        assert_eq!(gt.dtype(), i[&n].dtype(), "{what}: grad dtype of {n}");
        let (_, exp) = fx.raw(&format!("{case}/grad/{n}"));
        assert_close(&format!("{what} grad of {n}"), gt, exp, atol, rtol);
    }
}

#[test]
fn batch_norm_mixed_precision_matches_pytorch() {
    let fx = Fixtures::load("norm_pool");
    let bn: Vec<String> = fx
        .cases()
        .into_iter()
        .filter(|c| is_bn(&fx.params(c)))
        .collect();
    assert!(bn.len() >= 10);
    for device in test_devices() {
        for case in &bn {
            check_bn_mixed(&fx, case, device);
        }
    }
}
