//! CUDA launchers for `SgdStep` and `AllFinite` (`src/optim/sgd.rs`, kernels in `cuda/sgd.cu`).
//!
//! `SgdStep` is one elementwise launch per parameter tensor (inputs `[p, g, buf]`, outputs
//! `[p', buf']`, new buffers like the CPU). `AllFinite` is a flag kernel (integer atomicOr per block)
//! followed by a one-thread kernel that writes the f32 answer, so no host synchronisation happens until
//! the caller reads the result.
//!
//! `multi_tensor_sgd_step` launches `multi_tensor_all_finite_*` and `multi_tensor_sgd_*`, the
//! one-launch-for-all-parameters variants (unscale, inf/NaN check, momentum/Nesterov, per-tensor
//! weight decay, f32 master → f16 copy, in place; argument layout in `cuda/sgd.cu`): `Sgd::step` uses
//! it whenever every parameter lives on one CUDA device (`src/optim/sgd.rs`), so a training step
//! makes two launches per gradient dtype and one 4-byte read-back, not two launches and a host
//! synchronisation per parameter tensor.
//!
//! Every call (kernel name, argument order) comes from `kernel_abi/sgd.rs`, as do the multi-tensor
//! records, their grouping and grids.

use super::softmax::check_len;
use super::{gpu, CudaKernel, CudaStorage, Gpu};
use crate::backend::kernel_abi::sgd::{
    self, all_finite_finish_launch, group_by_grad_dtype, multi_tensor_launch, SgdTensorArgs, CHUNK,
    SGD_FIRST,
};
use crate::backend::Storage;
use crate::optim::sgd::{AllFinite, MultiTensorHyper, MultiTensorSlot, SgdStep};
use crate::{DType, Error, Result, Tensor};

impl CudaKernel for SgdStep {
    fn launch(&self, inputs: &[&CudaStorage], _out: &[DType]) -> Result<Vec<CudaStorage>> {
        const OP: &str = "sgd_step";
        let (p, gr, buf) = (inputs[0], inputs[1], inputs[2]);
        let n = p.len();
        check_len(OP, "gradient", gr, n)?;
        check_len(OP, "momentum buffer", buf, n)?;
        let g = gpu(p.ordinal())?;
        let dt = p.dtype();
        let mut p_out = g.alloc(dt, n)?;
        let mut b_out = g.alloc(dt, n)?;
        if n > 0 {
            let call = sgd::sgd_step(
                dt,
                n,
                self,
                p.dptr(g),
                gr.dptr(g),
                buf.dptr(g),
                p_out.dptr_mut(g),
                b_out.dptr_mut(g),
            );
            // SAFETY: all five buffers hold n T (inputs checked above, outputs allocated with n).
            unsafe { g.launch(&call, g.grid(n)) }?;
        }
        Ok(vec![p_out, b_out])
    }
}

impl CudaKernel for AllFinite {
    fn launch(&self, inputs: &[&CudaStorage], _out: &[DType]) -> Result<Vec<CudaStorage>> {
        let x = inputs[0];
        let n = x.len();
        let g = gpu(x.ordinal())?;
        // A zeroed 4-byte buffer used as the u32 flag.
        let mut flag = g.zeros(DType::F32, 1)?;
        if n > 0 {
            let call = sgd::all_finite(x.dtype(), n, x.dptr(g), flag.dptr_mut(g));
            // SAFETY: x holds n elements of its dtype, flag 4 bytes.
            unsafe { g.launch(&call, g.grid(n)) }?;
        }
        let mut out = g.alloc(DType::F32, 1)?;
        let call = sgd::all_finite_finish(flag.dptr(g), out.dptr_mut(g));
        let one = g.launch_cfg(all_finite_finish_launch());
        // SAFETY: flag and out hold 4 bytes each.
        unsafe { g.launch(&call, one) }?;
        Ok(vec![out])
    }
}

/// The device address of `t`'s storage, after checking that it is a dense CUDA buffer of `numel`
/// elements of `dtype` on device `g` (`what` names it in errors).
fn device_address(g: &Gpu, t: &Tensor, what: &str, dtype: DType, numel: usize) -> Result<u64> {
    const OP: &str = "multi_tensor_sgd";
    let storage = t.storage();
    let Storage::Cuda(c) = &*storage else {
        return Err(Error::bad(OP, format!("{what} is not on a CUDA device")));
    };
    if c.ordinal() != g.ordinal || c.dtype() != dtype || c.len() != numel {
        return Err(Error::bad(
            OP,
            format!(
                "{what}: expected {numel} {dtype} on cuda:{}, got {} {} on cuda:{}",
                g.ordinal,
                c.len(),
                c.dtype(),
                c.ordinal()
            ),
        ));
    }
    Ok(c.dptr(g))
}

