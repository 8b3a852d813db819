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
