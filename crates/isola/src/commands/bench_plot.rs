//! `isola bench pagerank`'s outputs: the CSV (one row per instance), the terminal table (one
//! row per level and instance count) and the SVG plot (mean completion time and mean wait time
//! against instances at once, a line per level), self-contained and well-formed; each point
//! carries its value (`data-ms`) so a test can hold it against the CSV.

use super::bench_pagerank::Instance;

/// (level, instances) → the instances' mean completion, mean CPU and mean wait (ms), and runs
/// per second (instances over the last one's completion).
pub struct Summary {
    pub level: String,
    pub instances: usize,
    pub completion_ms: f64,
    pub cpu_ms: f64,
    pub wait_ms: f64,
    pub per_second: f64,
}

pub fn summarize(all: &[Instance]) -> Vec<Summary> {
    let mut keys: Vec<(String, usize)> = Vec::new();
    for i in all {
        if !keys.contains(&(i.level.clone(), i.instances)) {
            keys.push((i.level.clone(), i.instances));
        }
    }
    keys.into_iter()
        .map(|(level, n)| {
            let group: Vec<&Instance> = all
                .iter()
                .filter(|i| i.level == level && i.instances == n)
                .collect();
            let mean = |f: &dyn Fn(&Instance) -> f64| {
                group.iter().map(|i| f(i)).sum::<f64>() / group.len().max(1) as f64
            };
            let last = group.iter().map(|i| i.completion_ms).fold(0.0, f64::max);
            Summary {
                instances: n,
                completion_ms: mean(&|i| i.completion_ms),
                cpu_ms: mean(&|i| i.cpu_ms),
                wait_ms: mean(&|i| i.wait_ms),
                per_second: if last > 0.0 {
                    n as f64 * 1000.0 / last
                } else {
                    0.0
                },
                level,
            }
        })
        .collect()
}

pub fn csv(all: &[Instance]) -> String {
    let mut out =
        String::from("level,instances,instance,completion_ms,cpu_ms,wait_ms,exit_code,result\n");
    for i in all {
        out.push_str(&format!(
            "{},{},{},{:.3},{:.3},{:.3},{},\"{}\"\n",
            i.level,
            i.instances,
            i.index,
            i.completion_ms,
            i.cpu_ms,
            i.wait_ms,
            i.exit_code,
            i.result.replace('"', "'")
        ));
    }
    out
}

pub fn print_table(all: &[Instance]) {
    println!(
        "{:<10} {:>9} {:>16} {:>12} {:>12} {:>10}",
        "level", "instances", "completion (ms)", "CPU (ms)", "wait (ms)", "runs/s"
    );
    for s in summarize(all) {
        println!(
            "{:<10} {:>9} {:>16.1} {:>12.1} {:>12.1} {:>10.2}",
            s.level, s.instances, s.completion_ms, s.cpu_ms, s.wait_ms, s.per_second
        );
    }
}

const COLORS: &[(&str, &str)] = &[
    ("bare", "#59a14f"),
    ("container", "#4e79a7"),
    ("vm", "#e15759"),
];

/// One line chart: `value` of each summary against its instance count, a line per level.
fn chart(
    sums: &[Summary],
    title: &str,
    metric: &str,
    value: &dyn Fn(&Summary) -> f64,
    top: f64,
) -> String {
    let (x0, y0, w, h) = (60.0, top + 30.0, 560.0, 200.0);
    let counts: Vec<usize> = {
        let mut c: Vec<usize> = sums.iter().map(|s| s.instances).collect();
        c.sort_unstable();
        c.dedup();
        c
    };
    let most = sums.iter().map(value).fold(1e-9, f64::max);
    let x = |n: usize| {
        let i = counts.iter().position(|c| *c == n).unwrap_or(0);
        x0 + if counts.len() > 1 {
            i as f64 / (counts.len() - 1) as f64 * w
        } else {
            w / 2.0
        }
    };
    let y = |v: f64| y0 + h - v / most * h;
    let mut s = format!(
        "<text x=\"10\" y=\"{:.0}\" font-weight=\"bold\">{title}</text>\n\
         <line x1=\"{x0}\" y1=\"{:.0}\" x2=\"{:.0}\" y2=\"{:.0}\" stroke=\"#888\"/>\n\
         <line x1=\"{x0}\" y1=\"{y0}\" x2=\"{x0}\" y2=\"{:.0}\" stroke=\"#888\"/>\n\
         <text x=\"5\" y=\"{:.0}\" font-size=\"11\">{most:.0} ms</text>\n",
        top + 18.0,
        y0 + h,
        x0 + w,
        y0 + h,
        y0 + h,
        y0 + 4.0
    );
    for n in &counts {
        s.push_str(&format!(
            "<text x=\"{:.0}\" y=\"{:.0}\" font-size=\"11\" text-anchor=\"middle\">{n}</text>\n",
            x(*n),
            y0 + h + 14.0
        ));
    }
    for (level, color) in COLORS {
        let points: Vec<&Summary> = sums.iter().filter(|s| s.level == *level).collect();
        if points.is_empty() {
            continue;
        }
        let path: Vec<String> = points
            .iter()
            .map(|p| format!("{:.1},{:.1}", x(p.instances), y(value(p))))
            .collect();
        s.push_str(&format!(
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>\n",
            path.join(" ")
        ));
        for p in &points {
            s.push_str(&format!(
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{color}\" data-level=\"{level}\" data-instances=\"{}\" data-metric=\"{metric}\" data-ms=\"{:.3}\"><title>{level}, {}: {:.1} ms</title></circle>\n",
                x(p.instances),
                y(value(p)),
                p.instances,
                value(p),
                p.instances,
                value(p)
            ));
        }
        let last = points.last().expect("not empty");
        s.push_str(&format!(
            "<text x=\"{:.0}\" y=\"{:.0}\" font-size=\"11\" fill=\"{color}\">{level}</text>\n",
            x(last.instances) + 6.0,
            y(value(last)) + 4.0
        ));
    }
    s
}

pub fn svg(all: &[Instance], nodes: usize, iterations: usize) -> String {
    let sums = summarize(all);
    let a = chart(
        &sums,
        &format!("PageRank ({nodes} nodes, {iterations} iterations): mean completion time against instances at once"),
        "completion",
        &|s| s.completion_ms,
        0.0,
    );
    let b = chart(
        &sums,
        "Mean time runnable but waiting for a CPU (host tasks' schedstat)",
        "wait",
        &|s| s.wait_ms,
        270.0,
    );
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"700\" height=\"540\" font-family=\"sans-serif\" font-size=\"13\">\n{a}{b}</svg>\n"
    )
}
