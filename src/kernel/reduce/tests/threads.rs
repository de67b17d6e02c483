//! 1 thread against 4: every kernel gives the same bits on arrays large
//! enough to be split (long lanes, many lanes, non-last axes).

use ndarray::{ArrayViewD, Axis};

use super::oracle::{check_all, cumsum_f64, cumsum_int, Gen, Input, Layout};
use super::{call, values};
use crate::kernel::reduce::cumsum::SCAN_BLOCK;
use crate::kernel::Params;
use crate::value::{AnyArray, AnyView};

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
}

/// Every kernel with every axis of `v`, as results.
fn run_all(v: &ArrayViewD<'_, impl crate::Element>) -> Vec<(String, AnyArray)> {
    let mut out = Vec::new();
    let mut params = vec![("".to_owned(), Params::new())];
    for a in 0..v.ndim() as isize {
        params.push((format!(" axis {a}"), Params::new().axis(a)));
    }
    for name in [
        "sum", "prod", "mean", "min", "max", "var", "std", "cumsum", "sort",
    ] {
        for (label, p) in &params {
            let p = match name {
                "var" | "std" => p.clone().ddof(1),
                "sort" if label.is_empty() => p.clone().set("flatten", true),
                _ => p.clone(),
            };
            let r = call(name, AnyView::from(v.clone()), p).unwrap();
            out.push((format!("{name}{label}"), r));
        }
    }
    out
}

fn same_on_1_and_4_threads<T: Gen>(shape: &[usize], specials: bool) {
    let input = Input::<T>::new(shape, 42, specials, Layout::C);
    let one = pool(1).install(|| run_all(&input.view()));
    let four = pool(4).install(|| run_all(&input.view()));
    for ((name, a), (_, b)) in one.iter().zip(&four) {
        assert!(a.bitwise_eq(b), "{name} of {shape:?} {}", T::DTYPE);
    }
}

#[test]
fn long_lanes() {
    same_on_1_and_4_threads::<f64>(&[300_007], false);
    same_on_1_and_4_threads::<f64>(&[300_007], true);
    same_on_1_and_4_threads::<f32>(&[300_007], false);
    same_on_1_and_4_threads::<i32>(&[300_007], true);
    same_on_1_and_4_threads::<i64>(&[300_007], true);
}

#[test]
fn many_lanes_and_non_last_axes() {
    same_on_1_and_4_threads::<f64>(&[520, 700], false);
    same_on_1_and_4_threads::<f32>(&[520, 700], true);
    same_on_1_and_4_threads::<i32>(&[3, 300, 301], true);
    same_on_1_and_4_threads::<i64>(&[70_001, 3], false);
    same_on_1_and_4_threads::<f64>(&[2, 70_001, 2], false);
}

/// numpy's sequential running sum.
fn sequential(x: &[f64]) -> Vec<u64> {
    let mut s = 0.0;
    x.iter()
        .enumerate()
        .map(|(i, v)| {
            s = if i == 0 { *v } else { s + v };
            s.to_bits()
        })
        .collect()
}

#[test]
fn long_cumsum_follows_the_block_rule() {
    let n = 3 * SCAN_BLOCK + 5;
    let x = Input::<f64>::new(&[n], 3, false, Layout::C);
    for threads in [1, 4] {
        let c = pool(threads)
            .install(|| call("cumsum", AnyView::from(x.view()), Params::new()))
            .unwrap();
        let got: Vec<u64> = values::<f64>(&c).iter().map(|v| v.to_bits()).collect();
        let xs: Vec<f64> = x.view().iter().copied().collect();
        assert_eq!(got, cumsum_f64(&xs));
        // The first block is numpy's sequential sum; the rest differs.
        let seq = sequential(&xs);
        assert_eq!(got[..SCAN_BLOCK], seq[..SCAN_BLOCK]);
        assert_ne!(got, seq);
    }
    // The same lanes down a non-last axis (scanned row by row).
    let x = Input::<f64>::new(&[2 * SCAN_BLOCK + 3, 2], 4, false, Layout::C);
    let c = pool(4)
        .install(|| call("cumsum", AnyView::from(x.view()), Params::new().axis(0)))
        .unwrap();
    let c = c.typed::<f64>().unwrap();
    for (j, lane) in x.view().lanes(Axis(0)).into_iter().enumerate() {
        let got: Vec<u64> = (0..lane.len()).map(|i| c[[i, j]].to_bits()).collect();
        assert_eq!(got, cumsum_f64(&lane.to_vec()));
    }
}

#[test]
fn large_inputs_match_references_on_4_threads() {
    pool(4).install(|| {
        check_all(
            &Input::<f64>::new(&[100_003], 5, true, Layout::Strided),
            cumsum_f64,
        );
        check_all(
            &Input::<i32>::new(&[60_000], 6, true, Layout::F),
            cumsum_int::<i32>,
        );
    });
}
