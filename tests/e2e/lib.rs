//! The end-to-end harness: every test drives the real `isola` binary, as root, in its own
//! `ISOLA_ROOT` holding a copy of the built-in sample image.

pub mod support {
    //! Servers the registry tests run: docker-registry, an HTTP front, a token service.
    pub mod front;
    pub mod registry;
    pub mod token;
}

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// The isola binary under test: `$ISOLA_BIN`, or the workspace's release build.
/// The isola under test. Asking for it moves the calling thread into a network namespace of
/// its own first (see `own_netns`), so whatever the test then starts runs there.
pub fn bin() -> PathBuf {
    own_netns();
    std::env::var_os("ISOLA_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/release/isola"))
}

/// A static workload of tests/workloads (the sample image has them too), to run on the host.
pub fn workload(name: &str) -> PathBuf {
    repo()
        .join("target/x86_64-unknown-linux-gnu/release")
        .join(name)
}

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn require_root() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc_geteuid() } != 0 {
        panic!("the end-to-end tests need root (namespaces, cgroups, mounts): run scripts/test as root");
    }
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

/// Moves the calling thread, once, into a new network namespace with its loopback up: every
/// process it starts after (isola, the workloads, registries, servers) is there. isola's
/// default network makes a bridge and firewall rules wherever it runs, and a test may make
/// them only in a namespace of its own, never in the machine's. Each test runs on a thread
/// of its own, so each gets its own namespace; threads it spawns inherit it.
pub fn own_netns() {
    thread_local! {
        static MOVED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    if MOVED.get() {
        return;
    }
    // SAFETY: unshare(2) takes flags and touches no memory of ours; CLONE_NEWNET alone moves
    // only this thread, which the other threads of the harness do not depend on.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert_eq!(
        rc,
        0,
        "unshare(CLONE_NEWNET): {}",
        std::io::Error::last_os_error()
    );
    loopback_up();
    MOVED.set(true);
}

/// `ip link set lo up`, without needing `ip` (the emulated test host has few programs).
fn loopback_up() {
    // SAFETY: socket(2) takes no pointers.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
    // SAFETY: `fd` is new and ours.
    let sock = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    // SAFETY: ifreq is plain data; all zeroes is an empty request.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    req.ifr_name[..2].copy_from_slice(&[b'l' as libc::c_char, b'o' as libc::c_char]);
    let fd = std::os::fd::AsRawFd::as_raw_fd(&sock);
    // SAFETY: SIOCGIFFLAGS and SIOCSIFFLAGS read and fill the ifreq `req` points to.
    unsafe {
        assert_eq!(
            libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req),
            0,
            "lo: flags"
        );
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        assert_eq!(libc::ioctl(fd, libc::SIOCSIFFLAGS, &mut req), 0, "lo: up");
    }
}

/// The sample image's store of this test binary.
static BASE: OnceLock<PathBuf> = OnceLock::new();

