//! Reverse-mode autograd. Each op that runs while recording attaches a `Node` to its output: the op's
//! name, its inputs, and a backward closure written right beside the forward (see `src/ops/`).
//! `Tensor::backward` orders the graph that leads to a scalar (the "tape" is that topological order),
//! walks it from the output back, and accumulates (`+=`) each input's gradient, so a tensor used twice
//! receives both contributions. It returns the gradients of the leaves made with `Tensor::var()`.
//!
//! Backward closures run with recording switched off: gradients are plain tensors.

use crate::tensor::{Tensor, TensorId};
use crate::{Error, Result};
use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Given the gradient of the op's output, returns one optional gradient per input, in input order.
pub type BackwardFn = dyn Fn(&Tensor) -> Result<Vec<Option<Tensor>>> + Send + Sync;

#[derive(Clone)]
pub struct Node {
    pub(crate) name: &'static str,
    pub(crate) inputs: Vec<Tensor>,
    /// `None` for ops without a backward rule: reaching one during backward is an error naming it.
    pub(crate) backward: Option<Arc<BackwardFn>>,
}

thread_local! {
    static RECORDING: Cell<bool> = const { Cell::new(true) };
}

/// True unless inside `no_grad`.
pub fn is_recording() -> bool {
    RECORDING.with(|r| r.get())
}

/// Restores the previous recording state when dropped.
pub struct NoGradGuard(bool);
impl NoGradGuard {
    pub fn new() -> Self {
        NoGradGuard(RECORDING.with(|r| r.replace(false)))
    }
}
impl Default for NoGradGuard {
    fn default() -> Self {
        Self::new()
    }
}
impl Drop for NoGradGuard {
    fn drop(&mut self) {
        RECORDING.with(|r| r.set(self.0));
    }
}

/// Runs `f` without recording (evaluation, optimizer updates).
pub fn no_grad<R>(f: impl FnOnce() -> R) -> R {
    let _g = NoGradGuard::new();
    f()
}

impl Tensor {
    /// Attaches a backward rule to `self` (an op's freshly computed output) when recording and any
    /// input requires grad; otherwise returns `self` unchanged.
    pub fn track(
        self,
        name: &'static str,
        inputs: &[&Tensor],
        backward: impl Fn(&Tensor) -> Result<Vec<Option<Tensor>>> + Send + Sync + 'static,
    ) -> Tensor {
        if !is_recording() || !inputs.iter().any(|t| t.requires_grad()) {
            return self;
        }
        self.with_node(Node {
            name,
            inputs: inputs.iter().map(|t| (*t).clone()).collect(),
            backward: Some(Arc::new(backward)),
        })
    }

    /// Records an op that has no backward rule: gradients reaching it fail with its name.
    pub fn track_no_backward(self, name: &'static str, inputs: &[&Tensor]) -> Tensor {
        if !is_recording() || !inputs.iter().any(|t| t.requires_grad()) {
            return self;
        }
        self.with_node(Node {
            name,
            inputs: inputs.iter().map(|t| (*t).clone()).collect(),
            backward: None,
        })
    }

    /// Gradients of this scalar with respect to every `var()` leaf it depends on.
    pub fn backward(&self) -> Result<GradStore> {
        if self.numel() != 1 {
            return Err(Error::BackwardNotScalar(self.shape().clone()));
        }
        let order = topological_order(self);
        let _guard = NoGradGuard::new();
        let mut pending: HashMap<TensorId, Tensor> = HashMap::new();
        pending.insert(self.id(), self.ones_like()?);
        let mut store = GradStore::default();
        for t in order.iter().rev() {
            let Some(grad) = pending.remove(&t.id()) else {
                continue;
            };
            if t.is_variable() {
                store.accumulate(t.id(), grad)?;
                continue;
            }
            let Some(node) = t.node() else { continue };
            let rule = node.backward.as_ref().ok_or(Error::NoBackward(node.name))?;
            let grads = rule(&grad)?;
            if grads.len() != node.inputs.len() {
                return Err(Error::bad(
                    node.name,
                    format!(
                        "backward returned {} gradients for {} inputs",
                        grads.len(),
                        node.inputs.len()
                    ),
                ));
            }
            for (input, g) in node.inputs.iter().zip(grads) {
                let Some(g) = g else { continue };
                if !input.requires_grad() {
                    continue;
                }
                if g.shape() != input.shape() {
                    return Err(Error::shape(
                        node.name,
                        input.shape(),
                        g.shape(),
                        "backward produced a gradient of the wrong shape",
                    ));
                }
                match pending.remove(&input.id()) {
                    Some(acc) => pending.insert(input.id(), acc.add(&g)?),
                    None => pending.insert(input.id(), g),
                };
            }
        }
        Ok(store)
    }
}

/// Tensors that require grad and lead to `root`, each after all of its inputs.
fn topological_order(root: &Tensor) -> Vec<Tensor> {
    let mut order = Vec::new();
    let mut seen: HashSet<TensorId> = HashSet::new();
    // Iterative post-order DFS: (tensor, inputs already pushed?)
    let mut stack: Vec<(Tensor, bool)> = vec![(root.clone(), false)];
    while let Some((t, expanded)) = stack.pop() {
        if expanded {
            order.push(t);
            continue;
        }
        if !seen.insert(t.id()) {
            continue;
        }
        stack.push((t.clone(), true));
        if let Some(node) = t.node() {
            for input in node.inputs.iter().rev() {
                if input.requires_grad() && !seen.contains(&input.id()) {
                    stack.push((input.clone(), false));
                }
            }
        }
    }
    order
}

/// Gradients by leaf.
#[derive(Default)]
pub struct GradStore {
    grads: HashMap<TensorId, Tensor>,
}

impl std::fmt::Debug for GradStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GradStore({} gradients)", self.grads.len())
    }
}

impl GradStore {
    pub fn get(&self, t: &Tensor) -> Option<&Tensor> {
        self.grads.get(&t.id())
    }
    pub fn remove(&mut self, t: &Tensor) -> Option<Tensor> {
        self.grads.remove(&t.id())
    }
    pub fn insert(&mut self, t: &Tensor, g: Tensor) {
        self.grads.insert(t.id(), g);
    }
    pub fn len(&self) -> usize {
        self.grads.len()
    }
    pub fn is_empty(&self) -> bool {
        self.grads.is_empty()
    }
    /// `grad[id] += g`.
    pub fn accumulate(&mut self, id: TensorId, g: Tensor) -> Result<()> {
        let new = match self.grads.remove(&id) {
            Some(acc) => acc.add(&g)?,
            None => g,
        };
        self.grads.insert(id, new);
        Ok(())
    }
}
