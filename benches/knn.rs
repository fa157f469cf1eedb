//! kNN benchmark: the exact kNN search screened by AMX bfloat16 tiles against the same search
//! screened by sgemm, in the same run, on N = 200,000 x 512 f32 rows (1,000 class means on a
//! sphere of radius 2 plus Gaussian noise of norm about 6.8, normalised: classes that kNN
//! mostly recovers, each a dense cap of similar rows), 2,000 leave-one-out queries,
//! k = 20. Both screens must return the same accuracy (the same neighbours: exact similarities
//! either way); each runs in a child process (the screen is chosen once per process, by
//! `EMBGEOM_KNN_SCREEN`). On a CPU without AMX only the sgemm screen runs.
//!
//! Run: `cargo bench --bench knn`.

use embgeom_geometry::*;
use ndarray::Axis;

mod common;
use common::{child_with_env, fastest_seconds, gaussian};

const N: usize = 200_000;
const D: usize = 512;
const C: usize = 1_000;
const QUERIES: usize = 2_000;

/// Time the kNN accuracy with this process's screen (fastest of 3); print seconds, accuracy.
fn run() {
    let mut means = gaussian(C, D, 1);
    for mut row in means.axis_iter_mut(Axis(0)) {
        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        row.mapv_inplace(|v| 2.0 * v / norm);
    }
    let mut x = gaussian(N, D, 2) * 0.3;
    let labels: Vec<u32> = (0..N).map(|i| ((i * 7919) % C) as u32).collect();
    for (mut row, &y) in x.axis_iter_mut(Axis(0)).zip(&labels) {
        row += &means.row(y as usize);
    }
    let unit = normalize_rows(x.view()).expect("non-zero rows");
    drop(x);
    let options = KnnOptions {
        max_queries: QUERIES,
        ..KnnOptions::default()
    };
    let (seconds, accuracy) = fastest_seconds(3, || {
        knn_accuracy(unit.view(), &labels, C, &KnnSplit::LeaveOneOut, &options)
            .expect("kNN accuracy")
    });
    println!("{seconds} {}", accuracy.value);
}

fn main() {
    if std::env::args().any(|a| a == "--run") {
        return run();
    }
    let flops = 2.0 * (QUERIES * N * D) as f64;
    println!(
        "kNN, N = {N} x {D} f32, C = {C}, {QUERIES} leave-one-out queries, k = 20 (fastest of 3)"
    );
    println!(
        "{:<22} {:>9} {:>12} {:>14} {:>10}",
        "screen", "seconds", "GFLOP/s", "vs sgemm screen", "accuracy"
    );
    let gemm = child_with_env(&["--run"], &[("EMBGEOM_KNN_SCREEN", "gemm")]);
    let mut rows = vec![("sgemm", gemm.clone())];
    match knn_screen::<f32>() {
        KnnScreen::Amx => rows.push(("AMX bfloat16 tiles", child_with_env(&["--run"], &[]))),
        KnnScreen::Gemm => println!("(no AMX tiles on this CPU: the sgemm screen only)"),
    }
    for (name, result) in &rows {
        let [seconds, accuracy] = result[..] else {
            panic!("{name}: the child printed {result:?}");
        };
        println!(
            "{name:<22} {seconds:>9.3} {:>12.0} {:>14.2} {accuracy:>10.4}",
            flops / seconds / 1e9,
            gemm[0] / seconds,
        );
        assert_eq!(
            accuracy, gemm[1],
            "{name}: another accuracy than the sgemm screen's"
        );
    }
}
