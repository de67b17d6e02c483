//! Evaluation of expression trees: keys, lookups, fusion groups, kernels.

// Structural ids are already xxh3 digests: a fast hasher is enough (SipHash
// cost a tenth of a fused 1e4-element evaluation's instructions).
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};

use super::explain::{describe, Trace};
use super::plan::{self, Token};
use super::{Kind, Node};
use crate::cache::Label;
use crate::element::DType;
use crate::error::{Error, Result};
use crate::kernel::elementwise::broadcast_shape;
use crate::kernel::elementwise::fused::{scalar_array, FOp, Program, Run};
use crate::kernel::reduce::fused::Sink;
use crate::kernel::Registry;
use crate::key::{call_key, Fingerprint};
use crate::value::{AnyArray, AnyView, Keyed};
use crate::{ArrayCache, Source};
use std::sync::Arc;

/// A node's value: borrowed from the expression, or computed.
enum Held<'a> {
    View(AnyView<'a>),
    Array(AnyArray),
}

impl Held<'_> {
    fn view(&self) -> AnyView<'_> {
        match self {
            Held::View(v) => v.reborrow(),
            Held::Array(a) => a.view(),
        }
    }

    fn shape(&self) -> &[usize] {
        match self {
            Held::View(v) => v.shape(),
            Held::Array(a) => a.shape(),
        }
    }
}

/// One evaluation: with a cache (keys, lookups, stores) or without.
pub(crate) struct Evaluator<'c, 't> {
    registry: &'c Registry,
    cache: Option<&'c ArrayCache>,
    trace: Option<&'t mut Trace>,
    /// Results of operation nodes computed or fetched in this evaluation,
    /// by structural id (a subexpression used twice is computed once).
    values: HashMap<u128, AnyArray>,
    /// Keys of nodes, by structural id (an input is hashed once).
    keys: HashMap<u128, Fingerprint>,
}

/// The nodes of one fused group: members by structural id, and the
/// frontier's values.
struct Group<'a> {
    shapes: HashMap<u128, Vec<usize>>,
    members: HashSet<u128>,
    frontier: HashMap<u128, Held<'a>>,
}

impl<'c, 't> Evaluator<'c, 't> {
    pub(crate) fn cached(cache: &'c ArrayCache, trace: Option<&'t mut Trace>) -> Self {
        Evaluator {
            registry: cache.registry(),
            cache: Some(cache),
            trace,
            values: HashMap::new(),
            keys: HashMap::new(),
        }
    }

    pub(crate) fn raw(registry: &'c Registry) -> Self {
        Evaluator {
            registry,
            cache: None,
            trace: None,
            values: HashMap::new(),
            keys: HashMap::new(),
        }
    }

    fn note(&mut self, line: impl FnOnce() -> String) {
        if let Some(t) = self.trace.as_deref_mut() {
            t.step(line());
        }
    }

    /// The root through the cache: its key, then the tier chain.
    pub(crate) fn root(mut self, node: &Node<'_>) -> Result<(Keyed, Source, Fingerprint)> {
        let cache = self.cache.expect("a cached evaluation");
        match &node.kind {
            Kind::Call { name, .. } => {
                let key = self.key(node)?;
                let kernel = self.registry.get(name)?;
                let label = Label {
                    name: kernel.name(),
                    version: kernel.version(),
                };
                let (keyed, source) = cache.get_or_compute(key, label, || self.compute(node))?;
                check_dtype(node, keyed.dtype())?;
                Ok((keyed, source, key))
            }
            _ => {
                let key = self.key(node)?;
                let value = self.value(node)?;
                let array = match value {
                    Held::View(v) => v.to_shared(),
                    Held::Array(a) => a,
                };
                Ok((Keyed::with_fingerprint(array, key), Source::Memory, key))
            }
        }
    }

    /// The root without a cache.
    pub(crate) fn value_of_root(mut self, node: &Node<'_>) -> Result<AnyArray> {
        Ok(match self.value(node)? {
            Held::View(v) => v.to_shared(),
            Held::Array(a) => a,
        })
    }

