//! CUDA against the CPU backend on shapes the fixtures do not reach: every dtype (f16 included),
//! sizes above the launch grid (grid-stride loops), both reduction strategies, many-dim broadcasts,
//! every cast pair, batched/shared/transposed matmuls. Runs only in `--features cuda` builds on a
//! machine with a usable GPU; otherwise it prints why and passes, unless `ENGINE_REQUIRE_CUDA=1`
//! (set by scripts/gpu_check.sh on the GPU machines) turns a missing GPU into a failure.

use engine::testing::compare;
use engine::{DType, Device, Result, Tensor, UnaryOp};

use engine::testing::cuda_device as cuda;

fn tol(dtype: DType) -> (f64, f64) {
    match dtype {
        DType::F64 => (1e-10, 1e-9),
        DType::F32 => (1e-4, 1e-4),
        DType::F16 => (2e-2, 1e-2),
    }
}

/// Runs `f` on CPU and CUDA copies of the same inputs and compares the results.
fn same(
    what: &str,
    dtype: DType,
    dev: Device,
    inputs: &[Tensor],
    f: impl Fn(&[Tensor]) -> Result<Tensor>,
) {
    let cpu_in: Vec<Tensor> = inputs.iter().map(|t| t.to_dtype(dtype).unwrap()).collect();
    let gpu_in: Vec<Tensor> = cpu_in.iter().map(|t| t.to_device(dev).unwrap()).collect();
    let want = f(&cpu_in).unwrap_or_else(|e| panic!("{what} [{dtype}] cpu: {e}"));
    let got = f(&gpu_in).unwrap_or_else(|e| panic!("{what} [{dtype}] cuda: {e}"));
    assert_eq!(got.device(), dev, "{what}: result left the device");
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    assert_eq!(got.dtype(), want.dtype(), "{what}: dtype");
    let (atol, rtol) = tol(dtype);
    let (max, ok) = compare(
        &got.to_vec_f64().unwrap(),
        &want.to_vec_f64().unwrap(),
        atol,
        rtol,
    );
    assert!(ok, "{what} [{dtype}]: max |cuda − cpu| = {max:.3e}");
}

fn randn(dims: &[usize], seed: u64) -> Tensor {
    Tensor::randn(dims.to_vec(), 0.0, 1.0, seed, DType::F64, Device::Cpu).unwrap()
}

const DTYPES: [DType; 3] = [DType::F16, DType::F32, DType::F64];

#[test]
fn elementwise_all_dtypes_and_large() {
    let Some(dev) = cuda() else { return };
    let big = randn(&[3_000_017], 1); // > 256 threads × 32 blocks × 132 SMs: grid-stride loop
    let small = randn(&[3, 5, 7], 2);
    let pos = small.abs().unwrap().add_scalar(0.5).unwrap();
    for dtype in DTYPES {
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
            same(&format!("{op:?}"), dtype, dev, &[small.clone()], |v| {
                v[0].unary(op)
            });
        }
        for op in [
            UnaryOp::Log,
            UnaryOp::Sqrt,
            UnaryOp::Recip,
            UnaryOp::Powf(1.7),
        ] {
            same(&format!("{op:?}"), dtype, dev, &[pos.clone()], |v| {
                v[0].unary(op)
            });
        }
        same("big tanh", dtype, dev, &[big.clone()], |v| v[0].tanh());
        same("big add", dtype, dev, &[big.clone(), big.clone()], |v| {
            v[0].add(&v[1])
        });
        // Backward through UnaryBackward on the device (f64 only needs exactness; others run too).
        same("sigmoid backward", dtype, dev, &[small.clone()], |v| {
            let x = v[0].var();
            let g = x.sigmoid()?.sum_all()?.backward()?;
            Ok(g.get(&x).expect("grad").clone())
        });
    }
}

#[test]
fn broadcasting_many_dims() {
    let Some(dev) = cuda() else { return };
    let cases: [(&[usize], &[usize]); 5] = [
        (&[2, 3, 4, 5], &[1, 3, 1, 1]),
        (&[5], &[3, 1]),
        (&[2, 1, 4], &[3, 1]),
        (&[2, 3, 1, 2, 3, 1, 2, 3, 2], &[3, 1, 2, 1, 4, 1, 3, 1]),
        (&[64, 1000], &[1000]),
    ];
    for dtype in DTYPES {
        for (i, (sa, sb)) in cases.iter().enumerate() {
            let a = randn(sa, 10 + i as u64);
            let b = randn(sb, 20 + i as u64)
                .abs()
                .unwrap()
                .add_scalar(0.5)
                .unwrap();
            same("sub", dtype, dev, &[a.clone(), b.clone()], |v| {
                v[0].sub(&v[1])
            });
            same("div", dtype, dev, &[a.clone(), b.clone()], |v| {
                v[0].div(&v[1])
            });
            same("mul rev", dtype, dev, &[b.clone(), a.clone()], |v| {
                v[0].mul(&v[1])
            });
        }
    }
}

