//! CUDA launcher for `SumKeep` (`src/ops/reduce.rs`, kernels in `cuda/reduce.cu`).
//!
//! The input dims split into kept dims (extent equal in the output) and reduced dims; each list is
//! collapsed separately (extent-1 dims dropped, contiguous neighbours merged). Strategy:
//! - one thread per output (`sum_thread_*`) when each output sums at most `SERIAL_MAX` elements, or
//!   when there are many outputs and the innermost input dim is kept (neighbouring threads then read
//!   neighbouring addresses, e.g. a bias gradient `[N, C] → [1, C]`);
//! - otherwise one 256-thread block per output (`sum_block_*`), grid-striding over outputs.
//!
//! Invariants: the output has `out_keep.numel()` elements in row-major order of `out_keep`; an output
//! whose reduced set is empty (a zero extent) is 0; nothing is launched for zero outputs.

use super::{collapse, gpu, suffix, CuResultExt, CudaKernel, CudaStorage, StridedArgs, THREADS};
use crate::ops::reduce::SumKeep;
use crate::{DType, Error, Result};
use cudarc::driver::{LaunchConfig, PushKernelArg};

/// At most this many reduced elements per output are summed by one thread.
const SERIAL_MAX: usize = 64;
/// With at least this many outputs, a kept innermost dim selects one thread per output.
const MANY_OUTPUTS: usize = 4096;

impl CudaKernel for SumKeep {
    fn launch(&self, inputs: &[&CudaStorage], _out: &[DType]) -> Result<Vec<CudaStorage>> {
        let x = inputs[0];
        let ind = self.input.dims();
        let outd = self.out_keep.dims();
        if ind.len() != outd.len()
            || ind.iter().zip(outd).any(|(&i, &o)| o != i && o != 1)
            || x.len() != self.input.numel()
        {
            return Err(Error::shape(
                "sum",
                &self.input,
                &self.out_keep,
                "output must keep or reduce (to 1) every input dim",
            ));
        }
        let g = gpu(x.ordinal())?;
        let n_out = self.out_keep.numel();
        let mut y = g.alloc(x.dtype(), n_out)?;
        if n_out == 0 {
            return Ok(vec![y]);
        }
        let strides = self.input.contiguous_strides();
        let kept: Vec<usize> = (0..ind.len()).filter(|&d| outd[d] == ind[d]).collect();
        let reduced: Vec<usize> = (0..ind.len()).filter(|&d| outd[d] != ind[d]).collect();
        let pick = |ds: &[usize]| -> (Vec<usize>, Vec<usize>) {
            (
                ds.iter().map(|&d| ind[d]).collect(),
                ds.iter().map(|&d| strides[d]).collect(),
            )
        };
        let (kd, ks) = pick(&kept);
        let (rd, rs) = pick(&reduced);
        let (kd, ks) = collapse(&kd, &[&ks]);
        let (rd, rs) = collapse(&rd, &[&rs]);
        let n_red: usize = rd.iter().product();
        let kept_args = StridedArgs::new("sum", &kd, &ks[0])?;
        let red_args = StridedArgs::new("sum", &rd, &rs[0])?;
        let inner_kept = kept.last().is_some_and(|&d| d + 1 == ind.len());
        let per_thread = n_red <= SERIAL_MAX || (n_out >= MANY_OUTPUTS && inner_kept);
        let (name, cfg) = if per_thread {
            ("sum_thread", g.grid(n_out))
        } else {
            let blocks = n_out.min(g.sm_count() as usize * 32).max(1) as u32;
            (
                "sum_block",
                LaunchConfig {
                    grid_dim: (blocks, 1, 1),
                    block_dim: (THREADS, 1, 1),
                    shared_mem_bytes: 0,
                },
            )
        };
        let f = g.func("reduce", &format!("{name}_{}", suffix(x.dtype())))?;
        let (n_out64, n_red64) = (n_out as i64, n_red as i64);
        let mut b = g.stream.launch_builder(&f);
        b.arg(&n_out64)
            .arg(&n_red64)
            .arg(&kept_args)
            .arg(&red_args)
            .arg(x.buf())
            .arg(y.buf_mut());
        // SAFETY: matches `sum_{thread,block}_<T>(i64, i64, StridedArgs, StridedArgs, const T*, T*)`;
        // kept and reduced offsets decompose the dense input shape, so every read is < x.len(), and y
        // holds n_out elements. `sum_block` gets 256 threads (a multiple of 32, ≤ 1024).
        unsafe { b.launch(cfg) }.cu("sum")?;
        Ok(vec![y])
    }
}
