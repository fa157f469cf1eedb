//! `embgeom analyze --modalities A B [--pair-map MAP]`: each modality analysed, the gap and
//! exact retrieval against every pair written out, many-to-one pairs, and bad inputs named.

#[path = "common/cli.rs"]
mod cli;
#[path = "common/mutation.rs"]
mod mutation;

use cli::{fails, json, succeeds};
use embgeom_io::npy_bytes;
use std::path::Path;

/// Deterministic rows in [-0.5, 0.5).
fn rows(n: usize, d: usize, seed: u64) -> Vec<f64> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n * d)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        })
        .collect()
}

fn write_rows(path: &Path, values: &[f64], d: usize) {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, npy_bytes("<f8", &[values.len() / d, d], &bytes)).unwrap();
}

fn write_ints(path: &Path, values: &[i64]) {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, npy_bytes("<i8", &[values.len()], &bytes)).unwrap();
}

fn unit(values: &[f64], d: usize) -> Vec<Vec<f64>> {
    values
        .chunks(d)
        .map(|r| {
            let n = r.iter().map(|v| v * v).sum::<f64>().sqrt();
            r.iter().map(|v| v / n).collect()
        })
        .collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Recall at 1 written out: the share of queries whose best positive beats every negative.
fn recall_at_1(
    queries: &[Vec<f64>],
    gallery: &[Vec<f64>],
    positives: &dyn Fn(usize) -> Vec<usize>,
) -> f64 {
    let hits = (0..queries.len())
        .filter(|&q| {
            let mine = positives(q);
            let best = mine
                .iter()
                .map(|&j| dot(&queries[q], &gallery[j]))
                .fold(f64::MIN, f64::max);
            (0..gallery.len()).all(|j| mine.contains(&j) || dot(&queries[q], &gallery[j]) <= best)
        })
        .count();
    hits as f64 / queries.len() as f64
}

#[test]
fn two_modalities_equal_their_definitions() {
    let dir = tempfile::tempdir().unwrap();
    let (n, d) = (300, 8);
    let image = rows(n, d, 1);
    let noise = rows(n, d, 2);
    // Text: the image plus noise, shifted along dimension 3 (a gap).
    let text: Vec<f64> = (0..n * d)
        .map(|k| image[k] + 0.6 * noise[k] + if k % d == 3 { 0.8 } else { 0.0 })
        .collect();
    write_rows(&dir.path().join("image.npy"), &image, d);
    write_rows(&dir.path().join("text.npy"), &text, d);
    let path = |name: &str| dir.path().join(name).display().to_string();
    let doc = json(&[
        "analyze",
        "--modalities",
        &path("image.npy"),
        &path("text.npy"),
        "--shifts",
        "0.5,1",
    ]);
    assert_eq!(doc["schema"], "embgeom.modalities/1");
    assert_eq!(doc["modalities"][0]["name"], "image");
    assert_eq!(
        doc["modalities"][1]["analysis"]["schema"],
        "embgeom.analysis/1"
    );
    let (a, b) = (unit(&image, d), unit(&text, d));
    let centroid = |x: &[Vec<f64>]| -> Vec<f64> {
        (0..d)
            .map(|k| x.iter().map(|r| r[k]).sum::<f64>() / x.len() as f64)
            .collect()
    };
    let (ca, cb) = (centroid(&a), centroid(&b));
    let gap = ca
        .iter()
        .zip(&cb)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f64>()
        .sqrt();
    let pair = &doc["pairs"][0];
    let got = pair["gap"]["distance"].as_f64().unwrap();
    assert!((got - gap).abs() < 1e-12, "{got} vs {gap}");
    assert_eq!(pair["gap"]["components"][0]["dimension"], 3);
    assert_eq!(doc["gap_matrix"]["distances"][0][1].as_f64().unwrap(), got);
    let r1 = pair["retrieval"]["image_to_text"]["recall_at_1"]
        .as_f64()
        .unwrap();
    assert_eq!(r1, recall_at_1(&a, &b, &|q| vec![q]));
    let r1 = pair["retrieval"]["text_to_image"]["recall_at_1"]
        .as_f64()
        .unwrap();
    assert_eq!(r1, recall_at_1(&b, &a, &|q| vec![q]));
    // InfoNCE at tau = 0.01 over all pairs, written out.
    let lse = |v: Vec<f64>| {
        let m = v.iter().cloned().fold(f64::MIN, f64::max);
        m + v.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
    };
    let mut info = 0.0;
    for i in 0..n {
        info += lse((0..n).map(|j| dot(&a[i], &b[j]) / 0.01).collect()) - dot(&a[i], &b[i]) / 0.01;
        info += lse((0..n).map(|j| dot(&b[i], &a[j]) / 0.01).collect()) - dot(&a[i], &b[i]) / 0.01;
    }
    let info = info / (2.0 * n as f64);
    let got = pair["retrieval"]["info_nce"].as_f64().unwrap();
    assert!((got - info).abs() < 1e-9 * info, "{got} vs {info}");
    let shift = pair["shift"].as_array().unwrap();
    assert_eq!(shift.len(), 2);
    assert!(shift[1]["distance"].as_f64().unwrap() < shift[0]["distance"].as_f64().unwrap());
    let table = succeeds(&[
        "analyze",
        "--modalities",
        &path("image.npy"),
        &path("text.npy"),
    ]);
    assert!(
        table.contains("== modality image") && table.contains("== gap matrix"),
        "{table}"
    );
    assert!(table.contains("R@1 (image_to_text)"), "{table}");
    // A seeded query subset: 40 queries each way, no objectives, said so.
    let subset = json(&[
        "analyze",
        "--modalities",
        &path("image.npy"),
        &path("text.npy"),
        "--retrieval-queries",
        "40",
        "--shifts",
        "",
    ]);
    let retrieval = &subset["pairs"][0]["retrieval"];
    assert_eq!(retrieval["image_to_text"]["queries"], 40);
    assert_eq!(retrieval["text_to_image"]["queries"], 40);
    assert!(retrieval["info_nce"].is_null() && retrieval["siglip"].is_null());
    let said = subset["pairs"][0]["conventions"]["queries"]
        .as_str()
        .unwrap();
    assert!(said.contains("seeded subset"), "{said}");
    assert!(
        table.contains("cone (mean pairwise cosine) (text)"),
        "{table}"
    );
    // The catalogue's readings in the document equal the fields they read.
    let metrics = &pair["metrics"];
    assert_eq!(
        metrics["recall_at_1.text_to_image"]["value"],
        pair["retrieval"]["text_to_image"]["recall_at_1"]
    );
    assert_eq!(metrics["modality_gap"]["value"], pair["gap"]["distance"]);
    assert_eq!(metrics["cone.text"]["value"], pair["gap"]["cones"][1]);
    assert_eq!(metrics["modality_gap"]["paper"], "Liang et al. 2022");
    assert_eq!(metrics["median_rank.image_to_text"]["direction"], "lower");
}

#[test]
fn several_captions_per_image_through_a_pair_map() {
    let dir = tempfile::tempdir().unwrap();
    let (images, captions, d) = (80, 3, 6);
    let image = rows(images, d, 3);
    let noise = rows(images * captions, d, 4);
    let text: Vec<f64> = (0..images * captions * d)
        .map(|k| image[(k / d / captions) * d + k % d] + 0.4 * noise[k])
        .collect();
    let map: Vec<i64> = (0..images * captions)
        .map(|j| (j / captions) as i64)
        .collect();
    write_rows(&dir.path().join("img.npy"), &image, d);
    write_rows(&dir.path().join("cap.npy"), &text, d);
    write_ints(&dir.path().join("map.npy"), &map);
    let path = |name: &str| dir.path().join(name).display().to_string();
    let args = [
        "analyze",
        "--modalities",
        &path("img.npy"),
        &path("cap.npy"),
        "--modality-names",
        "image",
        "caption",
        "--pair-map",
        &path("map.npy"),
        "--shifts",
        "",
    ];
    let doc = json(&args);
    let pair = &doc["pairs"][0];
    let (a, b) = (unit(&image, d), unit(&text, d));
    let of_a = |i: usize| (i * captions..(i + 1) * captions).collect::<Vec<_>>();
    let r1 = pair["retrieval"]["image_to_caption"]["recall_at_1"]
        .as_f64()
        .unwrap();
    assert_eq!(r1, recall_at_1(&a, &b, &of_a));
    let r1 = pair["retrieval"]["caption_to_image"]["recall_at_1"]
        .as_f64()
        .unwrap();
    assert_eq!(r1, recall_at_1(&b, &a, &|j| vec![j / captions]));
    assert_eq!(pair["retrieval"]["caption_to_image"]["queries"], 240);
    assert!(
        pair["retrieval"]["info_nce"].is_null(),
        "InfoNCE needs 1:1 pairs"
    );
    // Bad inputs, each named.
    let message = fails(&[
        "analyze",
        "--modalities",
        &path("img.npy"),
        &path("cap.npy"),
    ]);
    assert!(
        message.contains("differ in rows") && message.contains("--pair-map"),
        "{message}"
    );
    write_ints(&dir.path().join("short.npy"), &map[..10]);
    let message = fails(&[
        "analyze",
        "--modalities",
        &path("img.npy"),
        &path("cap.npy"),
        "--pair-map",
        &path("short.npy"),
    ]);
    assert!(
        message.contains("short.npy") && message.contains("10 entries"),
        "{message}"
    );
    let mut far = map.clone();
    far[5] = 999;
    write_ints(&dir.path().join("far.npy"), &far);
    let message = fails(&[
        "analyze",
        "--modalities",
        &path("img.npy"),
        &path("cap.npy"),
        "--pair-map",
        &path("far.npy"),
    ]);
    assert!(
        message.contains("row 5") && message.contains("999"),
        "{message}"
    );
    let message = fails(&[
        "analyze",
        "--modalities",
        &path("img.npy"),
        &path("img.npy"),
    ]);
    assert!(message.contains("--modality-names"), "{message}");
}

/// Modalities of different widths are each analysed; the pairs that share a width are
/// measured together, the others are left out with a note (JSON, table, report); what needs
/// every pair (`track --modalities`) refuses them with the widths named.
#[test]
fn modalities_of_different_widths_are_each_analysed() {
    let dir = tempfile::tempdir().unwrap();
    let n = 60;
    let image = rows(n, 6, 1);
    let text: Vec<f64> = image
        .iter()
        .zip(rows(n, 6, 2))
        .map(|(a, b)| a + 0.3 * b)
        .collect();
    write_rows(&dir.path().join("image.npy"), &image, 6);
    write_rows(&dir.path().join("text.npy"), &text, 6);
    write_rows(&dir.path().join("audio.npy"), &rows(n, 4, 3), 4);
    let path = |name: &str| dir.path().join(name).display().to_string();
    let inputs = [path("image.npy"), path("text.npy"), path("audio.npy")];
    let mut args = vec!["analyze", "--modalities"];
    args.extend(inputs.iter().map(String::as_str));
    let doc = json(&args);
    assert_eq!(doc["modalities"].as_array().unwrap().len(), 3);
    assert_eq!(doc["modalities"][2]["analysis"]["dim"], 4);
    let pairs = doc["pairs"].as_array().unwrap();
    assert_eq!(pairs.len(), 1);
    assert_eq!(
        (pairs[0]["first"].as_str(), pairs[0]["second"].as_str()),
        (Some("image"), Some("text"))
    );
    let distances = &doc["gap_matrix"]["distances"];
    assert!(distances[0][1].as_f64().unwrap() > 0.0);
    assert!(distances[0][2].is_null() && distances[2][1].is_null());
    assert_eq!(distances[2][2], 0.0);
    let notes: Vec<&str> = doc["notes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(
        notes[0].contains("image and audio have 6 and 4 dimensions"),
        "{notes:?}"
    );
    let table = succeeds(&args);
    assert!(
        table.contains("text and audio have 6 and 4 dimensions"),
        "{table}"
    );
    let out = dir.path().join("report");
    let mut report = vec!["report", "--out", out.to_str().unwrap(), "--modalities"];
    report.extend(inputs.iter().map(String::as_str));
    succeeds(&report);
    let page = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(page.contains("6 and 4 dimensions"));
    // track follows the gap and retrieval of two modalities: both must share a width.
    let run = dir.path().join("run");
    std::fs::create_dir(&run).unwrap();
    let bytes = |values: &[f64]| -> Vec<u8> {
        values
            .iter()
            .flat_map(|v| (*v as f32).to_le_bytes())
            .collect()
    };
    let checkpoint = mutation::safetensors(&[
        ("image", "F32", vec![n, 6], bytes(&image)),
        ("audio", "F32", vec![n, 4], bytes(&rows(n, 4, 3))),
    ]);
    std::fs::write(run.join("step_1.safetensors"), checkpoint).unwrap();
    let message = fails(&[
        "track",
        run.to_str().unwrap(),
        "--out",
        dir.path().join("track").to_str().unwrap(),
        "--modalities",
        "image",
        "audio",
    ]);
    assert!(
        message.contains("6 and 4 dimensions") && message.contains("step_1"),
        "{message}"
    );
}

/// Two JSON numbers agree to `tolerance` relative (or both are null).
fn close(a: &serde_json::Value, b: &serde_json::Value, tolerance: f64, what: &str) {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => assert!(
            (x - y).abs() <= tolerance * y.abs().max(1.0),
            "{what}: {x} against {y}"
        ),
        _ => assert_eq!(a, b, "{what}"),
    }
}