    /// The key of a node: what the chain of registry calls would use.
    fn key(&mut self, node: &Node<'_>) -> Result<Fingerprint> {
        let registry_id = match node.kind {
            Kind::Call { .. } => self.registry.id(),
            _ => 0,
        };
        if let Some(&(id, k)) = node.key.get() {
            if id == registry_id {
                return Ok(k);
            }
        }
        if let Some(k) = self.keys.get(&node.sid) {
            return Ok(*k);
        }
        let key = match &node.kind {
            Kind::View(v) => {
                let cache = self.cache.expect("keys only with a cache");
                if let Some(t) = self.trace.as_deref_mut() {
                    t.bytes_hashed += v.nbytes();
                }
                cache.fingerprint_view(v)
            }
            Kind::Keyed(k) => k.fingerprint(),
            Kind::Scalar(_, fp) => *fp,
            Kind::Invalid(reason) => return Err(Error::Expr(reason.clone())),
            Kind::Call { name, params } => {
                let prepared = self.registry.prepare(name, node.children.len(), params)?;
                let mut fps = Vec::with_capacity(node.children.len());
                for c in &node.children {
                    let k = self.key(c)?;
                    fps.push(match c.kind {
                        Kind::Call { .. } => k.derive(),
                        _ => k,
                    });
                }
                let kernel = prepared.kernel();
                call_key(kernel.name(), kernel.version(), &prepared.param_bytes, &fps)
            }
        };
        self.keys.insert(node.sid, key);
        let _ = node.key.set((registry_id, key));
        Ok(key)
    }

