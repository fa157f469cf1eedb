//! Class-collapse + spectrum benchmark (issue 3): embgeom against a straightforward NumPy
//! implementation of the same formulas (`benches/collapse_reference.py`) on the same data in
//! the same run, at N = 60,000, D = 512, C = 10 and N = 200,000, D = 256, C = 1,000; peak
//! memory of embgeom's run from a child process.
//!
//! Run: `cargo bench --bench collapse` (Python 3 with NumPy for the reference column).

use embgeom_geometry::*;
use ndarray::{Array1, Array2, Axis};
use std::time::Instant;

mod common;
use common::{child, gaussian, peak_rss_mib, python, write_npy};

/// Class means from a Gaussian, rows = mean + 0.8 * noise, labels `i mod C`.
fn data(n: usize, d: usize, c: usize) -> (Array2<f32>, Vec<u32>) {
    let means = gaussian(c, d, 1);
    let mut x = gaussian(n, d, 2) * 0.8;
    let labels: Vec<u32> = (0..n).map(|i| (i % c) as u32).collect();
    for (mut row, &y) in x.axis_iter_mut(Axis(0)).zip(&labels) {
        row += &means.row(y as usize);
    }
    (x, labels)
}

/// Every class-collapse and spectrum metric (no kNN), as in the reference script; returns the
/// values compared with it.
fn metrics(x: &Array2<f32>, labels: &[u32], c: usize) -> Vec<f64> {
    let classes =
        Classes::new(labels.to_vec(), (0..c).map(|k| k.to_string()).collect()).expect("classes");
    let unit = normalize_rows(x.view()).expect("non-zero rows");
    let stats = class_stats(x.view(), &classes).expect("stats");
    let collapsed = collapse(x.view(), &classes, &stats, None).expect("collapse");
    let angles = simplex_angles(class_means(unit.view(), &classes).view()).expect("angles");
    vertex_distances(stats.centred_means().view()).expect("vertices");
    let sp = spectrum(unit.view(), x.view()).expect("spectrum");
    let mean_rank = stats.effective_ranks.iter().flatten().sum::<f64>() / c as f64;
    vec![
        collapsed.nc1.unwrap_or(f64::NAN),
        collapsed.etf_distance.unwrap_or(f64::NAN),
        collapsed.cdnv.map_or(f64::NAN, |c| c.mean),
        collapsed.ncc_accuracy.unwrap_or(f64::NAN),
        sp.effective_rank,
        sp.rankme,
        sp.alpha_req.map_or(f64::NAN, |a| a.alpha),
        angles.mean_abs_deviation_degrees,
        sp.normalized_std,
        mean_rank,
    ]
}

const KEYS: [&str; 10] = [
    "nc1",
    "etf_distance",
    "cdnv",
    "ncc_accuracy",
    "effective_rank",
    "rankme",
    "alpha_req",
    "graf",
    "normalized_std",
    "mean_class_rank",
];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let dims: Vec<usize> = args[i + 1..i + 4]
            .iter()
            .map(|a| a.parse().expect("N D C"))
            .collect();
        let (x, labels) = data(dims[0], dims[1], dims[2]);
        let start = Instant::now();
        let values = metrics(&x, &labels, dims[2]);
        let seconds = start.elapsed().as_secs_f64();
        let values: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        println!("{seconds} {} {}", peak_rss_mib(), values.join(" "));
        return;
    }
    println!("| N, D, C | embgeom s | NumPy s | NumPy / embgeom | embgeom peak RSS (input) | largest relative difference |");
    println!("|---|---|---|---|---|---|");
    for (n, d, c) in [(60_000, 512, 10), (200_000, 256, 1_000)] {
        let ours = child(&["--child", &n.to_string(), &d.to_string(), &c.to_string()]);
        let [seconds, rss, values @ ..] = ours.as_slice() else {
            println!("| {n}, {d}, {c} | child run failed | | | | |");
            continue;
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let (x, labels) = data(n, d, c);
        let (xp, yp) = (dir.path().join("x.npy"), dir.path().join("y.npy"));
        write_npy(&xp, &x);
        let y = Array1::from_iter(labels.iter().map(|&l| l as f32)).insert_axis(Axis(1));
        write_npy(&yp, &y.to_owned());
        drop(x);
        let input = (n * d * 4) as f64 / 1048576.0;
        match python(
            "collapse_reference.py",
            &[xp.to_str().unwrap(), yp.to_str().unwrap()],
        ) {
            Some(doc) => {
                let reference = doc["seconds"].as_f64().unwrap_or(f64::NAN);
                let worst = KEYS
                    .iter()
                    .zip(values)
                    .map(|(k, v)| {
                        let r = doc[*k].as_f64().unwrap_or(f64::NAN);
                        (k, ((v - r) / r.abs().max(1e-12)).abs())
                    })
                    .fold(
                        ("", 0.0f64),
                        |best, (k, e)| if e > best.1 { (k, e) } else { best },
                    );
                println!(
                    "| {n}, {d}, {c} | {seconds:.2} | {reference:.2} | {:.1} | {rss:.0} MiB ({input:.0} MiB) | {:.1e} ({}) |",
                    reference / seconds, worst.1, worst.0
                );
            }
            None => println!(
                "| {n}, {d}, {c} | {seconds:.2} | skipped | | {rss:.0} MiB ({input:.0} MiB) | |"
            ),
        }
    }
}
