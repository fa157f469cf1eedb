//! The demo report in a real browser: headless Chromium loads it from file:// with no console
//! errors and no requests, every figure has a non-zero rendered size, and a full-page
//! screenshot is written. Skipped, with a visible message, only where Chromium is missing.

use std::path::{Path, PathBuf};
use std::process::Command;

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            let out = Command::new("which").arg(name).output().ok()?;
            out.status
                .success()
                .then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
        })
}

/// Run headless Chromium with the flags this sandbox needs, plus `extra`.
fn headless(browser: &Path, profile: &Path, extra: &[String]) -> std::process::Output {
    Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=10000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .output()
        .expect("run chromium")
}

/// Records errors, requests and each figure's rendered size into `<pre id="embgeom-check">`.
const PROBE: &str = r#"<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push('error: ' + (e.message || e.target && e.target.outerHTML)), true);
const original = console.error;
console.error = (...args) => { window.__errors.push('console.error: ' + args.join(' ')); original(...args); };
window.addEventListener('load', () => {
  const figures = [...document.querySelectorAll('figure.plot')].map(f => {
    const svg = f.querySelector('svg');
    const r = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
    return {id: f.id, width: r.width, height: r.height};
  });
  const result = {
    figures, errors: window.__errors,
    resources: performance.getEntriesByType('resource').map(r => r.name),
    height: document.documentElement.scrollHeight,
  };
  const pre = document.createElement('pre');
  pre.id = 'embgeom-check';
  pre.textContent = JSON.stringify(result);
  document.body.appendChild(pre);
});
</script>"#;

/// Chromium, or `None` after saying why the test does not run (a failure under CI).
fn browser_or_skip(test: &str) -> Option<PathBuf> {
    let browser = chromium();
    if browser.is_none() {
        let why =
            "Chromium is not installed (scripts/deps.sh --browser, or apt-get install chromium)";
        // Under CI a missing dependency is a failure, never a silent pass.
        assert!(std::env::var_os("CI").is_none(), "{why}");
        println!("SKIPPED {test}: {why}");
    }
    browser
}

/// Run `embgeom ARGS --out DIR/NAME` in the source tree; the page's folder.
fn written_page(dir: &Path, args: &[&str], name: &str) -> PathBuf {
    let folder = dir.join(name);
    let out = Command::new(env!("CARGO_BIN_EXE_embgeom"))
        .args(args)
        .arg("--out")
        .arg(&folder)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    folder
}

/// Load `folder/index.html` from `file://` with the probe: no console error, no request,
/// `figures` figures of non-zero size; then a screenshot `shot` (window `width` wide, at
/// most `max_height` tall) into the test's temporary folder.
fn check_page(browser: &Path, folder: &Path, figures: usize, shot: &str, max_height: u32) {
    let page = std::fs::read_to_string(folder.join("index.html")).unwrap();
    let probed = page.replacen("<head>", &format!("<head>\n{PROBE}"), 1);
    let check = folder.join("index.check.html");
    std::fs::write(&check, probed).unwrap();
    let profile = folder.join("profile");
    let run = headless(
        browser,
        &profile,
        &["--dump-dom".into(), format!("file://{}", check.display())],
    );
    let dom = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    let start = dom
        .find("<pre id=\"embgeom-check\">")
        .unwrap_or_else(|| panic!("no probe output; stderr:\n{stderr}"));
    let body = &dom[start + "<pre id=\"embgeom-check\">".len()..];
    let body = body[..body.find("</pre>").unwrap()]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    let result: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        result["errors"].as_array().unwrap().len(),
        0,
        "console errors: {}",
        result["errors"]
    );
    assert_eq!(
        result["resources"].as_array().unwrap().len(),
        0,
        "requests: {}",
        result["resources"]
    );
    let drawn = result["figures"].as_array().unwrap();
    assert_eq!(drawn.len(), figures);
    for f in drawn {
        assert!(
            f["width"].as_f64().unwrap() > 100.0 && f["height"].as_f64().unwrap() > 100.0,
            "{f}"
        );
    }
    for line in stderr.lines() {
        assert!(
            !line.contains("Failed to load resource") && !line.contains(":ERROR:CONSOLE"),
            "{line}"
        );
    }
    let height = result["height"].as_f64().unwrap().ceil() as u32;
    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(shot);
    let _ = std::fs::remove_file(&shot);
    let run = headless(
        browser,
        &profile,
        &[
            format!("--screenshot={}", shot.display()),
            format!("--window-size=1280,{}", height.clamp(800, max_height)),
            "--hide-scrollbars".into(),
            format!("file://{}", folder.join("index.html").display()),
        ],
    );
    let png = std::fs::read(&shot).unwrap_or_else(|_| {
        panic!(
            "no screenshot; stderr:\n{}",
            String::from_utf8_lossy(&run.stderr)
        )
    });
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    println!("screenshot: {}", shot.display());
}

#[test]
fn demo_report_renders_in_headless_chromium() {
    let Some(browser) = browser_or_skip("demo_report_renders_in_headless_chromium") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let folder = written_page(dir.path(), &["report"], "report");
    check_page(&browser, &folder, 12, "demo-report.png", u32::MAX);
}

/// The compare demo (the bundled SupCon and SimCLR runs); its screenshot (the top 2,200
/// pixels) is the README's `docs/src/images/compare-demo.png`.
#[test]
fn compare_demo_renders_in_headless_chromium() {
    let Some(browser) = browser_or_skip("compare_demo_renders_in_headless_chromium") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let folder = written_page(dir.path(), &["compare"], "compare");
    check_page(&browser, &folder, 6, "compare-demo.png", 2200);
}
