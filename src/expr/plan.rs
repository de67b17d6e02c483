//! The plan cache: compiled fused programs by structure and dtypes.
//!
//! A fused group is first walked into [`Token`]s: each frontier input by
//! dtype alone (arrays and scalars alike: a scalar's value is bound at run
//! time, so `x * 2` and `x * 3` share a plan; shapes are bound at run time
//! too), each operation by builtin and operand numbers. The tokens' hash is
//! the plan key; an equal key is confirmed by comparing the tokens (as
//! Polars does for its CSE), then the compiled [`Program`] (dtype
//! resolution, casts, registers) is reused. The cache is process-wide,
//! like numexpr's and JAX's, and keeps the 256 most recently used plans.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::explain::PlanCacheInfo;
use crate::element::DType;
use crate::hash::Xxh3;
use crate::kernel::elementwise::fused::{FOp, Program};

/// Plans kept.
const CAPACITY: usize = 256;

/// One step of a fused group, in post-order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Token {
    /// The next frontier input, of this dtype.
    Input(DType),
    /// A builtin on earlier tokens (by index).
    Op(FOp, Vec<usize>),
}

struct Plans {
    map: lru::LruCache<u128, (Vec<Token>, Arc<Program>)>,
    hits: u64,
    misses: u64,
    compile: Duration,
}

fn plans() -> &'static Mutex<Plans> {
    static PLANS: OnceLock<Mutex<Plans>> = OnceLock::new();
    PLANS.get_or_init(|| {
        Mutex::new(Plans {
            map: lru::LruCache::new(NonZeroUsize::new(CAPACITY).expect("not zero")),
            hits: 0,
            misses: 0,
            compile: Duration::ZERO,
        })
    })
}

fn key(tokens: &[Token]) -> u128 {
    let mut h = Xxh3::new();
    for t in tokens {
        match t {
            Token::Input(d) => {
                h.update(b"i");
                h.update(d.descr().as_bytes());
            }
            Token::Op(op, args) => {
                h.update(b"o");
                // The discriminant: the key lives in this process only.
                h.update(&[*op as u8]);
                h.update(&(args.len() as u64).to_le_bytes());
                for a in args {
                    h.update(&(*a as u64).to_le_bytes());
                }
            }
        }
    }
    h.digest128()
}

/// What [`get_or_compile`] did.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Compiled {
    /// Whether the plan was in the cache.
    pub(crate) hit: bool,
    /// The time spent compiling it (zero on a hit).
    pub(crate) compile: Duration,
}

/// The program of `tokens`, compiled once.
pub(crate) fn get_or_compile(tokens: &[Token]) -> (Arc<Program>, Compiled) {
    let k = key(tokens);
    {
        let mut p = plans().lock().unwrap_or_else(|e| e.into_inner());
        if let Some((t, prog)) = p.map.get(&k) {
            if t == tokens {
                let prog = Arc::clone(prog);
                p.hits += 1;
                return (
                    prog,
                    Compiled {
                        hit: true,
                        compile: Duration::ZERO,
                    },
                );
            }
        }
    }
    let start = Instant::now();
    let prog = Arc::new(compile(tokens));
    let took = start.elapsed();
    let mut p = plans().lock().unwrap_or_else(|e| e.into_inner());
    p.misses += 1;
    p.compile += took;
    p.map.put(k, (tokens.to_vec(), Arc::clone(&prog)));
    (
        prog,
        Compiled {
            hit: false,
            compile: took,
        },
    )
}

fn compile(tokens: &[Token]) -> Program {
    let mut prog = Program::new();
    let mut reg = Vec::with_capacity(tokens.len());
    for t in tokens {
        let r = match t {
            Token::Input(d) => prog.input(*d),
            Token::Op(op, args) => {
                let args: Vec<usize> = args.iter().map(|&a| reg[a]).collect();
                prog.op(*op, &args)
                    .expect("fused groups hold only operations fused for their dtypes")
            }
        };
        reg.push(r);
    }
    prog.pair();
    prog
}

/// Empties the plan cache (process-wide): the next evaluation of every
/// expression compiles its plan again. Its statistics (hits, misses,
/// compile time) are kept. For measuring compile times, or to free the
/// plans of a phase of a program that is over; evaluations running
/// meanwhile keep the plans they hold.
///
/// ```
/// use ndarray::array;
/// use ndcache::expr::{plan_cache_clear, plan_cache_info};
/// use ndcache::{ArrayCache, Expr};
///
/// let x = array![1.0_f64, 2.0, 3.0];
/// let e = || (Expr::from(&x) * 2.0 + 1.0).exp();
/// e().explain(&ArrayCache::new())?;
/// let before = plan_cache_info();
/// plan_cache_clear();
/// assert_eq!(plan_cache_info().entries, 0);
/// // A new cache, so that the result is computed, not found.
/// let again = e().explain(&ArrayCache::new())?;
/// assert_eq!(again.plan_hits, 0);
/// assert_eq!(plan_cache_info().misses, before.misses + 1, "compiled again");
/// # Ok::<(), ndcache::Error>(())
/// ```
pub fn plan_cache_clear() {
    let mut p = plans().lock().unwrap_or_else(|e| e.into_inner());
    p.map.clear();
}

/// The plan cache's statistics (process-wide).
pub fn plan_cache_info() -> PlanCacheInfo {
    let p = plans().lock().unwrap_or_else(|e| e.into_inner());
    PlanCacheInfo {
        hits: p.hits,
        misses: p.misses,
        entries: p.map.len(),
        compile_time: p.compile,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cleared_cache_compiles_again_and_keeps_its_statistics() {
        // A structure no other test uses (the cache is process-wide).
        let tokens = vec![
            Token::Input(DType::F32),
            Token::Input(DType::I64),
            Token::Op(FOp::Maximum, vec![0, 1]),
            Token::Op(FOp::Tanh, vec![2]),
            Token::Op(FOp::Expm1, vec![3]),
        ];
        let (first, _) = get_or_compile(&tokens);
        let (cached, c) = get_or_compile(&tokens);
        assert!(c.hit && Arc::ptr_eq(&first, &cached));
        let before = plan_cache_info();
        plan_cache_clear();
        let (again, c) = get_or_compile(&tokens);
        assert!(!c.hit && !Arc::ptr_eq(&first, &again));
        assert_eq!(*again, *first, "the same program");
        let after = plan_cache_info();
        assert!(after.misses > before.misses && after.hits >= before.hits);
    }
}
