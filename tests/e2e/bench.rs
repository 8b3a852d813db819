//! `isola bench pagerank` end to end at the levels this host runs (bare and container; vm.rs
//! runs the VM level in the test host): every instance ends with the same result, the CSV has
//! a row per instance, the SVG plot is well-formed with the CSV's means at its points, and the
//! PNG shows each measured level's lines.

use isola_e2e::Env;
use std::collections::HashMap;

#[test]
fn bench_pagerank_writes_a_csv_and_a_plot_that_agree() {
    let env = Env::new();
    let out = env.root.join("bench");
    let (stderr, rows) = isola_e2e::bench_run(&env, "bare,container,vm", &out);
    let csv = format!("{rows:?}");
    let vm_here = !stderr.contains("vm: NOT MEASURED HERE");
    assert_eq!(rows.len(), if vm_here { 9 } else { 6 }, "{csv}");
    // Deterministic: one result everywhere, every instance ended well, CPU time was spent.
    let results: Vec<&str> = rows.iter().map(|r| r[7].as_str()).collect();
    assert!(results[0].contains("checksum="), "{csv}");
    assert!(results.iter().all(|x| *x == results[0]), "{csv}");
    assert!(rows.iter().all(|r| r[6] == "0"), "{csv}");
    assert!(
        rows.iter().all(|r| r[4].parse::<f64>().unwrap() > 0.0),
        "{csv}"
    );
    // The plot's points are the CSV's means per level and instance count.
    let mut means: HashMap<(String, String, String), (f64, f64)> = HashMap::new();
    for r in &rows {
        for (metric, col) in [("completion", 3), ("wait", 5)] {
            let e = means
                .entry((r[0].to_string(), r[1].to_string(), metric.to_string()))
                .or_default();
            e.0 += r[col].parse::<f64>().unwrap();
            e.1 += 1.0;
        }
    }
    let script = "import sys, xml.etree.ElementTree as E\n\
                  for e in E.parse(sys.argv[1]).iter():\n\
                  \x20   if e.get('data-ms'): print(e.get('data-level'), e.get('data-instances'), e.get('data-metric'), e.get('data-ms'))\n";
    let py = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(out.join("pagerank.svg"))
        .output()
        .expect("python3");
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    let points: Vec<String> = String::from_utf8_lossy(&py.stdout)
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(points.len(), means.len(), "{points:?}");
    for p in &points {
        let f: Vec<&str> = p.split(' ').collect();
        let (sum, n) = means[&(f[0].to_string(), f[1].to_string(), f[2].to_string())];
        let drawn: f64 = f[3].parse().unwrap();
        assert!((drawn - sum / n).abs() < 0.01, "{p}: {}", sum / n);
    }
    // The PNG is the same plot: 2 pixels a unit, each measured level's line in its colour.
    let (w, h, _) = isola_e2e::png_pixels(&out.join("pagerank.png"));
    assert_eq!((w, h), (1440, 1080));
    let [bare, container, vm] = isola_e2e::plot_level_pixels(&out.join("pagerank.png"));
    assert!(bare > 500 && container > 500, "{bare} {container}");
    assert_eq!(vm > 0, vm_here, "{vm}");
    let r = env.isola(&[
        "bench",
        "pagerank",
        "--instances",
        "0",
        "--output",
        &out.to_string_lossy(),
    ]);
    assert!(
        r.code == 125 && r.stderr.contains("--instances 0"),
        "{}",
        r.stderr
    );
    env.assert_clean();
}
