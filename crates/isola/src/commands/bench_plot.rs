//! `isola bench pagerank`'s outputs: the CSV (one row per instance), the terminal table (one
//! row per level and instance count) and the plot (mean completion time and mean wait time
//! against instances at once, a line per level) as SVG and PNG from one drawing; each SVG point
//! carries its value (`data-ms`) so a test can hold it against the CSV.

use super::bench_pagerank::Instance;
use crate::plot::{Anchor, Drawing, Shape};

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
    d: &mut Drawing,
    sums: &[Summary],
    title: &str,
    metric: &str,
    value: &dyn Fn(&Summary) -> f64,
    top: f64,
) {
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
    let text = |x: f64, y: f64, color, anchor, text: String| Shape::Text {
        x,
        y,
        size: 11,
        bold: false,
        color,
        anchor,
        text,
    };
    d.push(Shape::Text {
        x: 10.0,
        y: top + 18.0,
        size: 13,
        bold: true,
        color: "#000",
        anchor: Anchor::Start,
        text: title.to_string(),
    });
    for (from, to) in [((x0, y0 + h), (x0 + w, y0 + h)), ((x0, y0), (x0, y0 + h))] {
        d.push(Shape::Line {
            from,
            to,
            color: "#888",
            width: 1.0,
        });
    }
    d.push(text(
        5.0,
        y0 + 4.0,
        "#000",
        Anchor::Start,
        format!("{most:.0} ms"),
    ));
    d.push(text(5.0, y0 + h + 4.0, "#000", Anchor::Start, "0".into()));
    for n in &counts {
        d.push(text(
            x(*n),
            y0 + h + 14.0,
            "#000",
            Anchor::Middle,
            n.to_string(),
        ));
    }
    for (level, color) in COLORS {
        let points: Vec<&Summary> = sums.iter().filter(|s| s.level == *level).collect();
        let Some(last) = points.last() else {
            continue;
        };
        d.push(Shape::Polyline {
            points: points
                .iter()
                .map(|p| (x(p.instances), y(value(p))))
                .collect(),
            color,
            width: 2.0,
        });
        for p in &points {
            d.push(Shape::Dot {
                at: (x(p.instances), y(value(p))),
                radius: 3.0,
                color,
                attributes: format!(
                    "data-level=\"{level}\" data-instances=\"{}\" data-metric=\"{metric}\" data-ms=\"{:.3}\"",
                    p.instances,
                    value(p)
                ),
                title: format!("{level}, {}: {:.1} ms", p.instances, value(p)),
            });
        }
        let at = (x(last.instances) + 6.0, y(value(last)) + 4.0);
        d.push(text(at.0, at.1, color, Anchor::Start, level.to_string()));
    }
}

/// The two charts — completion time and wait time against instances — as one drawing, for the
/// SVG and the PNG alike.
pub fn drawing(all: &[Instance], nodes: usize, iterations: usize) -> Drawing {
    let sums = summarize(all);
    let mut d = Drawing::new(720, 540);
    chart(
        &mut d,
        &sums,
        &format!("PageRank ({nodes} nodes, {iterations} iterations): mean completion time against instances at once"),
        "completion",
        &|s| s.completion_ms,
        0.0,
    );
    chart(
        &mut d,
        &sums,
        "Mean time runnable but waiting for a CPU (host tasks' schedstat)",
        "wait",
        &|s| s.wait_ms,
        270.0,
    );
    d
}
