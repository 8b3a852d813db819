//! Finding the cgroup hierarchies from /proc/self/mountinfo.

use super::CgroupError;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// How the host mounts cgroups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// cgroup v2 only.
    Unified,
    /// cgroup v1 only.
    Legacy,
    /// v1 controllers, plus a v2 mount holding few or no controllers.
    Hybrid,
}

impl std::fmt::Display for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Layout::Unified => "v2",
            Layout::Legacy => "v1",
            Layout::Hybrid => "hybrid",
        })
    }
}

/// The mounted hierarchies.
#[derive(Clone, Debug)]
pub struct Hierarchies {
    pub layout: Layout,
    /// v1: controller name → mount point (co-mounted controllers share one).
    pub v1: BTreeMap<String, PathBuf>,
    /// v1: mount point → the mount's controller options (e.g. "cpu,cpuacct").
    pub v1_mounts: BTreeMap<PathBuf, String>,
    /// The cgroup2 mount, if any.
    pub v2: Option<PathBuf>,
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Hierarchies {
    /// Reads the host's layout.
    pub fn detect() -> Result<Hierarchies, CgroupError> {
        let text = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| super::io_err(std::path::Path::new("/proc/self/mountinfo"), e))?;
        Self::parse(&text)
    }

    /// Parses mountinfo text.
    pub fn parse(mountinfo: &str) -> Result<Hierarchies, CgroupError> {
        let mut v1 = BTreeMap::new();
        let mut v1_mounts = BTreeMap::new();
        let mut v2 = None;
        for line in mountinfo.lines() {
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let lf: Vec<&str> = left.split(' ').collect();
            let rf: Vec<&str> = right.split(' ').collect();
            if lf.len() < 5 || rf.len() < 3 {
                continue;
            }
            let mount_point = PathBuf::from(unescape(lf[4]));
            match rf[0] {
                "cgroup2" => {
                    v2.get_or_insert(mount_point);
                }
                "cgroup" => {
                    let mut ctrls = Vec::new();
                    for opt in rf[2].split(',') {
                        match opt {
                            "cpu" | "cpuacct" | "cpuset" | "memory" | "devices" | "freezer"
                            | "net_cls" | "blkio" | "perf_event" | "net_prio" | "hugetlb"
                            | "pids" | "rdma" | "misc" => ctrls.push(opt.to_string()),
                            o if o.starts_with("name=") => ctrls.push(o.to_string()),
                            _ => {}
                        }
                    }
                    if ctrls.is_empty() {
                        continue;
                    }
                    for c in &ctrls {
                        v1.entry(c.clone()).or_insert_with(|| mount_point.clone());
                    }
                    v1_mounts
                        .entry(mount_point)
                        .or_insert_with(|| ctrls.join(","));
                }
                _ => {}
            }
        }
        let layout = match (v1.keys().any(|k| !k.starts_with("name=")), &v2) {
            (true, Some(_)) => Layout::Hybrid,
            (true, None) => Layout::Legacy,
            (false, Some(_)) => Layout::Unified,
            (false, None) => return Err(CgroupError::NoCgroupFs),
        };
        Ok(Hierarchies {
            layout,
            v1,
            v1_mounts,
            v2,
        })
    }

    /// Controllers available: v1 hierarchies, or the v2 root's cgroup.controllers.
    pub fn controllers(&self) -> Vec<String> {
        match self.layout {
            Layout::Unified => self
                .v2
                .as_ref()
                .and_then(|p| std::fs::read_to_string(p.join("cgroup.controllers")).ok())
                .map(|s| s.split_whitespace().map(String::from).collect())
                .unwrap_or_default(),
            _ => self
                .v1
                .keys()
                .filter(|k| !k.starts_with("name="))
                .cloned()
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
30 23 0:26 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
32 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 30 0:29 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
34 30 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
";

    #[test]
    fn hybrid_and_unified() {
        let h = Hierarchies::parse(HYBRID).unwrap();
        assert_eq!(h.layout, Layout::Hybrid);
        assert_eq!(h.v1["memory"], PathBuf::from("/sys/fs/cgroup/memory"));
        assert_eq!(h.v1["cpu"], PathBuf::from("/sys/fs/cgroup/cpu"));
        assert_eq!(h.v2, Some(PathBuf::from("/sys/fs/cgroup/unified")));
        let u = Hierarchies::parse("1 0 0:1 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n").unwrap();
        assert_eq!(u.layout, Layout::Unified);
        assert!(Hierarchies::parse("").is_err());
    }

    #[test]
    fn unescapes_spaces() {
        assert_eq!(unescape("/a\\040b"), "/a b");
    }
}
