//! f64 finite-difference gradient checks for the elementwise, reduction, matmul and layout ops.

use engine::testing::{check_gradients, randn_var};
use engine::{Result, Tensor, UnaryOp};

fn check(name: &str, inputs: &[Tensor], f: impl Fn(&[Tensor]) -> Result<Tensor>) {
    check_gradients(name, inputs, f, 64, 1e-6, 1e-5).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn unary_ops() {
    // Inputs kept away from kinks (0 for relu/abs) and domains (log, sqrt need x > 0).
    let x = randn_var(&[3, 5, 7], 1);
    let pos = x.abs().unwrap().add_scalar(0.5).unwrap().detach();
    for op in [
        UnaryOp::Relu,
        UnaryOp::LeakyRelu(0.2),
        UnaryOp::Tanh,
        UnaryOp::Sigmoid,
        UnaryOp::Exp,
        UnaryOp::Abs,
        UnaryOp::Square,
        UnaryOp::Affine {
            mul: -1.5,
            add: 0.25,
        },
    ] {
        check(&format!("{op:?}"), &[x.clone()], |v| v[0].unary(op));
    }
    for op in [
        UnaryOp::Log,
        UnaryOp::Sqrt,
        UnaryOp::Recip,
        UnaryOp::Powf(1.7),
    ] {
        check(&format!("{op:?}"), &[pos.clone()], |v| v[0].unary(op));
    }
}

#[test]
fn binary_ops_with_broadcasting() {
    let shapes: [(&[usize], &[usize]); 4] = [
        (&[4, 3], &[4, 3]),
        (&[2, 3, 4, 5], &[1, 3, 1, 1]),
        (&[5], &[3, 1]),
        (&[2, 1, 4], &[3, 1]),
    ];
    for (i, (sa, sb)) in shapes.iter().enumerate() {
        let a = randn_var(sa, 10 + i as u64);
        let b = randn_var(sb, 20 + i as u64)
            .abs()
            .unwrap()
            .add_scalar(0.5)
            .unwrap()
            .var();
        check("add", &[a.clone(), b.clone()], |v| v[0].add(&v[1]));
        check("sub", &[a.clone(), b.clone()], |v| v[0].sub(&v[1]));
        check("mul", &[a.clone(), b.clone()], |v| v[0].mul(&v[1]));
        check("div", &[a.clone(), b.clone()], |v| v[0].div(&v[1]));
    }
}

#[test]
fn a_tensor_used_twice_gets_both_gradients() {
    let x = randn_var(&[6], 3);
    check("x*x+x", &[x], |v| v[0].mul(&v[0])?.add(&v[0]));
}

#[test]
fn reductions() {
    let x = randn_var(&[2, 3, 4, 5], 4);
    check("sum_all", &[x.clone()], |v| v[0].sum_all());
    check("mean_all", &[x.clone()], |v| v[0].mean_all());
    check("sum_dims keep", &[x.clone()], |v| {
        v[0].sum_dims(&[0, 2, 3], true)
    });
    check("mean_dims", &[x.clone()], |v| v[0].mean_dims(&[-1], false));
    check("broadcast_to", &[randn_var(&[3, 1], 5)], |v| {
        v[0].broadcast_to(&[2, 3, 4].into())
    });
}

#[test]
fn matmul_all_transposes() {
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        let a = randn_var(if ta { &[4, 3] } else { &[3, 4] }, 6);
        let b = randn_var(if tb { &[5, 4] } else { &[4, 5] }, 7);
        check("matmul_t", &[a, b], |v| v[0].matmul_t(&v[1], ta, tb));
    }
    let a = randn_var(&[2, 3, 4], 8);
    let b = randn_var(&[2, 4, 5], 9);
    check("batched matmul", &[a.clone(), b], |v| v[0].matmul(&v[1]));
    let w = randn_var(&[6, 4], 10);
    let bias = randn_var(&[6], 11);
    check("linear shared weight", &[a, w, bias], |v| {
        v[0].linear(&v[1], Some(&v[2]))
    });
}

#[test]
fn layout_ops() {
    let x = randn_var(&[2, 3, 4, 5], 12);
    check("reshape", &[x.clone()], |v| v[0].reshape(vec![6, 20]));
    check("permute", &[x.clone()], |v| v[0].permute(&[0, 2, 3, 1]));
    check("to_format", &[x.clone()], |v| {
        v[0].to_format(engine::MemoryFormat::ChannelsLast)?
            .mul(&v[0].to_format(engine::MemoryFormat::ChannelsLast)?)
    });
    check("narrow", &[x.clone()], |v| v[0].narrow(1, 1, 2));
    let y = randn_var(&[2, 2, 4, 5], 13);
    check("concat", &[x, y], |v| Tensor::concat(&[&v[0], &v[1]], 1));
}

#[test]
fn forward_values_against_hand_computed() {
    let a = Tensor::from_vec(
        vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0],
        [2, 3],
        engine::Device::Cpu,
    )
    .unwrap();
    let b = Tensor::from_vec(
        vec![1.0f32, 0.0, -1.0, 2.0, 0.5, 1.0],
        [3, 2],
        engine::Device::Cpu,
    )
    .unwrap();
    let c = a.matmul(&b).unwrap();
    assert_eq!(
        c.to_vec::<f32>().unwrap(),
        vec![
            1.0 - 2.0 + 1.5,
            0.0 + 4.0 + 3.0,
            4.0 - 5.0 + 3.0,
            0.0 + 10.0 + 6.0
        ]
    );
    let s = a.sum_dims(&[0], false).unwrap();
    assert_eq!(s.to_vec::<f32>().unwrap(), vec![5.0, 7.0, 9.0]);
    let t = a.permute(&[1, 0]).unwrap();
    assert_eq!(
        t.to_vec::<f32>().unwrap(),
        vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]
    );
    let cl = a
        .reshape(vec![1, 2, 3, 1])
        .unwrap()
        .to_format(engine::MemoryFormat::ChannelsLast)
        .unwrap();
    assert_eq!(
        cl.to_vec::<f32>().unwrap(),
        vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        "to_vec reads logical order"
    );
}
