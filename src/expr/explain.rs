//! What an evaluation did, for a person: [`Explain`].

use std::fmt;
use std::time::Duration;

use super::{Kind, Node};
use crate::key::Fingerprint;
use crate::Source;

/// The plan cache's statistics: see [`plan_cache_info`](super::plan_cache_info).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PlanCacheInfo {
    /// Fused groups whose compiled plan was reused.
    pub hits: u64,
    /// Plans compiled.
    pub misses: u64,
    /// Plans kept.
    pub entries: usize,
    /// Total time spent compiling plans.
    pub compile_time: Duration,
}

/// A report of one evaluation: [`Expr::explain`](super::Expr::explain).
///
/// Its `Display` is the readable plan: the root's key and where the result
/// came from, then each step in the order it ran (lookups with hit or miss
/// and where, fused groups with their nodes, plan-cache hit or compile
/// time, kernels run unfused), then the bytes hashed.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Explain {
    /// The expression, written out.
    pub expression: String,
    /// The root's key.
    pub key: Fingerprint,
    /// Where the root's result came from.
    pub source: Source,
    /// The steps, in order, one line each.
    pub steps: Vec<String>,
    /// Fused groups run.
    pub fused_groups: usize,
    /// Fused groups whose plan came from the plan cache.
    pub plan_hits: usize,
    /// Time spent compiling plans.
    pub compile_time: Duration,
    /// Input bytes hashed to make keys.
    pub bytes_hashed: u64,
}

impl fmt::Display for Explain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "expression {}", self.expression)?;
        writeln!(f, "  key {}: {}", self.key, self.source)?;
        for s in &self.steps {
            writeln!(f, "  {s}")?;
        }
        write!(
            f,
            "  {} fused group(s), {} plan-cache hit(s), {:.1} us compiling; {} input bytes hashed",
            self.fused_groups,
            self.plan_hits,
            self.compile_time.as_secs_f64() * 1e6,
            self.bytes_hashed
        )
    }
}

/// What an evaluation records as it goes.
#[derive(Debug, Default)]
pub(crate) struct Trace {
    steps: Vec<String>,
    fused_groups: usize,
    plan_hits: usize,
    compile: Duration,
    pub(crate) bytes_hashed: u64,
}

impl Trace {
    pub(crate) fn step(&mut self, line: String) {
        self.steps.push(line);
    }

    pub(crate) fn fused(&mut self, line: String, plan_hit: bool, compile: Duration) {
        self.fused_groups += 1;
        self.plan_hits += usize::from(plan_hit);
        self.compile += compile;
        self.steps.push(line);
    }

    pub(crate) fn finish(self, root: &Node<'_>, key: Fingerprint, source: Source) -> Explain {
        Explain {
            expression: describe(root),
            key,
            source,
            steps: self.steps,
            fused_groups: self.fused_groups,
            plan_hits: self.plan_hits,
            compile_time: self.compile,
            bytes_hashed: self.bytes_hashed,
        }
    }
}

/// A node written out: `multiply(2, square(sin(f64[1000])))`.
pub(crate) fn describe(node: &Node<'_>) -> String {
    let mut s = String::new();
    write_node(node, &mut s);
    s
}

fn write_node(node: &Node<'_>, out: &mut String) {
    use std::fmt::Write;
    match &node.kind {
        Kind::View(v) => {
            let _ = write!(out, "{}{:?}", short(node.dtype), v.shape());
        }
        Kind::Keyed(k) => {
            let _ = write!(
                out,
                "{}{:?}@{}",
                short(node.dtype),
                k.shape(),
                &k.fingerprint().to_string()[..8]
            );
        }
        Kind::Scalar(v, _) => {
            let _ = match v {
                crate::kernel::elementwise::fused::Scalar::F32(x) => write!(out, "{x}"),
                crate::kernel::elementwise::fused::Scalar::F64(x) => write!(out, "{x}"),
                crate::kernel::elementwise::fused::Scalar::I32(x) => write!(out, "{x}"),
                crate::kernel::elementwise::fused::Scalar::I64(x) => write!(out, "{x}"),
            };
        }
        Kind::Call { name, params } => {
            out.push_str(name);
            out.push('(');
            for (i, c) in node.children.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_node(c, out);
            }
            let p = params.to_string();
            if !p.is_empty() {
                let _ = write!(out, "; {p}");
            }
            out.push(')');
            if node.checkpoint {
                out.push('!');
            }
        }
        Kind::Invalid(reason) => {
            let _ = write!(out, "<invalid: {reason}>");
        }
    }
}

fn short(d: crate::DType) -> &'static str {
    match d {
        crate::DType::F32 => "f32",
        crate::DType::F64 => "f64",
        crate::DType::I32 => "i32",
        crate::DType::I64 => "i64",
    }
}
