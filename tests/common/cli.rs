//! Running the built `embgeom` binary from the end-to-end tests.
#![allow(dead_code)]

use serde_json::Value;
use std::process::{Command, Output};

/// Run `embgeom` in the source tree (so `data/...` paths work).
pub fn embgeom(args: &[&str]) -> Output {
    embgeom_with_env(args, &[])
}

/// [`embgeom`] with environment variables set.
pub fn embgeom_with_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_embgeom"))
        .args(args)
        .envs(env.iter().copied())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run embgeom")
}

/// Run with `--json -`, expect success, return the document.
pub fn json(args: &[&str]) -> Value {
    json_with_env(args, &[])
}

/// [`json`] with environment variables set.
pub fn json_with_env(args: &[&str], env: &[(&str, &str)]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--json", "-"]);
    let out = embgeom_with_env(&all, env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("valid JSON")
}

/// Run, expect exit status 2 and no panic, return stderr.
pub fn fails(args: &[&str]) -> String {
    let out = embgeom(args);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

/// Run, expect success, return stdout.
pub fn succeeds(args: &[&str]) -> String {
    let out = embgeom(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}
