//! Reverse-mode autograd. Each op that runs while recording attaches a `Node` to its output: the op's
//! name, its inputs, and a backward closure written right beside the forward (see `src/ops/`).
//! `Tensor::backward` orders the graph that leads to a scalar (the "tape" is that topological order),
//! walks it from the output back, and accumulates (`+=`) each input's gradient, so a tensor used twice
//! receives both contributions. It returns the gradients of the leaves made with `Tensor::var()`.
//!
//! Backward closures run with recording switched off: gradients are plain tensors.
//!
//! Memory: a node holds handles to its inputs (their ids, shapes and nodes: enough to walk the graph,
//! none of their storage) and its backward closure, which holds the tensors the rule needs. So, as in
//! PyTorch, an intermediate that no rule saves (a residual branch's sum, the input of an op whose rule
//! needs only its output) is freed as soon as the forward pass is done with it. `backward` keeps the
//! graph (it can be walked again); `backward_releasing` frees each node's closure, and with it the
//! saved tensors, as soon as its gradient has been passed on, as PyTorch does without
//! `retain_graph`, so a training step's activations are freed during the backward pass instead of
//! after it. Walking a released node again is `Error::GraphReleased`.

use crate::shape::Shape;
use crate::tensor::{Tensor, TensorId};
use crate::{Error, Result};
use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// Given the gradient of the op's output, returns one optional gradient per input, in input order.
pub type BackwardFn = dyn Fn(&Tensor) -> Result<Vec<Option<Tensor>>> + Send + Sync;

pub struct Node {
    pub(crate) name: &'static str,
    /// The inputs and the rule; `None` once a releasing backward has passed this node.
    edges: Mutex<Option<Edges>>,
}

/// What the graph keeps of an op's input: enough to route its gradient and walk on, not its data.
#[derive(Clone)]
struct Input {
    id: TensorId,
    shape: Shape,
    is_variable: bool,
    node: Option<Arc<Node>>,
}

impl Input {
    fn of(t: &Tensor) -> Input {
        Input {
            id: t.id(),
            shape: t.shape().clone(),
            is_variable: t.is_variable(),
            node: t.0.node.clone(),
        }
    }
    fn requires_grad(&self) -> bool {
        self.is_variable || self.node.is_some()
    }
}

#[derive(Clone)]
struct Edges {
    inputs: Vec<Input>,
    /// `None` for ops without a backward rule: reaching one during backward is an error naming it.
    backward: Option<Arc<BackwardFn>>,
}

impl Node {
    fn new(name: &'static str, inputs: &[&Tensor], backward: Option<Arc<BackwardFn>>) -> Node {
        Node {
            name,
            edges: Mutex::new(Some(Edges {
                inputs: inputs.iter().map(|t| Input::of(t)).collect(),
                backward,
            })),
        }
    }

    /// The inputs (empty once released).
    fn inputs(&self) -> Vec<Input> {
        let edges = self.edges.lock().unwrap_or_else(|p| p.into_inner());
        edges.as_ref().map(|e| e.inputs.clone()).unwrap_or_default()
    }

    /// The inputs and the rule: taken out of the node when `release`, else copied (Arc clones).
    fn edges(&self, release: bool) -> Result<Edges> {
        let mut edges = self.edges.lock().unwrap_or_else(|p| p.into_inner());
        let e = if release { edges.take() } else { edges.clone() };
        e.ok_or(Error::GraphReleased(self.name))
    }
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
        self.with_node(Node::new(name, inputs, Some(Arc::new(backward))))
    }

    /// Records an op that has no backward rule: gradients reaching it fail with its name.
    pub fn track_no_backward(self, name: &'static str, inputs: &[&Tensor]) -> Tensor {
        if !is_recording() || !inputs.iter().any(|t| t.requires_grad()) {
            return self;
        }
        self.with_node(Node::new(name, inputs, None))
    }

    /// Gradients of this scalar with respect to every `var()` leaf it depends on. The graph is kept
    /// (it can be walked again).
    pub fn backward(&self) -> Result<GradStore> {
        self.backward_impl(false)
    }

    /// `backward` that frees the graph as it goes: each node's inputs and saved tensors are dropped
    /// once its gradient has been passed on (PyTorch's default), so a step's activations are released
    /// during the backward pass. The graph cannot be walked again (`Error::GraphReleased`).
    pub fn backward_releasing(&self) -> Result<GradStore> {
        self.backward_impl(true)
    }

    fn backward_impl(&self, release: bool) -> Result<GradStore> {
        if self.numel() != 1 {
            return Err(Error::BackwardNotScalar(self.shape().clone()));
        }
        let mut order = topological_order(Input::of(self));
        let _guard = NoGradGuard::new();
        let mut pending: HashMap<TensorId, Tensor> = HashMap::new();
        pending.insert(self.id(), self.ones_like()?);
        let mut store = GradStore::default();
        // Consumed from the output back, so a releasing pass holds no tensor it has finished with.
        while let Some(t) = order.pop() {
            let Some(grad) = pending.remove(&t.id) else {
                continue;
            };
            if t.is_variable {
                store.accumulate(t.id, grad)?;
                continue;
            }
            let Some(node) = t.node else { continue };
            let Edges { inputs, backward } = node.edges(release)?;
            let rule = backward.as_ref().ok_or(Error::NoBackward(node.name))?;
            let grads = rule(&grad)?;
            if grads.len() != inputs.len() {
                return Err(Error::bad(
                    node.name,
                    format!(
                        "backward returned {} gradients for {} inputs",
                        grads.len(),
                        inputs.len()
                    ),
                ));
            }
            for (input, g) in inputs.iter().zip(grads) {
                let Some(g) = g else { continue };
                if !input.requires_grad() {
                    continue;
                }
                if g.shape() != &input.shape {
                    return Err(Error::shape(
                        node.name,
                        &input.shape,
                        g.shape(),
                        "backward produced a gradient of the wrong shape",
                    ));
                }
                match pending.remove(&input.id) {
                    Some(acc) => pending.insert(input.id, acc.add(&g)?),
                    None => pending.insert(input.id, g),
                };
            }
        }
        Ok(store)
    }
}