#[test]
fn reductions_both_strategies() {
    let Some(dev) = cuda() else { return };
    let x = randn(&[8, 16, 33, 17], 3);
    let wide = randn(&[300, 5000], 4);
    for dtype in DTYPES {
        same("sum [0,2,3]", dtype, dev, &[x.clone()], |v| {
            v[0].sum_dims(&[0, 2, 3], true)
        });
        same("sum last", dtype, dev, &[x.clone()], |v| {
            v[0].sum_dims(&[-1], false)
        });
        same("sum first", dtype, dev, &[x.clone()], |v| {
            v[0].sum_dims(&[0], false)
        });
        same("sum [1,3]", dtype, dev, &[x.clone()], |v| {
            v[0].sum_dims(&[1, 3], true)
        });
        same("mean all", dtype, dev, &[x.clone()], |v| v[0].mean_all());
        same("bias grad", dtype, dev, &[wide.clone()], |v| {
            v[0].sum_dims(&[0], false)
        });
        same("row sums", dtype, dev, &[wide.clone()], |v| {
            v[0].sum_dims(&[1], false)
        });
        same("broadcast_to", dtype, dev, &[randn(&[3, 1], 5)], |v| {
            v[0].broadcast_to(&[2, 3, 4].into())
        });
    }
}

#[test]
fn layout_ops_all_dtypes() {
    let Some(dev) = cuda() else { return };
    let x = randn(&[2, 3, 4, 5], 6);
    let y = randn(&[2, 2, 4, 5], 7);
    for dtype in DTYPES {
        same("permute", dtype, dev, &[x.clone()], |v| {
            v[0].permute(&[0, 2, 3, 1])
        });
        same("transpose", dtype, dev, &[x.clone()], |v| {
            v[0].transpose(1, 3)
        });
        same("channels_last", dtype, dev, &[x.clone()], |v| {
            v[0].to_format(engine::MemoryFormat::ChannelsLast)?
                .contiguous()
        });
        same("narrow", dtype, dev, &[x.clone()], |v| v[0].narrow(1, 1, 2));
        same("narrow last", dtype, dev, &[x.clone()], |v| {
            v[0].narrow(3, 2, 3)
        });
        same("concat", dtype, dev, &[x.clone(), y.clone()], |v| {
            Tensor::concat(&[&v[0], &v[1]], 1)
        });
        same("concat 0", dtype, dev, &[x.clone(), x.clone()], |v| {
            Tensor::concat(&[&v[0], &v[1]], 0)
        });
        same("narrow backward", dtype, dev, &[x.clone()], |v| {
            let t = v[0].var();
            let g = t.narrow(2, 1, 2)?.sum_all()?.backward()?;
            Ok(g.get(&t).expect("grad").clone())
        });
        for to in DTYPES {
            same(&format!("cast to {to}"), dtype, dev, &[x.clone()], |v| {
                v[0].to_dtype(to)?.to_dtype(DType::F64)
            });
        }
    }
}

#[test]
fn matmul_variants() {
    let Some(dev) = cuda() else { return };
    for dtype in DTYPES {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let a = randn(if ta { &[37, 19] } else { &[19, 37] }, 8);
            let b = randn(if tb { &[23, 37] } else { &[37, 23] }, 9);
            same(&format!("matmul_t {ta} {tb}"), dtype, dev, &[a, b], |v| {
                v[0].matmul_t(&v[1], ta, tb)
            });
        }
        let a = randn(&[4, 19, 37], 10);
        let b = randn(&[4, 37, 23], 11);
        same("batched", dtype, dev, &[a.clone(), b], |v| {
            v[0].matmul(&v[1])
        });
        let w = randn(&[23, 37], 12);
        let bias = randn(&[23], 13);
        same(
            "linear shared",
            dtype,
            dev,
            &[a.clone(), w.clone(), bias],
            |v| v[0].linear(&v[1], Some(&v[2])),
        );
        let at = randn(&[4, 37, 19], 14);
        same(
            "batched trans_a shared",
            dtype,
            dev,
            &[at, w.clone()],
            |v| v[0].matmul_t(&v[1], true, true),
        );
    }
}

