//! PageRank over a synthetic graph: the CPU- and memory-bound workload used by published
//! VM-versus-container comparisons. Deterministic: the same arguments give the same checksum
//! on any isolation level.
//!
//! usage: pagerank [NODES] [ITERATIONS]   (defaults: 100000 nodes, 20 iterations)

use std::process::ExitCode;

const DAMPING: f64 = 0.85;
const OUT_DEGREE: usize = 8;

/// A small deterministic generator (xorshift64*), so no crate is needed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Edges in compressed form: for node v, `targets[offsets[v]..offsets[v + 1]]`.
struct Graph {
    offsets: Vec<usize>,
    targets: Vec<u32>,
}

fn build(nodes: usize) -> Graph {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut offsets = Vec::with_capacity(nodes + 1);
    let mut targets = Vec::with_capacity(nodes * OUT_DEGREE);
    offsets.push(0);
    for v in 0..nodes {
        // Skewed out-degrees (0..=2*OUT_DEGREE) and targets biased towards low ids, like a web graph.
        let degree = (rng.next() % (2 * OUT_DEGREE as u64 + 1)) as usize;
        for _ in 0..degree {
            let r = rng.next();
            let t = if r & 1 == 0 {
                (r >> 1) % nodes as u64
            } else {
                ((r >> 1) % nodes as u64) * ((r >> 33) % nodes as u64) / nodes as u64
            };
            if t as usize != v {
                targets.push(t as u32);
            }
        }
        offsets.push(targets.len());
    }
    Graph { offsets, targets }
}

fn pagerank(g: &Graph, iterations: usize) -> Vec<f64> {
    let n = g.offsets.len() - 1;
    let mut rank = vec![1.0 / n as f64; n];
    let mut next = vec![0.0; n];
    for _ in 0..iterations {
        next.iter_mut().for_each(|x| *x = 0.0);
        let mut dangling = 0.0;
        for (v, &r) in rank.iter().enumerate() {
            let out = &g.targets[g.offsets[v]..g.offsets[v + 1]];
            if out.is_empty() {
                dangling += r;
            } else {
                let share = r / out.len() as f64;
                for &t in out {
                    next[t as usize] += share;
                }
            }
        }
        let base = (1.0 - DAMPING) / n as f64 + DAMPING * dangling / n as f64;
        for x in next.iter_mut() {
            *x = base + DAMPING * *x;
        }
        std::mem::swap(&mut rank, &mut next);
    }
    rank
}

fn arg(args: &[String], i: usize, default: usize, what: &str) -> Result<usize, String> {
    match args.get(i) {
        None => Ok(default),
        Some(s) => match s.parse::<usize>() {
            Ok(v) if v > 0 => Ok(v),
            _ => Err(format!(
                "pagerank: {what} must be a positive whole number, got {s:?}"
            )),
        },
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let parsed =
        arg(&args, 1, 100_000, "NODES").and_then(|n| Ok((n, arg(&args, 2, 20, "ITERATIONS")?)));
    let (nodes, iterations) = match parsed {
        Ok(v) if v.0 <= u32::MAX as usize => v,
        Ok(_) => {
            eprintln!("pagerank: NODES too large");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("{e}\nusage: pagerank [NODES] [ITERATIONS]");
            return ExitCode::from(2);
        }
    };
    let g = build(nodes);
    let rank = pagerank(&g, iterations);
    // Weighted sum, so the checksum depends on which node got which rank.
    let checksum: f64 = rank
        .iter()
        .enumerate()
        .map(|(i, r)| r * ((i % 1000) as f64 + 1.0))
        .sum();
    let top = rank
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i)
        .unwrap_or(0);
    println!(
        "pagerank nodes={nodes} edges={} iterations={iterations} top={top} checksum={checksum:.12}",
        g.targets.len()
    );
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_sum_to_one() {
        let g = build(1000);
        let r = pagerank(&g, 30);
        let sum: f64 = r.iter().sum();
        assert!((sum - 1.0).abs() < 1e-9, "{sum}");
    }
}