/// Handles of the tensors that require grad and lead to `root`, each after all of its inputs.
fn topological_order(root: Input) -> Vec<Input> {
    let mut order = Vec::new();
    let mut seen: HashSet<TensorId> = HashSet::new();
    // Iterative post-order DFS: (tensor, inputs already pushed?)
    let mut stack: Vec<(Input, bool)> = vec![(root, false)];
    while let Some((t, expanded)) = stack.pop() {
        if expanded {
            order.push(t);
            continue;
        }
        if !seen.insert(t.id) {
            continue;
        }
        let inputs = t.node.as_ref().map(|n| n.inputs()).unwrap_or_default();
        stack.push((t, true));
        for input in inputs.into_iter().rev() {
            if input.requires_grad() && !seen.contains(&input.id) {
                stack.push((input, false));
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

#[cfg(test)]
mod tests {
    use crate::{DType, Device, Error, Tensor};
    use std::sync::{Arc, RwLock, Weak};

    type WeakStorage = Weak<RwLock<crate::backend::Storage>>;

    /// x (a leaf), a chain of `layers` (scale by 2, tanh) — tanh saves its output, the affine map
    /// nothing —, a diamond at the end (h·h + exp(h)), the scalar sum. Returns (loss, weak handles to
    /// the storages some backward rule saves, weak handles to those no rule saves).
    fn graph(x: &Tensor, layers: usize) -> (Tensor, Vec<WeakStorage>, Vec<WeakStorage>) {
        let mut h = x.clone();
        let (mut saved, mut unsaved) = (Vec::new(), Vec::new());
        for _ in 0..layers {
            let scaled = h.scale(2.0).unwrap();
            unsaved.push(Arc::downgrade(&scaled.0.storage));
            h = scaled.tanh().unwrap();
            saved.push(Arc::downgrade(&h.0.storage));
        }
        let square = h.mul(&h).unwrap();
        let e = h.exp().unwrap();
        saved.push(Arc::downgrade(&e.0.storage));
        let d = square.add(&e).unwrap();
        unsaved.push(Arc::downgrade(&square.0.storage));
        unsaved.push(Arc::downgrade(&d.0.storage));
        (d.sum_all().unwrap(), saved, unsaved)
    }

    fn leaf() -> Tensor {
        Tensor::randn([3, 5], 0.0, 1.0, 7, DType::F64, Device::Cpu)
            .unwrap()
            .var()
    }

    #[test]
    fn releasing_backward_gives_the_same_gradients_and_frees_the_graph() {
        let x = leaf();
        let (loss, saved, unsaved) = graph(&x, 4);
        // The graph holds only what its rules saved (PyTorch's rule): an intermediate that was only
        // an op's input is freed once the forward pass drops it.
        let counts = |w: &[WeakStorage]| w.iter().map(|w| w.strong_count()).collect::<Vec<_>>();
        assert!(
            unsaved.iter().all(|w| w.strong_count() == 0),
            "{:?}",
            counts(&unsaved)
        );
        let kept = loss.backward().unwrap();
        // The graph is kept: what the rules saved is alive while the loss is, and can be walked again.
        assert!(
            saved.iter().all(|w| w.strong_count() > 0),
            "{:?}",
            counts(&saved)
        );
        let again = loss.backward().unwrap();
        let want = kept.get(&x).unwrap().to_vec_f64().unwrap();
        assert_eq!(again.get(&x).unwrap().to_vec_f64().unwrap(), want);

        let (loss, weak, _) = graph(&x, 4);
        let released = loss.backward_releasing().unwrap();
        assert_eq!(released.get(&x).unwrap().to_vec_f64().unwrap(), want);
        // Every intermediate's storage is gone though the loss is still held.
        assert!(
            weak.iter().all(|w| w.strong_count() == 0),
            "live intermediates after a releasing backward: {:?}",
            weak.iter().map(|w| w.strong_count()).collect::<Vec<_>>()
        );
        assert_eq!(
            loss.to_vec_f64().unwrap().len(),
            1,
            "the loss keeps its value"
        );
        match loss.backward_releasing() {
            Err(e @ Error::GraphReleased(_)) => {
                assert!(e.to_string().contains("recompute the forward"), "{e}")
            }
            other => panic!("a second walk of a released graph: {other:?}"),
        }
    }
}