/// Removes `BASE` when the test binary exits (the harness ends with exit(3), which runs it).
extern "C" fn remove_base() {
    if let Some(dir) = BASE.get() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// A store with the sample image, built once per test binary with scripts/make-sample-image.
fn base() -> &'static Path {
    BASE.get_or_init(|| {
        require_root();
        let dir = std::env::temp_dir().join(format!("isola-e2e-base-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // SAFETY: atexit(3) with a function that takes nothing and touches only BASE.
        unsafe { libc::atexit(remove_base) };
        let out = Command::new(repo().join("scripts/make-sample-image"))
            .arg(bin())
            .env("ISOLA_ROOT", &dir)
            .output()
            .expect("running scripts/make-sample-image");
        assert!(
            out.status.success(),
            "make-sample-image failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
}

/// One test's isola root.
pub struct Env {
    pub root: PathBuf,
}

/// How long one isola invocation may take before the harness calls it hung.
pub const WATCHDOG: std::time::Duration = std::time::Duration::from_secs(300);

/// What one isola invocation did.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        use std::os::unix::process::ExitStatusExt;
        Run {
            code: o
                .status
                .code()
                .unwrap_or_else(|| 128 + o.status.signal().unwrap_or(0)),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Env {
    /// A root holding the sample image.
    pub fn new() -> Env {
        let env = Env::empty();
        let st = Command::new("cp")
            .arg("-a")
            .arg(base().join("images"))
            .arg(env.root.join("images"))
            .status()
            .unwrap();
        assert!(st.success());
        env
    }

    /// A root with no images at all.
    pub fn empty() -> Env {
        require_root();
        own_netns();
        let root = std::env::temp_dir().join(
            format!(
                "isola-e2e-{}-{:?}-{}",
                std::process::id(),
                std::thread::current().id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos()
            )
            .replace(['(', ')'], ""),
        );
        std::fs::create_dir_all(&root).unwrap();
        Env { root }
    }

    /// `isola ARGS` with this env's root; stdin is /dev/null.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.args(args)
            .env("ISOLA_ROOT", &self.root)
            .stdin(Stdio::null());
        c
    }

    /// `isola ARGS`, bounded: a run that hangs fails the test after `WATCHDOG` instead of
    /// stalling the whole suite (isola is killed, and with it any VM it runs).
    pub fn isola(&self, args: &[&str]) -> Run {
        self.isola_with(args, &[])
    }

    /// `isola ARGS` with extra environment variables, bounded like `isola`.
    pub fn isola_with(&self, args: &[&str], vars: &[(&str, &str)]) -> Run {
        let mut cmd = self.cmd(args);
        cmd.envs(vars.iter().copied());
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running isola");
        let drain = |mut r: Box<dyn std::io::Read + Send>| {
            std::thread::spawn(move || {
                let mut v = Vec::new();
                let _ = r.read_to_end(&mut v);
                v
            })
        };
        let out = drain(Box::new(child.stdout.take().unwrap()));
        let err = drain(Box::new(child.stderr.take().unwrap()));
        let started = std::time::Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > WATCHDOG {
                let _ = child.kill();
                let _ = child.wait();
                panic!("isola {args:?} hung: killed after {WATCHDOG:?}");
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        Output {
            status,
            stdout: out.join().unwrap(),
            stderr: err.join().unwrap(),
        }
        .into()
    }

    /// `isola run --rm ARGS`, expecting success; returns stdout.
    pub fn run_ok(&self, args: &[&str]) -> String {
        let mut all = vec!["run", "--rm"];
        all.extend_from_slice(args);
        let r = self.isola(&all);
        assert_eq!(r.code, 0, "isola {all:?} failed: {}", r.stderr);
        r.stdout
    }

    /// `isola ARGS` (a shell command line's words) inside a terminal `script(1)` makes,
    /// `input` typed into it; its status and what the terminal showed.
    pub fn in_terminal(&self, args: &str, input: &str) -> (i32, String) {
        use std::io::Write;
        let mut child = Command::new("script")
            .args(["-qec", &format!("{} {args}", bin().display()), "/dev/null"])
            .env("ISOLA_ROOT", &self.root)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("script(1), from util-linux");
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.as_bytes()).unwrap();
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// Asserts that no container, half-made volume, run state, mount, cgroup or process of this
    /// root is left.
    pub fn assert_clean(&self) {
        let entries = |p: PathBuf| -> Vec<String> {
            std::fs::read_dir(&p)
                .map(|rd| {
                    rd.filter_map(|e| e.ok())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default()
        };
        let containers = entries(self.root.join("containers"));
        assert!(containers.is_empty(), "container dirs left: {containers:?}");
        let temporary: Vec<String> = entries(self.root.join("vm"))
            .into_iter()
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(
            temporary.is_empty(),
            "half-built disk images left: {temporary:?}"
        );
        let volumes: Vec<String> = entries(self.root.join("volumes"))
            .into_iter()
            .filter(|n| n.starts_with('.') && n != ".lock")
            .collect();
        assert!(
            volumes.is_empty(),
            "half-made or half-removed volumes left: {volumes:?}"
        );
        let states = entries(self.root.join("run/containers"));
        assert!(states.is_empty(), "run state left: {states:?}");
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let root = self.root.to_string_lossy();
        let left: Vec<&str> = mounts
            .lines()
            .filter(|l| l.contains(root.as_ref()))
            .collect();
        assert!(left.is_empty(), "mounts left: {left:?}");
    }
}

/// `runc run` of `bundle` as container `isola-e2e-NAME-PID`, stdin /dev/null: the peer that
/// runs the same bundle.
pub fn runc_run(bundle: &Path, name: &str) -> Output {
    Command::new("runc")
        .args(["run", "-b"])
        .arg(bundle)
        .arg(format!("isola-e2e-{name}-{}", std::process::id()))
        .stdin(Stdio::null())
        .output()
        .expect("runc is installed by scripts/test")
}

/// Whether this host runs VM isolation; when not, says so loudly (the test host runs the
/// tests that need it: tests/e2e/testhost.rs fails a suite that prints this there).
pub fn vm_capable(env: &Env) -> bool {
    let r = env.isola(&["doctor", "--json"]);
    let ok = r.stdout.contains("\"vm\": true");
    if !ok {
        eprintln!(
            "NOT RUN HERE: this host cannot run VM isolation (see `isola doctor`); \
             tests/e2e/testhost.rs runs these tests inside the emulated test host"
        );
    }
    ok
}

/// Cgroup directories of the container whose ID starts with `short_id` (a cgroup cannot be
/// removed while a process is in it, so none left also means no process left).
pub fn cgroups_of(short_id: &str) -> Vec<PathBuf> {
    let mut tops = vec![PathBuf::from("/sys/fs/cgroup")];
    if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
        tops.extend(rd.filter_map(|e| e.ok()).map(|e| e.path()));
    }
    let mut found = Vec::new();
    for top in tops {
        if let Ok(rd) = std::fs::read_dir(top.join("isola")) {
            for e in rd.filter_map(|e| e.ok()) {
                if e.file_name().to_string_lossy().starts_with(short_id) {
                    found.push(e.path());
                }
            }
        }
    }
    found
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = Command::new(bin())
            .arg("cleanup")
            .env("ISOLA_ROOT", &self.root)
            .output();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

impl Default for Env {
    fn default() -> Self {
        Env::new()
    }
}

/// The cgroup hierarchies mounted on this host (each v1 controller's and the v2 one).
pub fn cgroup_tops() -> Vec<PathBuf> {
    let mut tops = vec![PathBuf::from("/sys/fs/cgroup")];
    if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
        tops.extend(rd.filter_map(|e| e.ok()).map(|e| e.path()));
    }
    tops.retain(|t| t.join("cgroup.procs").exists());
    tops.sort();
    tops.dedup();
    tops
}

/// Cgroups `/isola/ID` made by a test in every hierarchy, as an isola killed after making a
/// container's cgroup leaves them; removed on drop whatever the test's outcome.
pub struct PlantedCgroups {
    pub id: String,
}

impl PlantedCgroups {
    pub fn new(id: &str) -> PlantedCgroups {
        for top in cgroup_tops() {
            std::fs::create_dir_all(top.join("isola").join(id)).unwrap();
        }
        PlantedCgroups { id: id.to_string() }
    }
}

impl Drop for PlantedCgroups {
    fn drop(&mut self) {
        for top in cgroup_tops() {
            let _ = std::fs::remove_dir(top.join("isola").join(&self.id));
        }
    }
}

/// A container-like ID no isola made: `c` repeated, with this process's pid in front.
/// `isola compare --json --output PAGE sample sh -c 'echo hi'` in `env`, asserted to succeed:
/// its table, and its columns' JSON by level.
pub fn compare_run(env: &Env, page: &Path) -> (String, BTreeMap<String, serde_json::Value>) {
    let r = env.isola(&[
        "compare",
        "--json",
        "--output",
        &page.to_string_lossy(),
        "sample",
        "sh",
        "-c",
        "echo hi",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let split = r.stdout.find("\n[").expect("a JSON array after the table") + 1;
    let (table, json) = r.stdout.split_at(split);
    let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    let by_level = v
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["level"].as_str().unwrap().to_string(), c.clone()))
        .collect();
    (format!("{table}{}", r.stderr), by_level)
}

/// `isola bench pagerank` in `env` with small sizes at `levels`, 1 and 2 instances, asserted
/// to succeed: its stderr and the rows of the CSV it wrote in `out` (split at commas).
pub fn bench_run(env: &Env, levels: &str, out: &Path) -> (String, Vec<Vec<String>>) {
    let r = env.isola(&[
        "bench",
        "pagerank",
        "--levels",
        levels,
        "--instances",
        "1,2",
        "--nodes",
        "3000",
        "--iterations",
        "3",
        "--output",
        &out.to_string_lossy(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("completion (ms)"), "{}", r.stdout);
    let files = ["pagerank.csv", "pagerank.svg", "pagerank.png"].map(|f| out.join(f));
    let said = format!(
        "isola bench: wrote {}, {} and {}",
        files[0].display(),
        files[1].display(),
        files[2].display()
    );
    assert!(r.stderr.contains(&said), "{}", r.stderr);
    let csv = std::fs::read_to_string(out.join("pagerank.csv")).unwrap();
    let rows = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(String::from).collect())
        .collect();
    (r.stderr, rows)
}

/// A PNG's size and pixels (RGB; an alpha channel is dropped), read by the `png` crate — a
/// reader that is not isola's writer.
pub fn png_pixels(path: &Path) -> (u32, u32, Vec<[u8; 3]>) {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut reader = png::Decoder::new(std::io::BufReader::new(file))
        .read_info()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut buf = vec![0; reader.output_buffer_size().expect("a size")];
    let frame = reader
        .next_frame(&mut buf)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(frame.bit_depth, png::BitDepth::Eight, "{}", path.display());
    let step = match frame.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => panic!("{}: colour type {other:?}", path.display()),
    };
    let pixels = buf[..frame.buffer_size()]
        .chunks(step)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    (frame.width, frame.height, pixels)
}

/// How many pixels of the bench plot's PNG have each level's colour (bare, container, vm).
pub fn plot_level_pixels(path: &Path) -> [usize; 3] {
    let (_, _, pixels) = png_pixels(path);
    [[0x59, 0xa1, 0x4f], [0x4e, 0x79, 0xa7], [0xe1, 0x57, 0x59]]
        .map(|c| pixels.iter().filter(|p| **p == c).count())
}

/// The `explain: ...` lines of a run's stderr (`isola run --explain`), in order.
pub fn explained(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("explain: "))
        .collect()
}

pub fn fake_id(tag: char) -> String {
    let pid = format!("{:08x}", std::process::id());
    format!("{pid}{}", tag.to_string().repeat(64 - pid.len()))
}

/// Listens on a unix socket and takes the one descriptor sent to it (runc's console socket).
pub fn receive_fd(listener: &std::os::unix::net::UnixListener) -> std::os::fd::OwnedFd {
    let (stream, _) = listener.accept().unwrap();
    let mut buf = [0u8; 64];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut control = [0u8; 64];
    // SAFETY: msghdr is plain data; every pointer in it refers to a live local buffer.
    let fd = unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = control.len();
        assert!(libc::recvmsg(std::os::fd::AsRawFd::as_raw_fd(&stream), &mut msg, 0) > 0);
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        assert!(!cmsg.is_null() && (*cmsg).cmsg_type == libc::SCM_RIGHTS);
        std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<i32>())
    };
    // SAFETY: SCM_RIGHTS gave us a new descriptor that nothing else owns.
    unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) }
}

/// Lazily unmounts everything mounted at or below `dir`, deepest first (what a client such as
/// podman or containerd left there).
pub fn unmount_below(dir: &Path) {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut ours: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| Path::new(m).starts_with(dir))
        .collect();
    ours.reverse();
    for m in ours {
        let _ = Command::new("umount").arg("-l").arg(m).status();
    }
}
