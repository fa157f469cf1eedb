//! The geometry crate's layers show in its folders and hold: `kernels` < `metrics` <
//! `orchestration` (with `error` and `progress` beneath them all). No module imports one of a
//! higher layer, and no modules import each other in a circle. The imports are read from the
//! source (comments aside), so a new `use` that breaks the layering fails here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each module (`kernels::rows`, `error`, ...) and the crate modules its code names.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut modules = BTreeMap::new();
    let mut files = vec![src.join("error.rs"), src.join("progress.rs")];
    for layer in ["kernels", "metrics", "orchestration"] {
        for entry in std::fs::read_dir(src.join(layer)).unwrap() {
            let path = entry.unwrap().path();
            if path.file_name().is_some_and(|n| n != "mod.rs") {
                files.push(path);
            }
        }
    }
    for path in files {
        let relative = path.strip_prefix(&src).unwrap().with_extension("");
        let name = relative.to_str().unwrap().replace('/', "::");
        let code: String = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let mut named = BTreeSet::new();
        for (at, _) in code.match_indices("crate::") {
            let rest = &code[at + "crate::".len()..];
            let word = |s: &str| {
                s.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .next()
                    .unwrap_or("")
                    .to_string()
            };
            let first = word(rest);
            let module = match first.as_str() {
                "kernels" | "metrics" | "orchestration" => {
                    format!("{first}::{}", word(&rest[first.len() + 2..]))
                }
                "error" | "progress" => first,
                _ => continue,
            };
            if module != name {
                named.insert(module);
            }
        }
        modules.insert(name, named);
    }
    modules
}

fn layer(module: &str) -> usize {
    match module.split("::").next().unwrap() {
        "error" | "progress" => 0,
        "kernels" => 1,
        "metrics" => 2,
        "orchestration" => 3,
        other => panic!("a module outside the layers: {other}"),
    }
}

#[test]
fn no_module_imports_a_higher_layer() {
    let upward: Vec<String> = imports()
        .iter()
        .flat_map(|(module, named)| {
            named
                .iter()
                .filter(|n| layer(n) > layer(module))
                .map(move |n| format!("{module} -> {n}"))
        })
        .collect();
    assert!(upward.is_empty(), "imports that run upward: {upward:?}");
}

#[test]
fn no_modules_import_each_other_in_a_circle() {
    // Kahn's algorithm: what cannot be ordered lies on (or behind) a circle.
    let mut graph = imports();
    loop {
        let leaves: Vec<String> = graph
            .iter()
            .filter(|(_, named)| named.iter().all(|n| !graph.contains_key(n)))
            .map(|(module, _)| module.clone())
            .collect();
        if leaves.is_empty() {
            break;
        }
        for leaf in leaves {
            graph.remove(&leaf);
        }
    }
    assert!(
        graph.is_empty(),
        "modules in or behind a circle: {:?}",
        graph.keys().collect::<Vec<_>>()
    );
}

#[test]
fn every_layer_is_read() {
    let modules = imports();
    for layer in [
        "kernels::rows",
        "metrics::uniformity",
        "orchestration::analysis",
    ] {
        assert!(modules.contains_key(layer), "{layer} not found");
    }
    assert!(modules["orchestration::analysis"].contains("metrics::uniformity"));
}
