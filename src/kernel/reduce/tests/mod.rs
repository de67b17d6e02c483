//! Tests of the reductions, scans and sorts: against values printed by
//! numpy 2.4 (`numpy_values`), against naive sequential references on random
//! inputs of every layout (`oracle`), and 1 thread against 4 (`threads`).

mod levels;
mod numpy_values;
mod oracle;
mod threads;

use ndarray::{ArrayD, ArrayViewD, IxDyn};

use super::register;
use crate::element::Element;
use crate::error::Result;
use crate::kernel::{Params, Registry};
use crate::value::{AnyArray, AnyView};

fn registry() -> Registry {
    let mut r = Registry::new();
    register(&mut r);
    r
}

/// Runs kernel `name` on `x` (any dimension) with `params`.
fn call<'a>(name: &str, x: impl Into<AnyView<'a>>, params: Params) -> Result<AnyArray> {
    registry().call(name, &[x.into()], &params)
}

/// The elements of `a` in logical order, as `T` (panics on another dtype).
fn values<T: Element>(a: &AnyArray) -> Vec<T> {
    a.typed::<T>().unwrap().iter().copied().collect()
}

/// The values numpy's tests use: `gen(n)` in `/tmp/np/lit.py` terms,
/// `((i * 2654435761) % 2**32) / 2**32 * [1e-3, 1.0, 1e3, -7.5, 0.1][i % 5]`,
/// computed with the same IEEE operations numpy performs.
fn gen(n: usize) -> Vec<f64> {
    const SCALE: [f64; 5] = [1e-3, 1.0, 1e3, -7.5, 0.1];
    (0..n as u64)
        .map(|i| {
            let u = (i.wrapping_mul(2654435761) % (1 << 32)) as f64 / 4294967296.0;
            u * SCALE[i as usize % 5]
        })
        .collect()
}

/// `geni(n)`: `((i * 2654435761) % 2**32) - 2**31` as `int32`.
fn geni(n: usize) -> Vec<i32> {
    (0..n as u64)
        .map(|i| ((i.wrapping_mul(2654435761) % (1 << 32)) as i64 - (1 << 31)) as i32)
        .collect()
}

fn arr<T: Element>(shape: &[usize], data: Vec<T>) -> ArrayD<T> {
    ArrayD::from_shape_vec(IxDyn(shape), data).unwrap()
}

fn view<'a, T: Element>(a: &'a ArrayD<T>) -> ArrayViewD<'a, T> {
    a.view()
}
