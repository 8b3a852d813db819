//! What `isola compare` measured, shown: a table on the terminal, JSON (`--json`), and a page
//! (`--output FILE.html`, or the chart alone as `.svg`): a stacked bar per level for the
//! phases, bars for memory, the probe's findings — self-contained (no external assets), and
//! well-formed XML so it can be checked.

use super::compare::{Column, Measured, PHASES, PHASE_NOTES};
use crate::plot::escape;
use serde_json::{json, Value};

fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0} ms")
    } else {
        format!("{v:.1} ms")
    }
}

/// The probe's findings as rows: (label, value as text).
fn seen(p: &Value) -> Vec<(&'static str, String)> {
    let s = |k: &str| match &p[k] {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        v => v.to_string(),
    };
    let cg = &p["cgroup"];
    let memory_limit = cg["memory.max"]
        .as_str()
        .or(cg["memory.limit_in_bytes"].as_str())
        .map(|v| match v.parse::<u64>() {
            Ok(b) if b < 1 << 60 => format!("{} MiB", b >> 20),
            _ => "none".into(),
        })
        .unwrap_or_else(|| "none".into());
    vec![
        ("kernel", s("kernel")),
        ("PID 1", s("pid1")),
        ("its own PID", s("my_pid")),
        ("processes seen", s("processes")),
        ("mounts", s("mounts")),
        ("devices in /dev", s("devices")),
        (
            "network interfaces",
            p["interfaces"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str())
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default(),
        ),
        ("memory limit (cgroup)", memory_limit),
        ("capabilities (CapEff)", s("cap_eff")),
        ("seccomp mode", s("seccomp")),
        ("CPUs", s("cpus")),
        ("memory total", format!("{} MiB", s("memory_mib"))),
    ]
}

fn rows(columns: &[Column]) -> Vec<(String, Vec<String>)> {
    let cell = |c: &Column, f: &dyn Fn(&Measured) -> String| match &c.measured {
        Ok(m) => f(m),
        Err(_) => "n/a".into(),
    };
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    let mut row = |label: String, f: &dyn Fn(&Measured) -> String| {
        out.push((label, columns.iter().map(|c| cell(c, f)).collect()));
    };
    row("wall time".into(), &|m| ms(m.wall_ms));
    for p in PHASES.iter().filter(|p| {
        columns.iter().any(|c| {
            c.measured
                .as_ref()
                .is_ok_and(|m| m.phases.iter().any(|(n, _)| n == *p))
        })
    }) {
        row(format!("  {p}"), &|m| {
            m.phases
                .iter()
                .find(|(n, _)| n == p)
                .map_or("-".into(), |(_, v)| ms(*v))
        });
    }
    row("exit status".into(), &|m| m.exit_code.to_string());
    row("peak RSS (largest process)".into(), &|m| {
        format!("{:.1} MiB", m.peak_rss_mib)
    });
    row(
        "  VMM peak RSS / overhead".into(),
        &|m| match (m.vmm_rss_mib, m.vmm_overhead_mib) {
            (Some(r), Some(o)) => format!("{r:.1} / {o:.1} MiB"),
            _ => "-".into(),
        },
    );
    let disk = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1} MiB"));
    row("disk, shared by the image's runs".into(), &|m| {
        let total = m.disk.rootfs_mib.unwrap_or(0.0) + m.disk.root_disk_mib.unwrap_or(0.0);
        disk(m.disk.rootfs_mib.map(|_| total))
    });
    row("  unpacked rootfs".into(), &|m| disk(m.disk.rootfs_mib));
    row("  ext4 root disk".into(), &|m| disk(m.disk.root_disk_mib));
    let labels: Vec<&str> = seen(&Value::Null).iter().map(|(l, _)| *l).collect();
    for (i, label) in labels.iter().enumerate() {
        row(format!("sees: {label}"), &|m| seen(&m.probe)[i].1.clone());
    }
    out
}

