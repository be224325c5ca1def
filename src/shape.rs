//! Tensor shapes. A `Shape` is the logical extent of each dimension, outermost first (PyTorch order:
//! images are `[N, C, H, W]` whatever their memory format). Strides are not stored: storage is dense,
//! and its element order is given by the tensor's `MemoryFormat` (see `tensor.rs`).

#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Shape(Vec<usize>);

impl std::fmt::Debug for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl Shape {
    pub fn new(dims: Vec<usize>) -> Self {
        Shape(dims)
    }
    pub fn scalar() -> Self {
        Shape(vec![])
    }
    pub fn dims(&self) -> &[usize] {
        &self.0
    }
    pub fn rank(&self) -> usize {
        self.0.len()
    }
    pub fn numel(&self) -> usize {
        self.0.iter().product()
    }
    /// Row-major (C-order) strides, in elements.
    pub fn contiguous_strides(&self) -> Vec<usize> {
        let mut strides = vec![1; self.0.len()];
        for i in (0..self.0.len().saturating_sub(1)).rev() {
            strides[i] = strides[i + 1] * self.0[i + 1];
        }
        strides
    }
    /// `(n, c, h, w)` of a rank-4 shape, or an error naming `op`.
    pub fn dims4(&self, op: &'static str) -> crate::Result<(usize, usize, usize, usize)> {
        match self.0.as_slice() {
            &[n, c, h, w] => Ok((n, c, h, w)),
            _ => Err(crate::Error::bad(
                op,
                format!("expected a 4-d [N, C, H, W] tensor, got shape {:?}", self),
            )),
        }
    }
    /// `(rows, cols)` of a rank-2 shape, or an error naming `op`.
    pub fn dims2(&self, op: &'static str) -> crate::Result<(usize, usize)> {
        match self.0.as_slice() {
            &[r, c] => Ok((r, c)),
            _ => Err(crate::Error::bad(
                op,
                format!("expected a 2-d tensor, got shape {:?}", self),
            )),
        }
    }
    /// Resolves a possibly negative dimension index.
    pub fn dim_index(&self, op: &'static str, dim: isize) -> crate::Result<usize> {
        let r = self.rank() as isize;
        let d = if dim < 0 { dim + r } else { dim };
        if d < 0 || d >= r.max(1) {
            return Err(crate::Error::bad(
                op,
                format!("dimension {dim} out of range for shape {:?}", self),
            ));
        }
        Ok(d as usize)
    }
    /// Numpy broadcasting of two shapes.
    pub fn broadcast(op: &'static str, a: &Shape, b: &Shape) -> crate::Result<Shape> {
        let r = a.rank().max(b.rank());
        let mut out = vec![0; r];
        for i in 0..r {
            let da = if i + a.rank() >= r {
                a.0[i + a.rank() - r]
            } else {
                1
            };
            let db = if i + b.rank() >= r {
                b.0[i + b.rank() - r]
            } else {
                1
            };
            out[i] = match (da, db) {
                (x, y) if x == y => x,
                (1, y) => y,
                (x, 1) => x,
                _ => {
                    return Err(crate::Error::shape(
                        op,
                        a,
                        b,
                        "shapes cannot be broadcast together",
                    ))
                }
            };
        }
        Ok(Shape(out))
    }
}

impl From<Vec<usize>> for Shape {
    fn from(v: Vec<usize>) -> Self {
        Shape(v)
    }
}
impl From<&[usize]> for Shape {
    fn from(v: &[usize]) -> Self {
        Shape(v.to_vec())
    }
}
impl<const N: usize> From<[usize; N]> for Shape {
    fn from(v: [usize; N]) -> Self {
        Shape(v.to_vec())
    }
}
impl From<&Shape> for Shape {
    fn from(s: &Shape) -> Self {
        s.clone()
    }
}
impl From<()> for Shape {
    fn from(_: ()) -> Self {
        Shape(vec![])
    }
}
