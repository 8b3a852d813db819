//! The workload's processes as the guest reports them (a runtime's `ps` of a VM): one line
//! each, `pid ppid uid command` separated by tabs, pids as the workload's PID namespace numbers
//! them (its first process is 1; 0 is "outside", guest init).

/// One process in the guest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestProcess {
    pub pid: u32,
    pub ppid: u32,
    pub uid: u32,
    /// Its command line, arguments joined by spaces (its name in brackets when it has none).
    pub command: String,
}

/// The payload for `list`.
pub fn encode(list: &[GuestProcess]) -> Vec<u8> {
    let mut out = String::new();
    for p in list {
        let command: String = p
            .command
            .chars()
            .map(|c| if c == '\t' || c == '\n' { ' ' } else { c })
            .collect();
        out.push_str(&format!("{}\t{}\t{}\t{command}\n", p.pid, p.ppid, p.uid));
    }
    out.into_bytes()
}

/// The list in a payload; `None` when it is not one.
pub fn decode(payload: &[u8]) -> Option<Vec<GuestProcess>> {
    let text = std::str::from_utf8(payload).ok()?;
    text.lines()
        .map(|line| {
            let mut f = line.splitn(4, '\t');
            Some(GuestProcess {
                pid: f.next()?.parse().ok()?,
                ppid: f.next()?.parse().ok()?,
                uid: f.next()?.parse().ok()?,
                command: f.next()?.to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_survives_the_trip_and_garbage_does_not_pass() {
        let list = vec![
            GuestProcess {
                pid: 1,
                ppid: 0,
                uid: 0,
                command: "sh -c while :; do\tsleep 1; done".into(),
            },
            GuestProcess {
                pid: 7,
                ppid: 1,
                uid: 1000,
                command: "[kworker]".into(),
            },
        ];
        let back = decode(&encode(&list)).unwrap();
        assert_eq!(back[0].command, "sh -c while :; do sleep 1; done");
        assert_eq!(back[1], list[1]);
        assert_eq!(decode(b""), Some(Vec::new()));
        assert_eq!(decode(b"1\t0\n"), None);
        assert_eq!(decode(b"x\t0\t0\tsh\n"), None);
        assert_eq!(decode(&[0xff, 0xfe]), None);
    }
}
