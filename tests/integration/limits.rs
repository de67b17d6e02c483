//! Inputs that ask for the impossible get errors, never a panic or an abort.

use ndarray::{ArrayD, IxDyn};
use ndcache::{AnyView, ArrayCache, AsArg, Error, Params, Registry};

#[test]
fn thousands_of_unit_axes_do_not_overflow_the_stack() {
    let mut shape = vec![1usize; 20_000];
    shape.extend([3, 4]);
    let deep = ArrayD::from_shape_fn(IxDyn(&shape), |i| i[20_000] as f64 + i[20_001] as f64);
    // A strided view (every other element of a bigger array) takes the
    // slow path of the fingerprint, which walks the axes.
    let mut big_shape = shape.clone();
    big_shape[20_001] = 8;
    let big = ArrayD::from_shape_fn(IxDyn(&big_shape), |i| {
        i[20_000] as f64 + (i[20_001] / 2) as f64
    });
    let view = big.slice_each_axis(|ax| {
        if ax.axis.index() == 20_001 {
            ndarray::Slice::new(0, None, 2)
        } else {
            ndarray::Slice::new(0, None, 1)
        }
    });
    assert_eq!(ndcache::fingerprint(&deep), ndcache::fingerprint(&view));
    // Kernels refuse more than numpy's 64 dimensions, with a clear error.
    let e = Registry::with_builtins()
        .call("exp", &[AnyView::from(deep.view())], &Params::new())
        .unwrap_err();
    assert!(e.to_string().contains("at most 64 dimensions"), "{e}");
}

#[test]
fn an_empty_array_with_huge_dimensions_is_an_error() {
    let reg = Registry::with_builtins();
    for shape in [[0usize, 1 << 30, 1 << 20], [0, 1 << 24, 1 << 16]] {
        let x = ArrayD::<f64>::zeros(IxDyn(&shape));
        let e = reg
            .call("sum", &[AnyView::from(x.view())], &Params::new().axis(0))
            .unwrap_err();
        assert!(matches!(e, Error::Shape { .. }), "{shape:?}: {e}");
        assert!(
            e.to_string().contains("too big") || e.to_string().contains("cannot allocate"),
            "{e}"
        );
    }
    // numpy accepts these: the reductions over an existing axis are empty.
    let x = ArrayD::<f64>::zeros(IxDyn(&[0, 1 << 24, 1 << 16]));
    let s = reg
        .call("sum", &[AnyView::from(x.view())], &Params::new().axis(1))
        .unwrap();
    assert_eq!(s.shape(), &[0, 1 << 16]);
}

#[test]
fn a_broadcast_too_big_to_allocate_is_an_error() {
    let cache = ArrayCache::new();
    let col = ndarray::Array2::<f64>::zeros((1 << 20, 1));
    let row = ndarray::Array2::<f64>::zeros((1, 1 << 20));
    // (2^20, 2^20) f64 is 8 TiB.
    let e = cache
        .call("add", &[col.arg(), row.arg()], &Params::new())
        .unwrap_err();
    assert!(e.to_string().contains("cannot allocate"), "{e}");
}