    /// The value of any node, computed at most once per evaluation.
    fn value<'a>(&mut self, node: &Node<'a>) -> Result<Held<'a>> {
        match &node.kind {
            Kind::View(v) => return Ok(Held::View(v.clone())),
            Kind::Keyed(k) => return Ok(Held::Array(k.array().clone())),
            Kind::Scalar(v, _) => return Ok(Held::Array(scalar_array(*v))),
            Kind::Invalid(reason) => return Err(Error::Expr(reason.clone())),
            Kind::Call { .. } => {}
        }
        if let Some(a) = self.values.get(&node.sid) {
            return Ok(Held::Array(a.clone()));
        }
        let array = match self.cache {
            Some(cache) if node.checkpoint => {
                let key = self.key(node)?;
                let Kind::Call { name, .. } = &node.kind else {
                    unreachable!("operation nodes only")
                };
                let kernel = self.registry.get(name)?;
                let label = Label {
                    name: kernel.name(),
                    version: kernel.version(),
                };
                let (keyed, source) = cache.get_or_compute(key, label, || self.compute(node))?;
                self.note(|| format!("checkpoint {}: {source}", describe(node)));
                keyed.into_array()
            }
            Some(cache) => {
                let key = self.key(node)?;
                match cache.memory_get(key) {
                    Some(hit) => {
                        self.note(|| format!("lookup {}: memory hit", describe(node)));
                        hit
                    }
                    None => self.compute(node)?,
                }
            }
            None => self.compute(node)?,
        };
        check_dtype(node, array.dtype())?;
        self.values.insert(node.sid, array.clone());
        Ok(Held::Array(array))
    }

    /// Computes an operation node: fused when it can be, else its kernel on
    /// its operands' values.
    fn compute(&mut self, node: &Node<'_>) -> Result<AnyArray> {
        let Kind::Call { name, params } = &node.kind else {
            unreachable!("only operations are computed")
        };
        if self.registry.is_builtin(name) {
            if FOp::of_kernel(name).is_some() {
                if let Some(a) = self.fuse(node, None)? {
                    return Ok(a);
                }
            } else if let Some(sink) = Sink::of_kernel(name) {
                if let Some(a) = self.fuse(&node.children[0], Some((sink, node)))? {
                    return Ok(a);
                }
            }
        }
        let mut held = Vec::with_capacity(node.children.len());
        for c in &node.children {
            held.push(self.value(c)?);
        }
        let views: Vec<AnyView<'_>> = held.iter().map(Held::view).collect();
        let out = self
            .registry
            .prepare(name, views.len(), params)?
            .compute(&views)?;
        self.note(|| format!("kernel {name} (not fused): computed"));
        check_dtype(node, out.dtype())?;
        Ok(out)
    }

    /// Whether `node` can be computed inside a fused group (`top`: as the
    /// group's result, which is never looked up on its own).
    fn is_member(&mut self, node: &Node<'_>, top: bool) -> Result<bool> {
        let Kind::Call { name, .. } = &node.kind else {
            return Ok(false);
        };
        if !self.registry.is_builtin(name) {
            return Ok(false);
        }
        let Some(op) = FOp::of_kernel(name) else {
            return Ok(false);
        };
        if node.children.len() != op.arity() {
            return Ok(false);
        }
        let dtypes: Vec<DType> = node.children.iter().map(|c| c.dtype).collect();
        if op.loop_dtype(&dtypes).is_none() {
            return Ok(false);
        }
        if top {
            return Ok(true);
        }
        if node.checkpoint || self.values.contains_key(&node.sid) {
            return Ok(false);
        }
        if let Some(cache) = self.cache {
            let key = self.key(node)?;
            if cache.memory_contains(key) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The shape of `node` in a group, materializing the frontier.
    fn shape_in<'a>(
        &mut self,
        node: &Node<'a>,
        g: &mut Group<'a>,
        top: bool,
    ) -> Result<Vec<usize>> {
        if let Some(s) = g.shapes.get(&node.sid) {
            return Ok(s.clone());
        }
        let shape = if self.is_member(node, top)? {
            let mut shape = self.shape_in(&node.children[0], g, false)?;
            for c in &node.children[1..] {
                let other = self.shape_in(c, g, false)?;
                shape = broadcast_shape(&shape, &other)?;
            }
            g.members.insert(node.sid);
            shape
        } else {
            let held = self.value(node)?;
            let shape = held.shape().to_vec();
            g.frontier.insert(node.sid, held);
            shape
        };
        g.shapes.insert(node.sid, shape.clone());
        Ok(shape)
    }

    /// Evaluates the elementwise tree under `top` as one fused program,
    /// ending in `sink` (the reduction node) when given; `None` if `top`
    /// cannot be fused.
    fn fuse(
        &mut self,
        top: &Node<'_>,
        sink: Option<(Sink, &Node<'_>)>,
    ) -> Result<Option<AnyArray>> {
        // Without a cache, and with nothing computed yet in this
        // evaluation, a group's analysis depends on the tree and on the
        // shapes of its frontier's values (only registries with the
        // builtins fuse; user kernels sit on the frontier, computed with the
        // registry at hand, and another registry's may return another
        // shape): the last one is reused while those shapes are the same.
        let pristine = self.cache.is_none() && self.trace.is_none() && self.values.is_empty();
        if let Some(f) = top.fused.get().filter(|_| pristine) {
            let held = f
                .inputs
                .iter()
                .map(|(path, _)| self.value(at(top, path)))
                .collect::<Result<Vec<_>>>()?;
            if held
                .iter()
                .zip(&f.inputs)
                .all(|(h, (_, shape))| h.shape() == shape)
            {
                let views: Vec<AnyView<'_>> = held.iter().map(Held::view).collect();
                let run = Run::new(&f.program, views, &f.shape);
                return self.finish(top, sink, run, &f.shape, None);
            }
        }
        if !self.is_member(top, true)? {
            return Ok(None);
        }
        let mut g = Group {
            shapes: HashMap::with_capacity(16),
            members: HashSet::with_capacity(16),
            frontier: HashMap::with_capacity(8),
        };
        let shape = self.shape_in(top, &mut g, true)?;
        let n: usize = shape.iter().product();
        // An operation on a smaller (broadcast) operand is computed once on
        // its own, not once per output element.
        let smaller: Vec<u128> = g
            .members
            .iter()
            .filter(|sid| g.shapes[*sid].iter().product::<usize>() != n)
            .copied()
            .collect();
        if !smaller.is_empty() {
            self.demote(top, &smaller, &mut g)?;
        }
        let mut tokens = Vec::new();
        let mut local = HashMap::new();
        let mut inputs = Vec::new();
        let mut path = Vec::new();
        walk(top, &g, &mut local, &mut tokens, &mut inputs, &mut path);
        let (program, compiled) = plan::get_or_compile(&tokens);
        let views: Vec<AnyView<'_>> = inputs
            .iter()
            .map(|(sid, _)| g.frontier[sid].view())
            .collect();
        let run = Run::new(&program, views, &shape);
        if pristine {
            let _ = top.fused.set(Arc::new(Fused {
                program: Arc::clone(&program),
                inputs: inputs
                    .into_iter()
                    .map(|(sid, path)| (path, g.frontier[&sid].shape().to_vec()))
                    .collect(),
                shape: shape.clone(),
            }));
        }
        self.finish(top, sink, run, &shape, Some((&g, compiled)))
    }

    /// Runs a fused group's program: elementwise, or into its trailing
    /// reduction `sink`. `analysed`: the group and its plan, for the trace.
    fn finish(
        &mut self,
        top: &Node<'_>,
        sink: Option<(Sink, &Node<'_>)>,
        run: Run<'_, '_>,
        shape: &[usize],
        analysed: Option<(&Group<'_>, plan::Compiled)>,
    ) -> Result<Option<AnyArray>> {
        let n: usize = shape.iter().product();
        let trace = |me: &mut Self, reduction: Option<&Node<'_>>| {
            if let Some((g, compiled)) = analysed {
                me.trace_group(top, reduction, g, n, compiled);
            }
        };
        let Some((sink, rnode)) = sink else {
            trace(self, None);
            return Ok(Some(run.elementwise()));
        };
        let Kind::Call { name, params } = &rnode.kind else {
            unreachable!("sinks are operations")
        };
        let prepared = self.registry.prepare(name, 1, params)?;
        let keepdims = prepared.params.bool("keepdims").unwrap_or(false);
        let axis = prepared.params.int("axis");
        let nd = shape.len();
        let last = match axis {
            None => Some(None),
            Some(a) if nd > 0 && (a == nd as i64 - 1 || a == -1) => Some(Some(nd - 1)),
            _ => None,
        };
        let (Some(axis), true) = (last, n > 0) else {
            // Another axis, or an empty operand: the kernel on the fused operand.
            trace(self, None);
            let operand = run.elementwise();
            self.note(|| format!("kernel {name} (not fused): computed"));
            return Ok(Some(prepared.compute(&[operand.view()])?));
        };
        trace(self, Some(rnode));
        let (lanes, m, out_shape) = match axis {
            None => (1, n, if keepdims { vec![1; nd] } else { Vec::new() }),
            Some(a) => {
                let mut out = shape[..a].to_vec();
                if keepdims {
                    out.push(1);
                }
                (n / shape[a], shape[a], out)
            }
        };
        let flat = run.reduce(sink, lanes, m);
        Ok(Some(reshape(flat, &out_shape)))
    }

    /// Moves the members in `sids` (and nothing else) to the frontier,
    /// computing each on its own.
    fn demote<'a>(&mut self, top: &Node<'a>, sids: &[u128], g: &mut Group<'a>) -> Result<()> {
        let mut stack = vec![top];
        let mut seen = HashSet::new();
        while let Some(node) = stack.pop() {
            if !seen.insert(node.sid) || !g.members.contains(&node.sid) {
                continue;
            }
            if sids.contains(&node.sid) {
                g.members.remove(&node.sid);
                let held = self.value(node)?;
                g.frontier.insert(node.sid, held);
                continue;
            }
            stack.extend(node.children.iter().map(|c| &**c));
        }
        Ok(())
    }

    fn trace_group(
        &mut self,
        top: &Node<'_>,
        sink: Option<&Node<'_>>,
        g: &Group<'_>,
        n: usize,
        compiled: plan::Compiled,
    ) {
        if let Some(t) = self.trace.as_deref_mut() {
            let what = match sink {
                Some(s) => describe(s),
                None => describe(top),
            };
            let plan = if compiled.hit {
                "plan cache hit".to_owned()
            } else {
                format!(
                    "plan compiled in {:.1} us",
                    compiled.compile.as_secs_f64() * 1e6
                )
            };
            let sink = if sink.is_some() {
                " + trailing reduction"
            } else {
                ""
            };
            t.fused(
                format!(
                    "fused {what}: {} elementwise node(s){sink}, {} input(s), {n} elements; {plan}",
                    g.members.len(),
                    g.frontier.len(),
                ),
                compiled.hit,
                compiled.compile,
            );
        }
    }
}

/// Post-order walk of a group into plan tokens; `inputs` gets the
/// frontier's structural ids, and their paths from the top (child indices),
/// in input order.
fn walk(
    node: &Node<'_>,
    g: &Group<'_>,
    local: &mut HashMap<u128, usize>,
    tokens: &mut Vec<Token>,
    inputs: &mut Vec<(u128, Vec<u32>)>,
    path: &mut Vec<u32>,
) -> usize {
    if let Some(&i) = local.get(&node.sid) {
        return i;
    }
    let token = if g.members.contains(&node.sid) {
        let mut args = Vec::with_capacity(node.children.len());
        for (i, c) in node.children.iter().enumerate() {
            path.push(i as u32);
            args.push(walk(c, g, local, tokens, inputs, path));
            path.pop();
        }
        let Kind::Call { name, .. } = &node.kind else {
            unreachable!("members are operations")
        };
        Token::Op(FOp::of_kernel(name).expect("members are fusable"), args)
    } else {
        inputs.push((node.sid, path.clone()));
        Token::Input(g.frontier[&node.sid].view().dtype())
    };
    tokens.push(token);
    local.insert(node.sid, tokens.len() - 1);
    tokens.len() - 1
}

/// The node at `path` (child indices) under `node`.
fn at<'n, 'a>(mut node: &'n Node<'a>, path: &[u32]) -> &'n Node<'a> {
    for &i in path {
        node = &node.children[i as usize];
    }
    node
}

/// A fused group's analysis for evaluations without a cache: its program,
/// its inputs (where they are, and the shape each had), and its shape.
pub(crate) struct Fused {
    program: Arc<Program>,
    inputs: Vec<(Vec<u32>, Vec<usize>)>,
    shape: Vec<usize>,
}

fn reshape(flat: AnyArray, shape: &[usize]) -> AnyArray {
    crate::dispatch_array!(&flat, a => AnyArray::new(
        a.clone()
            .into_shape_with_order(ndarray::IxDyn(shape))
            .expect("one result per lane")
    ))
}

fn check_dtype(node: &Node<'_>, found: DType) -> Result<()> {
    if found == node.dtype {
        return Ok(());
    }
    Err(Error::Expr(format!(
        "{} gave {found}, the expression declared {}",
        describe(node),
        node.dtype
    )))
}

/// The chain of registry calls: every node computed by its kernel, every
/// intermediate materialized.
pub(crate) fn unfused(registry: &Registry, node: &Node<'_>) -> Result<AnyArray> {
    Ok(match unfused_value(registry, node)? {
        Held::View(v) => v.to_shared(),
        Held::Array(a) => a,
    })
}

fn unfused_value<'a>(registry: &Registry, node: &Node<'a>) -> Result<Held<'a>> {
    match &node.kind {
        Kind::View(v) => Ok(Held::View(v.clone())),
        Kind::Keyed(k) => Ok(Held::Array(k.array().clone())),
        Kind::Scalar(v, _) => Ok(Held::Array(scalar_array(*v))),
        Kind::Invalid(reason) => Err(Error::Expr(reason.clone())),
        Kind::Call { name, params } => {
            let args = node
                .children
                .iter()
                .map(|c| unfused_value(registry, c))
                .collect::<Result<Vec<_>>>()?;
            let views: Vec<AnyView<'_>> = args.iter().map(Held::view).collect();
            let out = registry.call(name, &views, params)?;
            check_dtype(node, out.dtype())?;
            Ok(Held::Array(out))
        }
    }
}