/// One SGD step over every slot, in place, on CUDA device `ordinal`: all gradients are checked
/// for inf/NaN first (one flag for the whole step); when any is not finite nothing changes and the
/// result is `false`. Slots are grouped by gradient dtype (f16 or f32; one kernel pair each).
/// Masters and momentum buffers are f32 and share the master's memory format with the gradient.
pub fn multi_tensor_sgd_step(
    ordinal: usize,
    slots: &[MultiTensorSlot<'_>],
    hp: &MultiTensorHyper,
) -> Result<bool> {
    const OP: &str = "multi_tensor_sgd";
    let g = gpu(ordinal)?;
    let mut records = Vec::with_capacity(slots.len());
    for (i, s) in slots.iter().enumerate() {
        let n = s.master.numel();
        let gdt = s.grad.dtype();
        if !matches!(gdt, DType::F16 | DType::F32) {
            return Err(Error::bad(
                OP,
                format!("slot {i}: gradient dtype {gdt} (f16 or f32 only)"),
            ));
        }
        if s.grad.format() != s.master.format() {
            return Err(Error::bad(
                OP,
                format!("slot {i}: gradient and master differ in memory format"),
            ));
        }
        let args = SgdTensorArgs {
            master: device_address(g, s.master, "master", DType::F32, n)?,
            momentum: device_address(g, s.momentum, "momentum buffer", DType::F32, n)?,
            grad: device_address(g, s.grad, "gradient", gdt, n)?,
            param_f16: match s.param_f16 {
                Some(p) => device_address(g, p, "f16 parameter", DType::F16, n)?,
                None => 0,
            },
            numel: n as i64,
            weight_decay: s.weight_decay as f32,
            flags: if s.first { SGD_FIRST } else { 0 },
        };
        records.push((gdt, args));
    }
    let groups = group_by_grad_dtype(CHUNK, records);
    // A zeroed 4-byte buffer used as the u32 "saw a non-finite gradient" flag.
    let mut flag = g.zeros(DType::F32, 1)?;
    let mut uploaded = Vec::with_capacity(groups.len());
    for grp in &groups {
        // Pageable host → device copies return once the source has been staged, so the host
        // vectors may go when this function returns.
        let ts = g.upload_words(bytemuck::cast_slice::<SgdTensorArgs, u64>(&grp.tensors))?;
        let cs = g.upload_words(bytemuck::cast_slice::<i64, u64>(&grp.chunk_starts))?;
        uploaded.push((grp.grad_dtype, grp.tensors.len(), ts, cs, grp.chunks()));
    }
    let launch = |chunks: i64| g.launch_cfg(multi_tensor_launch(chunks, g.sms()));
    // Device addresses of the uploaded tables.
    let addrs = |ts: &CudaStorage, cs: &CudaStorage| (ts.dptr(g), cs.dptr(g));
    for (dt, n_tensors, ts, cs, chunks) in &uploaded {
        if *chunks == 0 {
            continue;
        }
        let (ts, cs) = addrs(ts, cs);
        let call = sgd::multi_tensor_all_finite(*dt, ts, *n_tensors, cs, CHUNK, flag.dptr_mut(g));
        // SAFETY: every pointer in `ts` was checked above to address `numel` elements of its dtype
        // on this device, `cs` holds n_tensors + 1 prefix sums, `flag` 4 bytes.
        unsafe { g.launch(&call, launch(*chunks)) }?;
    }
    for (dt, n_tensors, ts, cs, chunks) in &uploaded {
        if *chunks == 0 {
            continue;
        }
        let (ts, cs) = addrs(ts, cs);
        let call = sgd::multi_tensor_sgd(*dt, ts, *n_tensors, cs, CHUNK, hp, flag.dptr(g));
        // SAFETY: buffers as above. Each element is updated by one thread (chunks partition every
        // tensor), and no two slots share storage (`Sgd` owns one slot per parameter).
        unsafe { g.launch(&call, launch(*chunks)) }?;
    }
    let bits: Vec<u32> = flag.download()?;
    Ok(bits[0] == 0)
}