/// Uploads go through pinned slots from 1 MiB, and a step's inputs (`to_device_input`) from
/// 64 KiB, on a GPU through the copy stream (the backend's `staging.rs`). Many back-to-back uploads
/// of three sizes by both paths (so every slot is reused several times, by both), made on the
/// consumer's thread and on a prepare-ahead thread as the trainers do, each read by a kernel at
/// once: every result and every uploaded tensor, read again at the end, must hold exactly its own
/// bytes. A missing wait between the streams, or a slot that became a tensor's storage, shows up
/// here as another upload's (or the NaN poison's) values.
#[test]
fn staged_uploads_arrive_intact_and_stay_intact() {
    use engine::data::ahead::Ahead;
    let Some(dev) = cuda() else { return };
    let host = |i: usize| {
        let n = [300_007, 1_000_003, 40_000][i % 3]; // 1.2 MB, 4 MB and 160 KB of f32
        Tensor::randn([n], 0.0, 1.0, 100 + i as u64, DType::F32, Device::Cpu).unwrap()
    };
    let upload = move |i: usize, h: &Tensor| match i % 4 {
        0 => h.to_device(dev),
        _ => h.to_device_input(dev),
    };
    let check = |i: usize, what: &str, got: &Tensor, want: &Tensor| {
        assert!(
            got.to_vec::<f32>().unwrap() == want.to_vec::<f32>().unwrap(),
            "upload {i}: {what} differs from the host's bytes"
        );
    };
    let mut kept = Vec::new();
    for i in 0..12 {
        let h = host(i);
        let d = upload(i, &h).unwrap();
        check(
            i,
            "doubled at once",
            &d.scale(2.0).unwrap(),
            &h.scale(2.0).unwrap(),
        );
        kept.push((i, h, d));
    }
    let ahead = Ahead::threaded(12..24usize, move |i| {
        let h = host(i);
        let d = upload(i, &h)?;
        Ok((i, h, d))
    });
    for item in ahead {
        let (i, h, d) = item.unwrap();
        check(
            i,
            "doubled at once",
            &d.scale(2.0).unwrap(),
            &h.scale(2.0).unwrap(),
        );
        kept.push((i, h, d));
    }
    for (i, h, d) in &kept {
        check(*i, "read at the end", d, h);
    }
    // A burst of step inputs of one length queued before any is read: each slot is reused while
    // the compute stream may not have copied its previous upload out yet (on the fake GPU with
    // FAKEGPU_EAGER_STREAM=2 the copy stream runs ahead of the compute stream, as a GPU may).
    let burst: Vec<(Tensor, Tensor)> = (0..9)
        .map(|i| {
            let h = Tensor::randn([40_000], 0.0, 1.0, 200 + i, DType::F32, Device::Cpu).unwrap();
            let d = h.to_device_input(dev).unwrap().scale(2.0).unwrap();
            (h, d)
        })
        .collect();
    for (i, (h, d)) in burst.iter().enumerate() {
        check(i, "doubled in a burst", d, &h.scale(2.0).unwrap());
    }
}

/// `Tensor::scalars` returns one-element tensors' values exactly, whatever their dtype and shape,
/// and on a CUDA device reads them back in one read of device memory.
#[test]
fn scalars_are_read_back_together() {
    use engine::backend::take_device_reads;
    for dev in engine::testing::test_devices() {
        let a = Tensor::from_f64s(&[1.5], vec![1], DType::F16, dev).unwrap();
        let b = Tensor::from_f64s(&[-2.25], vec![], DType::F32, dev).unwrap();
        let c = Tensor::from_f64s(&[1e-300], vec![1, 1], DType::F64, dev).unwrap();
        take_device_reads();
        let v = Tensor::scalars(&[&a, &b, &c]).unwrap();
        assert_eq!(v, [1.5, -2.25, 1e-300], "{dev}");
        if !dev.is_cpu() {
            assert_eq!(take_device_reads(), 1, "{dev}: device reads");
        }
        let two = Tensor::zeros([2], DType::F32, dev).unwrap();
        let e = Tensor::scalars(&[&a, &two]).unwrap_err().to_string();
        assert!(e.contains("not one element"), "{e}");
    }
}

/// `Tensor::full` (and `zeros`/`ones`, the backward seed, the GAN targets) fills on the device:
/// every element equals the CPU's, for each dtype and for zero, one and other values.
#[test]
fn full_fills_on_the_device() {
    let Some(dev) = cuda() else { return };
    for dtype in DTYPES {
        for v in [0.0, 1.0, -2.5, 0.1, 65504.0] {
            let want = Tensor::full(v, [3, 70_001], dtype, Device::Cpu).unwrap();
            let got = Tensor::full(v, [3, 70_001], dtype, dev).unwrap();
            assert_eq!(got.device(), dev);
            assert!(!got.is_variable(), "a filled tensor is a constant");
            assert_eq!(
                got.to_vec_f64().unwrap(),
                want.to_vec_f64().unwrap(),
                "full({v}) [{dtype}]"
            );
        }
    }
}
