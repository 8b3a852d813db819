//! Allocates and touches memory, to show memory limits at work.
//!
//! usage: memhog MIB   — allocates MIB mebibytes one at a time, writing every page, then
//! prints "memhog: touched MIB MiB" and exits 0. Under a smaller limit it is OOM-killed.

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(mib) = std::env::args()
        .nth(1)
        .and_then(|s| s.parse::<usize>().ok())
    else {
        eprintln!("usage: memhog MIB");
        return ExitCode::from(2);
    };
    let mut chunks: Vec<Vec<u8>> = Vec::with_capacity(mib);
    for i in 0..mib {
        let mut chunk = vec![0u8; 1 << 20];
        for page in chunk.chunks_mut(4096) {
            page[0] = (i as u8) | 1;
        }
        chunks.push(chunk);
    }
    let sum: usize = chunks.iter().map(|c| c[0] as usize).sum();
    println!("memhog: touched {mib} MiB (check {sum})");
    let _ = std::io::stdout().flush();
    ExitCode::SUCCESS
}