/// LAION's layout (`img_emb/img_emb_N.npy` beside `text_emb/text_emb_N.npy`, row i of shard N
/// of each one item): the sharded measurement equals the one of the concatenated files, the
/// ranks exactly and the rest to 1e-12; shards that do not match row for row are named.
#[test]
fn sharded_modalities_equal_the_concatenated_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = 12;
    // Shards 1 and 2 start on a repeated text: its tie is with the other shard's row.
    let sizes = [69, 132, 45];
    let total: usize = sizes.iter().sum();
    let image = rows(total, d, 21);
    let noise = rows(total, d, 22);
    // A quarter of the texts are another item's image (negatives above the positive), a
    // quarter repeat the text before them (ties with the positive, across shards too).
    let mut text = vec![0.0; total * d];
    for k in 0..total * d {
        text[k] = match (k / d) % 4 {
            0 => image[((k / d + 7) % total) * d + k % d],
            1 => text[k - d],
            _ => image[k] + 0.8 * noise[k] + if k % d == 1 { 0.6 } else { 0.0 },
        };
    }
    for name in ["img_emb", "text_emb"] {
        std::fs::create_dir(dir.path().join(name)).unwrap();
    }
    let mut start = 0;
    for (k, &n) in sizes.iter().enumerate() {
        let range = start * d..(start + n) * d;
        write_rows(
            &dir.path().join(format!("img_emb/img_emb_{k}.npy")),
            &image[range.clone()],
            d,
        );
        write_rows(
            &dir.path().join(format!("text_emb/text_emb_{k}.npy")),
            &text[range],
            d,
        );
        start += n;
    }
    write_rows(&dir.path().join("image.npy"), &image, d);
    write_rows(&dir.path().join("text.npy"), &text, d);
    let path = |name: &str| dir.path().join(name).display().to_string();
    let names = ["--modality-names", "image", "text", "--shifts", "0.5,1"];
    let sharded = json(
        &[
            &[
                "analyze",
                "--modalities",
                &path("img_emb"),
                &path("text_emb"),
            ][..],
            &names[..],
        ]
        .concat(),
    );
    let whole = json(
        &[
            &[
                "analyze",
                "--modalities",
                &path("image.npy"),
                &path("text.npy"),
            ][..],
            &names[..],
        ]
        .concat(),
    );
    let (s, w) = (&sharded["pairs"][0], &whole["pairs"][0]);
    assert_eq!(s["rows"], w["rows"]);
    let retrieval_agrees = |s: &serde_json::Value, w: &serde_json::Value, what: &str| {
        for direction in ["image_to_text", "text_to_image"] {
            let (a, b) = (&s[direction], &w[direction]);
            for exact in [
                "queries",
                "recall_at_1",
                "recall_at_5",
                "recall_at_10",
                "mean_rank",
                "median_rank",
                "tied_queries",
                "recall_curve",
            ] {
                assert_eq!(a[exact], b[exact], "{what} {direction} {exact}");
            }
            close(
                &a["mrr"],
                &b["mrr"],
                1e-12,
                &format!("{what} {direction} mrr"),
            );
        }
        close(
            &s["info_nce"],
            &w["info_nce"],
            1e-12,
            &format!("{what} InfoNCE"),
        );
        close(&s["siglip"], &w["siglip"], 1e-12, &format!("{what} SigLIP"));
    };
    retrieval_agrees(&s["retrieval"], &w["retrieval"], "now");
    assert!(
        w["retrieval"]["image_to_text"]["tied_queries"]
            .as_u64()
            .unwrap()
            > 0
    );
    for key in [
        "distance",
        "centroid_cosine_distance",
        "l2i",
        "pair_cosine",
        "rmg",
        "rmg_training",
    ] {
        close(&s["gap"][key], &w["gap"][key], 1e-12, key);
    }
    for k in 0..2 {
        close(&s["gap"]["cones"][k], &w["gap"]["cones"][k], 1e-12, "cone");
        close(
            &s["shift"][k]["distance"],
            &w["shift"][k]["distance"],
            1e-12,
            "shifted gap",
        );
        retrieval_agrees(
            &s["shift"][k]["retrieval"],
            &w["shift"][k]["retrieval"],
            "shifted",
        );
    }
    close(
        &sharded["gap_matrix"]["distances"][0][1],
        &whole["gap_matrix"]["distances"][0][1],
        1e-12,
        "gap matrix",
    );
    assert_eq!(sharded["modalities"][0]["analysis"]["n"], total);

    // A text shard one row short is named.
    write_rows(
        &dir.path().join("text_emb/text_emb_1.npy"),
        &text[69 * d..200 * d],
        d,
    );
    let error = fails(&[
        "analyze",
        "--modalities",
        &path("img_emb"),
        &path("text_emb"),
    ]);
    assert!(
        error.contains("not row-matched") && error.contains("text_emb_1.npy"),
        "{error}"
    );
    // Files and directories are not mixed.
    let error = fails(&[
        "analyze",
        "--modalities",
        &path("img_emb"),
        &path("text.npy"),
    ]);
    assert!(
        error.contains("every one is a directory of shards or none"),
        "{error}"
    );
}
