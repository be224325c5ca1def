//! Launch plans of cuda/pool.cu and of the per-channel bias gradient in cuda/conv.cu: the
//! `PoolArgs` descriptor, the global average pool's warp/block choice and the bias gradient's grid.
//!
//! Invariants: [`PoolArgs`] has the field order and size (96 bytes, 8-aligned) of its C twin; kernel
//! and stride are positive (the kernels divide by the stride).

use super::rows::RowGroup;
use super::Launch1d;
use crate::ops::pool::PoolGeom;
use crate::{Error, Result};

/// Geometry of a pooling launch, mirrored by `PoolArgs` in cuda/pool.cu. Passed by value.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct PoolArgs {
    pub planes: i64,
    pub h: i64,
    pub w: i64,
    pub oh: i64,
    pub ow: i64,
    pub kh: i64,
    pub kw: i64,
    pub sh: i64,
    pub sw: i64,
    pub ph: i64,
    pub pw: i64,
    pub count_include_pad: i32,
    pub pad: i32,
}
const _: () = assert!(std::mem::size_of::<PoolArgs>() == 96);

impl PoolArgs {
    /// The descriptor of `g`; fails (naming `op`) when the kernel or the stride has a zero extent.
    pub fn new(op: &'static str, g: &PoolGeom, count_include_pad: bool) -> Result<PoolArgs> {
        let p = g.p;
        if p.kernel.0 == 0 || p.kernel.1 == 0 || p.stride.0 == 0 || p.stride.1 == 0 {
            return Err(Error::bad(
                op,
                format!("kernel and stride must be positive, got {p:?}"),
            ));
        }
        Ok(PoolArgs {
            planes: g.planes as i64,
            h: g.h as i64,
            w: g.w as i64,
            oh: g.oh as i64,
            ow: g.ow as i64,
            kh: p.kernel.0 as i64,
            kw: p.kernel.1 as i64,
            sh: p.stride.0 as i64,
            sw: p.stride.1 as i64,
            ph: p.padding.0 as i64,
            pw: p.padding.1 as i64,
            count_include_pad: count_include_pad as i32,
            pad: 0,
        })
    }
}

/// `global_avg_pool_{warp,block}_*`: a warp per plane of up to `WARP_ROW_MAX` elements, else a block
/// (the row kernels' mapping: a plane is a contiguous row), and that group's grid.
pub fn global_avg_pool_launch(planes: usize, hw: usize, sm_count: usize) -> (RowGroup, Launch1d) {
    let group = RowGroup::for_contiguous(hw);
    (group, group.launch(planes, sm_count))
}

/// `conv_bias_grad_*`: a block per channel, capped (the kernel grid-strides over channels).
pub fn bias_grad_launch(channels: usize, sm_count: usize) -> Launch1d {
    Launch1d::capped(channels, sm_count)
}
