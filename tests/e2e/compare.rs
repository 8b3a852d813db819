//! `isola compare` through the real binary: the same workload bare and as a container (the
//! VM column where KVM works: vm.rs runs it in the test host), every figure measured — the
//! phases add up to the wall time, the probe sees what each level shows, and the page and the
//! SVG are well-formed with the numbers the JSON has.

use isola_e2e::Env;

/// Parses `path` as XML with Python's standard library (the page is XHTML); the data-ms
/// values of its phase bars, in order.
fn bars(path: &std::path::Path) -> Vec<f64> {
    let script = "import sys, xml.etree.ElementTree as E\n\
                  t = E.parse(sys.argv[1])\n\
                  for e in t.iter():\n\
                  \x20   if e.get('data-ms'): print(e.get('data-ms'))\n";
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(path)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{} is not well-formed: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.parse().unwrap())
        .collect()
}

#[test]
fn compare_measures_bare_and_container_and_writes_a_page_with_the_same_numbers() {
    let env = Env::new();
    let page = env.root.join("report.html");
    let (table, levels) = isola_e2e::compare_run(&env, &page);
    for row in [
        "wall time",
        "isolation setup",
        "workload",
        "sees: PID 1",
        "sees: processes seen",
    ] {
        assert!(table.contains(row), "{table}");
    }
    let (bare, ctr, vm) = (&levels["bare"], &levels["container"], &levels["vm"]);
    // Phases add up to the wall time.
    let sum: f64 = ctr["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["ms"].as_f64().unwrap())
        .sum();
    let wall = ctr["wall_ms"].as_f64().unwrap();
    assert!((sum - wall).abs() < 0.01 && wall > 0.0, "{ctr}");
    assert_eq!(ctr["exit_code"], 0);
    // What each sees, measured: the container its own PID 1 (the probe itself), one process,
    // loopback only, a seccomp filter; bare the host's processes.
    let p = &ctr["probe"];
    assert_eq!(
        (p["pid1"].as_str(), p["my_pid"].as_u64()),
        (Some("/dev/init"), Some(1))
    );
    assert_eq!(p["processes"], 1);
    assert_eq!(p["interfaces"], serde_json::json!(["lo"]));
    assert_eq!(p["seccomp"], "2");
    assert!(bare["probe"]["processes"].as_u64().unwrap() > 1, "{bare}");
    assert_eq!(
        bare["probe"]["kernel"], p["kernel"],
        "a container shares the host's kernel"
    );
    // Its disk: the unpacked rootfs, as du counts it (allocated blocks); bare keeps nothing.
    let du = std::process::Command::new("du")
        .arg("-sk")
        .arg(env.root.join("rootfs"))
        .output()
        .unwrap();
    let du_mib: f64 = String::from_utf8_lossy(&du.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .parse::<f64>()
        .unwrap()
        / 1024.0;
    let rootfs = ctr["disk_mib"]["rootfs"].as_f64().unwrap();
    assert!(
        rootfs > 1.0 && (rootfs - du_mib).abs() < 0.1,
        "{rootfs} vs du {du_mib}"
    );
    assert!(ctr["disk_mib"]["root_disk"].is_null() && bare["disk_mib"]["rootfs"].is_null());
    assert!(
        table.contains("disk, shared by the image's runs"),
        "{table}"
    );
    // No usable KVM here: said, loudly, not faked.
    if vm.get("not_measured").is_some() {
        assert!(table.contains("vm: NOT MEASURED HERE"), "{table}");
    }
    // The page: well-formed, its bars the JSON's phases.
    let drawn = bars(&page);
    let expected: Vec<f64> = [bare, ctr, vm]
        .iter()
        .filter_map(|c| c["phases"].as_array())
        .flatten()
        .map(|p| p["ms"].as_f64().unwrap())
        .collect();
    assert_eq!(drawn.len(), expected.len(), "{drawn:?} {expected:?}");
    for (d, e) in drawn.iter().zip(&expected) {
        assert!((d - e).abs() < 0.001, "{drawn:?} {expected:?}");
    }
    // The chart alone as SVG; bad input named.
    let svg = env.root.join("c.svg");
    let r = env.isola(&[
        "compare",
        "--levels",
        "container",
        "--output",
        &svg.to_string_lossy(),
        "sample",
        "true",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(bars(&svg).len(), 5);
    let r = env.isola(&["compare", "--levels", "bare,lxc", "sample", "true"]);
    assert!(
        r.code == 125 && r.stderr.contains("\"lxc\""),
        "{}",
        r.stderr
    );
    let r = env.isola(&["compare", "--output", "x.pdf", "sample", "true"]);
    assert!(r.code == 125 && r.stderr.contains("x.pdf"), "{}", r.stderr);
    env.assert_clean();
}

/// The page as a person sees it: Debian's Chromium, headless, takes a screenshot of it; the
/// screenshot is not blank, and each phase's colour and the memory bars' are on it.
#[test]
fn the_page_renders_in_chromium_with_its_bars_showing() {
    let env = Env::new();
    let page = env.root.join("report.html");
    let r = env.isola(&[
        "compare",
        "--levels",
        "bare,container",
        "--output",
        &page.to_string_lossy(),
        "sample",
        "true",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let profile = tempfile::tempdir().unwrap();
    let shot = profile.path().join("shot.png");
    let out = std::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--window-size=1000,800")
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium (Debian's package; scripts/test installs it)");
    assert!(
        out.status.success() && shot.exists(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (w, h, pixels) = isola_e2e::png_pixels(&shot);
    assert_eq!((w, h), (1000, 800));
    let white = pixels.iter().filter(|p| **p == [255, 255, 255]).count();
    assert!(
        white < pixels.len() * 97 / 100,
        "the screenshot is {white} of {} pixels white",
        pixels.len()
    );
    // The container's five phases (isola setup, isolation setup, start, workload, teardown)
    // in the report's colours, and the memory bars.
    for hex in [0x4e79a7, 0xf28e2b, 0xe15759, 0x76b7b2, 0x59a14f, 0x9c755f] {
        let rgb = [(hex >> 16) as u8, (hex >> 8) as u8, hex as u8];
        let near = |p: &[u8; 3]| p.iter().zip(rgb).all(|(a, b)| a.abs_diff(b) <= 3);
        let n = pixels.iter().filter(|p| near(p)).count();
        assert!(n > 100, "#{hex:06x}: {n} pixels");
    }
    env.assert_clean();
}