pub fn print_table(columns: &[Column]) {
    let header: Vec<String> = columns.iter().map(|c| c.level.clone()).collect();
    let rows = rows(columns);
    let w0 = rows.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns.len())
        .map(|i| {
            rows.iter()
                .map(|(_, v)| v[i].len())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |label: &str, cells: &[String]| {
        let mut s = format!("{label:<w0$}");
        for (c, w) in cells.iter().zip(&widths) {
            s.push_str(&format!("  {c:<w$}"));
        }
        println!("{}", s.trim_end());
    };
    line("", &header);
    for (label, cells) in &rows {
        line(label, cells);
    }
}

pub fn json(columns: &[Column]) -> Value {
    Value::Array(
        columns
            .iter()
            .map(|c| match &c.measured {
                Ok(m) => json!({
                    "level": c.level,
                    "wall_ms": m.wall_ms,
                    "phases": m.phases.iter().map(|(n, v)| json!({"phase": n, "ms": v})).collect::<Vec<_>>(),
                    "exit_code": m.exit_code,
                    "peak_rss_mib": m.peak_rss_mib,
                    "vmm_rss_mib": m.vmm_rss_mib,
                    "vmm_overhead_mib": m.vmm_overhead_mib,
                    "disk_mib": {"rootfs": m.disk.rootfs_mib, "root_disk": m.disk.root_disk_mib},
                    "probe": m.probe,
                }),
                Err(why) => json!({"level": c.level, "not_measured": why}),
            })
            .collect(),
    )
}

const COLORS: &[&str] = &[
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
];

/// The phases as one stacked bar per level, and the peak memory as bars, in one SVG.
fn chart(columns: &[Column]) -> String {
    let measured: Vec<(&str, &Measured)> = columns
        .iter()
        .filter_map(|c| c.measured.as_ref().ok().map(|m| (c.level.as_str(), m)))
        .collect();
    let longest = measured.iter().map(|(_, m)| m.wall_ms).fold(1.0, f64::max);
    let most_mem = measured
        .iter()
        .map(|(_, m)| m.peak_rss_mib + m.vmm_rss_mib.unwrap_or(0.0))
        .fold(1.0, f64::max);
    let (x0, width, bar) = (110.0, 560.0, 26.0);
    let phase_names: Vec<&str> = PHASES
        .iter()
        .copied()
        .filter(|p| {
            measured
                .iter()
                .any(|(_, m)| m.phases.iter().any(|(n, _)| n == p))
        })
        .collect();
    let color =
        |p: &str| COLORS[phase_names.iter().position(|n| *n == p).unwrap_or(0) % COLORS.len()];
    let mut svg = String::new();
    let mut y = 30.0;
    svg.push_str(&format!(
        "<text x=\"10\" y=\"18\" font-weight=\"bold\">Where the time goes (0 to {})</text>\n",
        escape(&ms(longest))
    ));
    for (level, m) in &measured {
        svg.push_str(&format!(
            "<text x=\"10\" y=\"{:.0}\">{}</text>\n",
            y + bar * 0.7,
            escape(level)
        ));
        let mut x = x0;
        for (p, v) in &m.phases {
            let w = v / longest * width;
            svg.push_str(&format!(
                "<rect x=\"{x:.2}\" y=\"{y:.0}\" width=\"{w:.2}\" height=\"{bar:.0}\" fill=\"{}\" data-phase=\"{}\" data-ms=\"{v:.3}\"><title>{}: {}</title></rect>\n",
                color(p),
                escape(p),
                escape(p),
                escape(&ms(*v))
            ));
            x += w;
        }
        svg.push_str(&format!(
            "<text x=\"{:.0}\" y=\"{:.0}\" font-size=\"11\">{}</text>\n",
            x + 4.0,
            y + bar * 0.7,
            escape(&ms(m.wall_ms))
        ));
        y += bar + 8.0;
    }
    for (i, p) in phase_names.iter().enumerate() {
        let (lx, ly) = (
            10.0 + (i % 3) as f64 * 230.0,
            y + 8.0 + (i / 3) as f64 * 16.0,
        );
        svg.push_str(&format!(
            "<rect x=\"{lx:.0}\" y=\"{ly:.0}\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{:.0}\" y=\"{:.0}\" font-size=\"11\">{}</text>\n",
            color(p),
            lx + 14.0,
            ly + 9.0,
            escape(p)
        ));
    }
    y += 16.0 * phase_names.len().div_ceil(3) as f64 + 30.0;
    svg.push_str(&format!(
        "<text x=\"10\" y=\"{y:.0}\" font-weight=\"bold\">Peak memory (isola and what it ran; a VM's VMM beside)</text>\n"
    ));
    y += 12.0;
    for (level, m) in &measured {
        let total = m.peak_rss_mib + m.vmm_rss_mib.unwrap_or(0.0);
        let w = total / most_mem * width;
        svg.push_str(&format!(
            "<text x=\"10\" y=\"{:.0}\">{}</text><rect x=\"{x0}\" y=\"{y:.0}\" width=\"{w:.2}\" height=\"{bar:.0}\" fill=\"#9c755f\" data-mib=\"{total:.3}\"/><text x=\"{:.0}\" y=\"{:.0}\" font-size=\"11\">{total:.1} MiB</text>\n",
            y + bar * 0.7,
            escape(level),
            x0 + w + 4.0,
            y + bar * 0.7
        ));
        y += bar + 8.0;
    }
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"760\" height=\"{:.0}\" font-family=\"sans-serif\" font-size=\"13\">\n{svg}</svg>\n",
        y + 10.0
    )
}

/// The page (`.html`: chart, table and notes) or the chart alone (`.svg`).
pub fn page(image: &str, command: &[String], columns: &[Column], out: &std::path::Path) -> String {
    let svg = chart(columns);
    if out.extension().and_then(|e| e.to_str()) == Some("svg") {
        return format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{svg}");
    }
    let mut table = String::from("<table>\n<tr><th></th>");
    for c in columns {
        table.push_str(&format!("<th>{}</th>", escape(&c.level)));
    }
    table.push_str("</tr>\n");
    for (label, cells) in rows(columns) {
        table.push_str(&format!("<tr><td>{}</td>", escape(label.trim_start())));
        for c in cells {
            table.push_str(&format!("<td>{}</td>", escape(&c)));
        }
        table.push_str("</tr>\n");
    }
    table.push_str("</table>\n");
    let mut notes: String = columns
        .iter()
        .filter_map(|c| c.measured.as_ref().err().map(|why| (c, why)))
        .map(|(c, why)| format!("<p>{}: {}</p>\n", escape(&c.level), escape(why)))
        .collect();
    notes.push_str("<ul>\n");
    for (p, n) in PHASES.iter().zip(PHASE_NOTES) {
        notes.push_str(&format!("<li><b>{}</b>: {}</li>\n", escape(p), escape(n)));
    }
    notes.push_str("</ul>\n");
    format!(
        "<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\">\n<head><meta charset=\"utf-8\"/><title>isola compare {img}</title>\n\
         <style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}} td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left}}</style></head>\n\
         <body>\n<h1>isola compare {img}</h1>\n<p>Command: <code>{cmd}</code>. Every figure was measured in this run.</p>\n{svg}{notes}{table}</body>\n</html>\n",
        img = escape(image),
        cmd = escape(&command.join(" ")),
    )
}
