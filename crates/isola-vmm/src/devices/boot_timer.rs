//! The boot timer: guest init writes a phase byte to an I/O port at each step (init start,
//! workload start, workload exit) and the VMM notes when. Like Firecracker's boot-timer
//! device, it only records; a guest writing the port in a loop gets its first marks kept and
//! the rest ignored, so it cannot grow the VMM's memory.

use isola_guest_contract::boot::Phase;
use std::time::{Duration, Instant};

/// More marks than guest init ever writes; the rest are dropped.
const MAX_MARKS: usize = 32;
/// The phase guest init writes first.
const MARK_INIT_START: u8 = Phase::InitStart as u8;

pub struct BootTimer {
    started: Instant,
    marks: Vec<(u8, Duration)>,
}

impl BootTimer {
    /// Marks are timed from `started` (the VMM's start).
    pub fn new(started: Instant) -> BootTimer {
        BootTimer {
            started,
            marks: Vec::with_capacity(MAX_MARKS),
        }
    }

    pub fn record(&mut self, phase: u8) {
        if self.marks.len() < MAX_MARKS {
            self.marks.push((phase, self.started.elapsed()));
        }
    }

    /// Whether guest init has started.
    pub fn init_started(&self) -> bool {
        self.marks.iter().any(|(p, _)| *p == MARK_INIT_START)
    }

    pub fn into_marks(self) -> Vec<(u8, Duration)> {
        self.marks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_marks_keeps_the_first_and_stays_small() {
        let mut t = BootTimer::new(Instant::now());
        assert!(!t.init_started());
        t.record(MARK_INIT_START);
        t.record(3);
        for _ in 0..1_000_000 {
            t.record(0xff);
        }
        assert!(t.init_started());
        let marks = t.into_marks();
        assert_eq!(marks.len(), MAX_MARKS);
        assert_eq!((marks[0].0, marks[1].0), (MARK_INIT_START, 3));
        assert!(marks[0].1 <= marks[1].1);
    }
}
