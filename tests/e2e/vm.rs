//! Parity: one table of cases, run with `--isolation container` and `--isolation vm`, must give
//! identical results — exit status, stdout, stderr. Needs a KVM that runs unmodified guests;
//! where there is none (these development machines) each test says so loudly and returns, and
//! `testhost.rs` runs this whole binary inside the emulated test host, where there is one.

use isola_e2e::{vm_capable, Env, Run};
use std::io::{Read, Write};
use std::process::Stdio;

fn both(env: &Env, args: &[&str]) -> (Run, Run) {
    let run = |iso: &str| {
        let mut all = vec!["run", "--rm", "--isolation", iso];
        all.extend_from_slice(args);
        env.isola(&all)
    };
    (run("container"), run("vm"))
}

/// (arguments after `run --rm --isolation X`, expected status, expected stdout, expected stderr)
const CASES: &[(&[&str], i32, &str, &str)] = &[
    (&["sample", "true"], 0, "", ""),
    (&["sample", "sh", "-c", "exit 7"], 7, "", ""),
    (
        &["sample", "no-such-command"],
        127,
        "",
        "isola: exec: \"no-such-command\": executable file not found in $PATH\n",
    ),
    (
        &["sample", "/etc/passwd"],
        126,
        "",
        "isola: exec: \"/etc/passwd\": permission denied\n",
    ),
    (
        &["sample", "sh", "-c", "echo out; echo err >&2; echo out2"],
        0,
        "out\nout2\n",
        "err\n",
    ),
    (
        &[
            "-e",
            "GREETING=hi there",
            "sample",
            "sh",
            "-c",
            "echo \"$GREETING|$HOME|$PATH\"",
        ],
        0,
        "hi there|/root|/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n",
        "",
    ),
    (&["-w", "/tmp", "sample", "pwd"], 0, "/tmp\n", ""),
    (
        &["-u", "isola", "sample", "id"],
        0,
        "uid=1000(isola) gid=1000(isola) groups=10(wheel),100(users)\n",
        "",
    ),
    (
        &["-u", "1000:10", "sample", "sh", "-c", "id -u; id -g"],
        0,
        "1000\n10\n",
        "",
    ),
    (
        &["--hostname", "parity", "sample", "hostname"],
        0,
        "parity\n",
        "",
    ),
    (
        &["sample", "pagerank", "20000", "10"],
        0,
        "pagerank nodes=20000 edges=159429 iterations=10 top=2 checksum=489.612079711180\n",
        "",
    ),
    (&["--memory", "64m", "sample", "memhog", "400"], 137, "", ""),
    // The limits are the same cgroup v2 files around the workload, seen from its own cgroup
    // namespace (this suite runs on cgroup v2 hosts: the emulated test host).
    (&["sample", "cat", "/proc/self/cgroup"], 0, "0::/\n", ""),
    (
        &[
            "--memory",
            "64m",
            "sample",
            "cat",
            "/sys/fs/cgroup/memory.max",
        ],
        0,
        "67108864\n",
        "",
    ),
    (
        &["--cpus", "0.5", "sample", "cat", "/sys/fs/cgroup/cpu.max"],
        0,
        "50000 100000\n",
        "",
    ),
    (
        &[
            "--pids-limit",
            "10",
            "sample",
            "cat",
            "/sys/fs/cgroup/pids.max",
        ],
        0,
        "10\n",
        "",
    ),
    // Past --pids-limit, fork fails the same way.
    (
        &[
            "--pids-limit",
            "4",
            "sample",
            "sh",
            "-c",
            "for i in 1 2 3 4 5 6; do sleep 5 & done; echo never",
        ],
        2,
        "",
        "sh: can't fork: Resource temporarily unavailable\n",
    ),
    (
        &["sample", "sh", "-c", "sh -c 'kill -TERM $$'; exit $?"],
        143,
        "",
        "Terminated\n",
    ),
    // The workload is PID 1 and sees only its own processes.
    (
        &["sample", "ps"],
        0,
        "PID   USER     COMMAND\n    1 root     ps\n",
        "",
    ),
    // The same seccomp profile (isola's default) in both: the guest init installs the filter
    // the host compiled from config.json, as the container init does.
    (
        &[
            "sample",
            "sh",
            "-c",
            "sysprobe keyctl unshare_user mount personality_linux32 bpf getpid; \
             grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status",
        ],
        0,
        "keyctl EPERM\nunshare_user EPERM\nmount EPERM\npersonality_linux32 EPERM\nbpf EPERM\n\
         getpid ok\nNoNewPrivs:\t1\nSeccomp:\t2\n",
        "",
    ),
    (
        &[
            "--security-opt",
            "seccomp=unconfined",
            "sample",
            "sh",
            "-c",
            "sysprobe personality_linux32; grep '^Seccomp:' /proc/self/status",
        ],
        0,
        "personality_linux32 ok\nSeccomp:\t0\n",
        "",
    ),
    // The same capabilities (Docker's default set for root, none for another user): one
    // reading of the process spec (isola-process) in both inits.
    (
        &[
            "sample",
            "sh",
            "-c",
            "grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb)' /proc/self/status",
        ],
        0,
        "CapInh:\t0000000000000000\nCapPrm:\t00000000a80425fb\nCapEff:\t00000000a80425fb\n\
         CapBnd:\t00000000a80425fb\nCapAmb:\t0000000000000000\n",
        "",
    ),
    (
        &[
            "-u",
            "isola",
            "sample",
            "grep",
            "-E",
            "^Cap(Prm|Eff|Bnd)",
            "/proc/self/status",
        ],
        0,
        "CapPrm:\t0000000000000000\nCapEff:\t0000000000000000\nCapBnd:\t00000000a80425fb\n",
        "",
    ),
    // As PID 1, a signal without a handler does not end it — in both.
    (
        &["sample", "sh", "-c", "kill -TERM $$; echo alive"],
        0,
        "alive\n",
        "",
    ),
];

#[test]
fn both_isolation_levels_give_identical_results() {
    let env = Env::new();
    if !vm_capable(&env) {
        return;
    }
    for (args, code, stdout, stderr) in CASES {
        eprintln!("parity case {args:?}");
        let (c, v) = both(&env, args);
        assert_eq!(
            (c.code, c.stdout.as_str(), c.stderr.as_str()),
            (*code, *stdout, *stderr),
            "container {args:?}"
        );
        assert_eq!(
            (v.code, v.stdout.as_str(), v.stderr.as_str()),
            (*code, *stdout, *stderr),
            "vm {args:?}"
        );
    }
    env.assert_clean();
}

#[test]
fn a_file_written_inside_does_not_persist() {
    let env = Env::new();
    if !vm_capable(&env) {
        return;
    }
    for iso in ["container", "vm"] {
        let r = env.isola(&[
            "run",
            "--rm",
            "--isolation",
            iso,
            "sample",
            "sh",
            "-c",
            "echo x > /persist; cat /persist",
        ]);
        assert_eq!(
            (r.code, r.stdout.as_str()),
            (0, "x\n"),
            "{iso}: {}",
            r.stderr
        );
        let r = env.isola(&[
            "run",
            "--rm",
            "--isolation",
            iso,
            "sample",
            "ls",
            "/persist",
        ]);
        assert_ne!(r.code, 0, "{iso}: /persist survived");
    }
}

#[test]
fn the_vm_has_its_own_kernel() {
    let env = Env::new();
    if !vm_capable(&env) {
        return;
    }
    let (c, v) = both(&env, &["sample", "uname", "-r"]);
    assert_eq!(c.code, 0);
    assert_eq!(v.code, 0);
    let host = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(
        c.stdout.trim(),
        host.trim(),
        "a container shares the host's kernel"
    );
    assert_ne!(v.stdout.trim(), host.trim(), "a VM runs its own");
}

#[test]
fn vm_failures_are_one_line_and_bounded() {
    let env = Env::new();
    if !vm_capable(&env) {
        // Where VM isolation cannot run, asking for it is refused in one line naming the
        // reason, and nothing is left behind.
        let r = env.isola(&["run", "--rm", "--isolation", "vm", "sample", "true"]);
        assert_eq!(r.code, 125, "{}", r.stderr);
        assert!(r.stderr.contains("--isolation vm"), "{}", r.stderr);
        assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
        env.assert_clean();
        return;
    }
    let started = std::time::Instant::now();
    let r = env.isola(&[
        "run",
        "--rm",
        "--isolation",
        "vm",
        "--timeout",
        "5",
        "sample",
        "sleep",
        "600",
    ]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(r.stderr.contains("--timeout 5"), "{}", r.stderr);
    assert!(started.elapsed().as_secs() < 60);
    let r = env
        .cmd(&["run", "--rm", "--isolation", "vm", "sample", "true"])
        .env("ISOLA_GUEST_DIR", "/nonexistent")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(125), "{stderr}");
    assert!(stderr.contains("/nonexistent/vmlinux"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

#[test]
fn stdin_is_piped_only_with_interactive() {
    let env = Env::new();
    if !vm_capable(&env) {
        return;
    }
    // Binary data larger than the channel's buffers, and end of file, arrive intact.
    let input: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let digest = |iso: &str, interactive: bool| {
        let mut args = vec!["run", "--rm", "--isolation", iso];
        if interactive {
            args.push("-i");
        }
        args.extend_from_slice(&["sample", "sh", "-c", "wc -c; echo end"]);
        let mut child = env
            .cmd(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let data = input.clone();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&data);
        });
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    // A regular file as stdin (which epoll cannot watch) arrives whole too.
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &input[..1_000_000]).unwrap();
    for iso in ["container", "vm"] {
        let out = env
            .cmd(&[
                "run",
                "--rm",
                "-i",
                "--isolation",
                iso,
                "sample",
                "wc",
                "-c",
            ])
            .stdin(std::fs::File::open(file.path()).unwrap())
            .output()
            .unwrap();
        assert_eq!(
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).trim()
            ),
            (Some(0), "1000000"),
            "{iso} -i < file: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for iso in ["container", "vm"] {
        assert_eq!(
            digest(iso, true),
            (Some(0), "3000000\nend\n".to_string()),
            "{iso} -i"
        );
        assert_eq!(
            digest(iso, false),
            (Some(0), "0\nend\n".to_string()),
            "{iso} without -i"
        );
    }
}

#[test]
fn signals_reach_the_workload_in_both() {
    let env = Env::new();
    if !vm_capable(&env) {
        return;
    }
    for iso in ["container", "vm"] {
        let script = "trap 'echo got TERM; exit 143' TERM; echo ready; sleep 120 & wait";
        let mut child = env
            .cmd(&[
                "run",
                "--rm",
                "--isolation",
                iso,
                "sample",
                "sh",
                "-c",
                script,
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut ready = [0u8; 6];
        stdout.read_exact(&mut ready).unwrap();
        assert_eq!(&ready, b"ready\n", "{iso}");
        std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        let status = child.wait().unwrap();
        let mut rest = String::new();
        stdout.read_to_string(&mut rest).unwrap();
        assert_eq!(
            (status.code(), rest.as_str()),
            (Some(143), "got TERM\n"),
            "{iso}"
        );
    }
    env.assert_clean();
}

#[test]
fn a_damaged_root_disk_is_reported_removed_and_rebuilt() {
    let env = Env::new();
    if !vm_capable(&env) {
        return;
    }
    assert_eq!(env.run_ok(&["--isolation", "vm", "sample", "true"]), "");
    let disks: Vec<_> = std::fs::read_dir(env.root.join("vm"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(disks.len(), 1, "one disk image per image: {disks:?}");
    let disk = &disks[0];
    assert!(disk.extension().is_some_and(|e| e == "ext4"), "{disk:?}");
    // Wipe the ext4 superblock.
    let f = std::fs::OpenOptions::new().write(true).open(disk).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &[0u8; 4096], 1024).unwrap();
    drop(f);
    let r = env.isola(&["run", "--rm", "--isolation", "vm", "sample", "true"]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(r.stderr.contains("root disk image"), "{}", r.stderr);
    assert!(
        r.stderr.contains(&disk.display().to_string()),
        "{}",
        r.stderr
    );
    assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
    assert!(!disk.exists(), "the damaged image must be gone");
    // Rebuilt, on a terminal: a bar while mke2fs writes it (none above, off a terminal).
    let (code, screen) = env.in_terminal("run --rm --isolation vm sample echo ok", "");
    assert_eq!(code, 0, "{screen}");
    assert!(screen.contains("building the VM's root disk ["), "{screen}");
    assert!(screen.contains("ok\r\n"), "{screen}");
    assert!(disk.exists());
    env.assert_clean();
}

#[test]
fn cpus_become_whole_vcpus() {
    let env = Env::new();
    if !vm_capable(&env) {
        return;
    }
    let nproc = |args: &[&str]| {
        let mut all = vec!["--isolation", "vm"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["sample", "nproc"]);
        env.run_ok(&all)
    };
    assert_eq!(nproc(&[]), "1\n", "one vCPU by default");
    assert_eq!(nproc(&["--cpus", "2"]), "2\n");
    assert_eq!(nproc(&["--cpus", "1.5"]), "2\n", "rounded up");
    // More vCPUs than the host has CPUs is fine (they are threads); past the VMM's limit, not.
    let r = env.isola(&[
        "run",
        "--rm",
        "--isolation",
        "vm",
        "--cpus",
        "17",
        "sample",
        "true",
    ]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(r.stderr.contains("0.01 to 16"), "{}", r.stderr);
    assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
    // Work spread over both CPUs still gives the same answer.
    let out = env.run_ok(&[
        "--isolation",
        "vm",
        "--cpus",
        "2",
        "sample",
        "sh",
        "-c",
        "pagerank 20000 10 & pagerank 20000 10; wait",
    ]);
    let line = "pagerank nodes=20000 edges=159429 iterations=10 top=2 checksum=489.612079711180\n";
    assert_eq!(out, line.repeat(2));
}

/// `isola run --isolation vm ... sample ARGS` with the guest artifacts taken from `guest_dir`.
fn run_with_guest(
    env: &Env,
    guest_dir: &std::path::Path,
    extra_env: &[(&str, &str)],
    args: &[&str],
) -> Run {
    let mut all = vec!["run", "--rm", "--isolation", "vm", "sample"];
    all.extend_from_slice(args);
    let dir = guest_dir.to_str().unwrap();
    let mut vars = vec![("ISOLA_GUEST_DIR", dir)];
    vars.extend_from_slice(extra_env);
    env.isola_with(&all, &vars)
}

fn built_guest() -> std::path::PathBuf {
    isola_e2e::repo().join("target/guest")
}

#[test]
fn a_bzimage_boots_too() {
    let env = Env::new();
    if !vm_capable(&env) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(built_guest().join("bzImage"), dir.path().join("bzImage")).unwrap();
    std::fs::copy(built_guest().join("init"), dir.path().join("init")).unwrap();
    let r = run_with_guest(&env, dir.path(), &[], &["sh", "-c", "echo booted; exit 3"]);
    assert_eq!((r.code, r.stdout.as_str()), (3, "booted\n"), "{}", r.stderr);
}

#[test]
fn a_kernel_panic_and_a_guest_that_never_boots_are_one_line_each() {
    let env = Env::new();
    if !vm_capable(&env) {
        return;
    }
    // An init the kernel cannot execute: it panics (no working init), and resets.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(built_guest().join("vmlinux"), dir.path().join("vmlinux")).unwrap();
    std::fs::write(dir.path().join("init"), "not a program\n").unwrap();
    let started = std::time::Instant::now();
    let r = run_with_guest(&env, dir.path(), &[], &["true"]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(r.stderr.contains("kernel panic?"), "{}", r.stderr);
    assert!(
        r.stderr.contains("Kernel panic"),
        "the kernel's own words: {}",
        r.stderr
    );
    assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);

    // A "kernel" that spins at its entry point: stopped at the boot time limit.
    let spin = dir.path().join("spin");
    std::fs::create_dir(&spin).unwrap();
    std::fs::write(spin.join("vmlinux"), spinning_elf()).unwrap();
    std::fs::copy(built_guest().join("init"), spin.join("init")).unwrap();
    let r = run_with_guest(&env, &spin, &[("ISOLA_BOOT_TIMEOUT", "3")], &["true"]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(r.stderr.contains("did not boot within 3s"), "{}", r.stderr);
    assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
    assert!(started.elapsed().as_secs() < 120);
    env.assert_clean();
}

/// The smallest ELF64 executable whose code, loaded at 1 MiB, is `jmp $`.
fn spinning_elf() -> Vec<u8> {
    let entry: u64 = 0x10_0000;
    let mut e = Vec::new();
    e.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0]);
    e.extend_from_slice(&[0; 8]);
    e.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    e.extend_from_slice(&0x3eu16.to_le_bytes()); // x86-64
    e.extend_from_slice(&1u32.to_le_bytes());
    e.extend_from_slice(&entry.to_le_bytes());
    e.extend_from_slice(&64u64.to_le_bytes()); // program headers right after this header
    e.extend_from_slice(&0u64.to_le_bytes()); // no section headers
    e.extend_from_slice(&0u32.to_le_bytes());
    for v in [64u16, 56, 1, 64, 0, 0] {
        e.extend_from_slice(&v.to_le_bytes());
    }
    // One PT_LOAD: file offset 0x1000 → physical 1 MiB, 2 bytes.
    e.extend_from_slice(&1u32.to_le_bytes());
    e.extend_from_slice(&5u32.to_le_bytes()); // R+X
    for v in [0x1000u64, entry, entry, 2, 2, 0x1000] {
        e.extend_from_slice(&v.to_le_bytes());
    }
    e.resize(0x1000, 0);
    e.extend_from_slice(&[0xeb, 0xfe]); // jmp $
    e
}

#[test]
fn timings_show_each_phase_in_order() {
    let env = Env::new();
    if !vm_capable(&env) {
        return;
    }
    let r = env.isola(&[
        "run",
        "--rm",
        "--isolation",
        "vm",
        "--timings",
        "sample",
        "true",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let phases = [
        "isola start",
        "vmm start",
        "kernel entry",
        "init start",
        "workload start",
        "workload exit",
        "vm gone",
    ];
    let mut last = f64::MIN;
    for phase in phases {
        let line = r
            .stderr
            .lines()
            .find(|l| l.starts_with(&format!("timings: {phase} ")))
            .unwrap_or_else(|| panic!("no {phase:?} in {}", r.stderr));
        let ms: f64 = line
            .split_whitespace()
            .rev()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            ms >= last,
            "{phase} at {ms} ms comes before {last} ms: {}",
            r.stderr
        );
        last = ms;
    }
    assert!(
        r.stderr.contains("timings: memory: peak RSS"),
        "{}",
        r.stderr
    );
}

#[test]
fn explain_narrates_the_kvm_steps_and_the_exits() {
    let env = Env::new();
    if !vm_capable(&env) {
        return;
    }
    let r = env.isola(&[
        "run",
        "--rm",
        "--explain",
        "--isolation",
        "vm",
        "sample",
        "echo",
        "hi",
    ]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "hi\n"), "{}", r.stderr);
    let said = isola_e2e::explained(&r.stderr);
    let at = |what: &str| {
        said.iter()
            .position(|l| l.contains(what))
            .unwrap_or_else(|| panic!("no {what:?} in {said:#?}"))
    };
    // In the order it happens, with the real values: the memory region's end and size agree,
    // the command line names the devices, CPUID shows the TSC-deadline bit isola adds
    // (leaf 1, ECX bit 24) and the boot CPU starts at the kernel's entry in long mode.
    let order = [
        "root disk: ",
        "the VMM: process ",
        "KVM_CREATE_VM",
        "KVM_SET_USER_MEMORY_REGION slot 0: guest physical 0x0-",
        "device: virtio-mmio #0 (console)",
        "device: virtio-mmio #1 (block)",
        "kernel command line at 0x20000: console=ttyS0",
        "KVM_SET_CPUID2 with KVM's offer changed: ",
        "vCPU 0 at entry",
        "the VMM jails itself",
        "KVM_RUN on 1 vCPU",
        "exit 1 at ",
        "exit 40 at ",
        "the guest reset the machine through the i8042",
        "the VMM handled ",
    ];
    for pair in order.windows(2) {
        assert!(
            at(pair[0]) < at(pair[1]),
            "{pair:?} out of order: {said:#?}"
        );
    }
    let region = said[at("KVM_SET_USER_MEMORY_REGION")];
    let end = region
        .split("0x0-0x")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    let mib = region
        .split(" (")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    assert_eq!(
        u64::from_str_radix(end, 16).unwrap() + 1,
        mib.parse::<u64>().unwrap() << 20,
        "{region}"
    );
    assert!(said[at("kernel command line")].contains("virtio_mmio.device=4K@0xd0001000:6"));
    assert!(
        said[at("KVM_SET_CPUID2")].contains("leaf 0x1.0 ecx"),
        "{said:#?}"
    );
    assert!(said[at("vCPU 0 at entry")].contains("(long mode on)"));
    assert!(!said.iter().any(|l| l.contains("exit 41 at ")), "{said:#?}");
    // The counts add up to the total said, and the block device's queue was notified.
    let total: u64 = said[at("the VMM handled ")]
        .split_whitespace()
        .nth(4)
        .and_then(|n| n.parse().ok())
        .unwrap();
    let counted: u64 = said[at("the VMM handled ") + 1..]
        .iter()
        .filter(|l| l.contains(" × "))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum();
    assert_eq!(total, counted, "{said:#?}");
    assert!(total > 40, "{said:#?}");
    assert!(said
        .iter()
        .any(|l| l.contains("× MMIO write to virtio-mmio #1 (block)")));
    // Without the flag, not a word.
    let r = env.isola(&["run", "--rm", "--isolation", "vm", "sample", "true"]);
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
}

/// `script` gives isola a terminal of its own, as a user's shell would; returns (status,
/// what the terminal showed, without carriage returns).
fn in_a_terminal(env: &Env, shell: &str, input: &[u8]) -> (Option<i32>, String) {
    let cmd = shell
        .replace("{isola}", &isola_e2e::bin().display().to_string())
        .replace("{root}", &env.root.display().to_string());
    let mut child = std::process::Command::new("script")
        .args(["-eqc", &cmd, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script (util-linux) is installed by scripts/test");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input).unwrap();
    // Keep the terminal's input open while the workload runs (end of input would hang it up).
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).replace('\r', ""),
    )
}

#[test]
fn tty_gives_a_real_terminal_in_both() {
    let env = Env::new();
    if !vm_capable(&env) {
        return;
    }
    for iso in ["container", "vm"] {
        // A terminal of the host's size; stdout and stderr both go to it.
        let (code, text) = in_a_terminal(
            &env,
            &format!(
                "stty rows 33 cols 77; ISOLA_ROOT={{root}} {{isola}} run --rm -t --isolation {iso} \
                 sample sh -c 'tty; stty size; echo to-err >&2; exit 3'"
            ),
            b"",
        );
        assert_eq!(code, Some(3), "{iso}: {text}");
        assert!(
            text.contains("/dev/pts/0\n33 77\nto-err\n"),
            "{iso}: {text}"
        );

        // -i -t: keys reach the workload through the pty's line discipline (echoed back).
        let (code, text) = in_a_terminal(
            &env,
            &format!(
                "ISOLA_ROOT={{root}} {{isola}} run --rm -i -t --isolation {iso} sample \
                 sh -c 'read line; echo \"got [$line]\"; exit 4'"
            ),
            b"hello there\n",
        );
        assert_eq!(code, Some(4), "{iso}: {text}");
        assert!(text.contains("got [hello there]\n"), "{iso}: {text}");

        // Resizing isola's terminal resizes the workload's (SIGWINCH follows in both).
        let (code, text) = in_a_terminal(
            &env,
            &format!(
                "stty rows 33 cols 77; (trap '' TTOU; sleep 6; stty rows 40 cols 100 < /dev/tty) & \
                 ISOLA_ROOT={{root}} {{isola}} run --rm -t --isolation {iso} sample sh -c \
                 'i=0; while [ \"$(stty size)\" = \"33 77\" ] && [ $i -lt 900 ]; do \
                  sleep 0.1; i=$((i+1)); done; echo \"size $(stty size)\"'"
            ),
            b"",
        );
        assert_eq!(code, Some(0), "{iso}: {text}");
        assert!(text.contains("size 40 100\n"), "{iso}: {text}");
    }
    env.assert_clean();
}

#[test]
fn vm_runs_are_listed_named_and_removed_like_containers() {
    let env = Env::new();
    if !vm_capable(&env) {
        return;
    }
    // Without --rm the VM's record stays, with its exit status, until removed.
    let r = env.isola(&[
        "run",
        "--isolation",
        "vm",
        "--name",
        "vm-kept",
        "sample",
        "sh",
        "-c",
        "exit 4",
    ]);
    assert_eq!(r.code, 4, "{}", r.stderr);
    let ps = env.isola(&["ps", "-a"]).stdout;
    let line = ps.lines().find(|l| l.contains("vm-kept")).unwrap_or("");
    assert!(line.contains(" vm ") && line.contains("Exited (4)"), "{ps}");
    let r = env.isola(&[
        "run",
        "--isolation",
        "vm",
        "--name",
        "vm-kept",
        "sample",
        "true",
    ]);
    assert_eq!(r.code, 125);
    assert!(r.stderr.contains("already in use"), "{}", r.stderr);
    assert_eq!(env.isola(&["rm", "vm-kept"]).code, 0);

    // A running VM is listed as up, and `rm -f` ends it: its isola (the VMM) exits.
    let mut child = env
        .cmd(&[
            "run",
            "--rm",
            "--isolation",
            "vm",
            "--name",
            "vm-up",
            "sample",
            "sh",
            "-c",
            "echo ready; sleep 600",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = [0u8; 6];
    child.stdout.take().unwrap().read_exact(&mut ready).unwrap();
    let ps = env.isola(&["ps"]).stdout;
    let line = ps.lines().find(|l| l.contains("vm-up")).unwrap_or("");
    assert!(line.contains(" vm ") && line.contains("Up"), "{ps}");
    assert_eq!(env.isola(&["rm", "vm-up"]).code, 1, "running: needs -f");
    let r = env.isola(&["rm", "-f", "vm-up"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let status = child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    assert!(!env.isola(&["ps", "-a"]).stdout.contains("vm-up"));
    env.assert_clean();
}

/// The host processes whose parent is `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().filter_map(|e| e.ok()) {
        let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let status = std::fs::read_to_string(format!("/proc/{p}/status")).unwrap_or_default();
        if status.lines().any(|l| l == format!("PPid:\t{pid}")) {
            out.push(p);
        }
    }
    out
}

fn status_field(status: &str, key: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} in {status}"))
        .trim()
        .to_string()
}

/// The VMM is not isola: it is a child process in its own namespaces, as a uid of its own,
/// without capabilities, under seccomp in every thread, in an empty root, bounded by a cgroup,
/// holding no host file but the read-only root disk.
#[test]
fn the_vmm_runs_jailed() {
    let env = Env::new();
    if !vm_capable(&env) {
        return;
    }
    let script = "trap 'exit 143' TERM; echo ready; sleep 120 & wait";
    let mut isola = env
        .cmd(&[
            "run",
            "--rm",
            "--isolation",
            "vm",
            "sample",
            "sh",
            "-c",
            script,
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = isola.stdout.take().unwrap();
    let mut ready = [0u8; 6];
    stdout.read_exact(&mut ready).unwrap();
    assert_eq!(&ready, b"ready\n");

    let vmm = children_of(isola.id());
    assert_eq!(vmm.len(), 1, "isola has one child, the VMM: {vmm:?}");
    let vmm = vmm[0];
    let proc = |p: &str| format!("/proc/{vmm}/{p}");
    let status = std::fs::read_to_string(proc("status")).unwrap();
    let id = (0x4000_0000 + isola.id()).to_string();
    for key in ["Uid", "Gid"] {
        let ids: Vec<String> = status_field(&status, key)
            .split_whitespace()
            .map(String::from)
            .collect();
        assert_eq!(ids, vec![id.clone(); 4], "{key}: {status}");
    }
    assert_eq!(status_field(&status, "Groups"), "");
    for key in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(status_field(&status, key), "0000000000000000", "{key}");
    }
    assert_eq!(status_field(&status, "NoNewPrivs"), "1");
    // PID 1 of its own PID namespace.
    assert_eq!(
        status_field(&status, "NSpid"),
        format!("{vmm}\t1"),
        "{status}"
    );
    // Every thread (supervisor, vCPU, input) under its seccomp filter.
    let tasks: Vec<_> = std::fs::read_dir(proc("task"))
        .unwrap()
        .filter_map(|e| e.ok())
        .collect();
    assert!(tasks.len() >= 3, "{} threads", tasks.len());
    for t in &tasks {
        let s = std::fs::read_to_string(t.path().join("status")).unwrap();
        assert_eq!(status_field(&s, "Seccomp"), "2", "{:?}", t.path());
    }
    for ns in ["mnt", "pid", "net", "ipc", "uts"] {
        let theirs = std::fs::read_link(proc(&format!("ns/{ns}"))).unwrap();
        let ours = std::fs::read_link(format!("/proc/self/ns/{ns}")).unwrap();
        assert_ne!(theirs, ours, "{ns} namespace shared with the host");
    }
    let root: Vec<_> = std::fs::read_dir(proc("root")).unwrap().collect();
    assert!(root.is_empty(), "the VMM's root is not empty: {root:?}");
    // What it holds: KVM's VM and vCPU descriptors (not /dev/kvm), eventfds, pipes, epoll and
    // a timer, /dev/null, the root disk read-only, its network interface's tap (the default
    // network; a tap descriptor reads as /dev/net/tun) and, with shared directories only, guest
    // memory as a memfd (otherwise it is anonymous memory, no descriptor). No
    // terminal, no socket (none without shared directories), no other file.
    for fd in std::fs::read_dir(proc("fd"))
        .unwrap()
        .filter_map(|e| e.ok())
    {
        let target = std::fs::read_link(fd.path()).unwrap();
        let target = target.to_string_lossy();
        let flags = std::fs::read_to_string(proc(&format!(
            "fdinfo/{}",
            fd.file_name().to_string_lossy()
        )))
        .unwrap();
        let flags = u32::from_str_radix(&status_field(&flags, "flags"), 8).unwrap();
        let allowed = target.starts_with("anon_inode:")
            || target.starts_with("pipe:")
            || target == "/null"
            || (target.ends_with(".ext4") && flags & 3 == 0)
            || target.ends_with("/net/tun")
            || target == "/memfd:isola-guest (deleted)";
        assert!(
            allowed && !target.contains(":kvm]") && target != "/kvm",
            "the VMM holds {target} (flags {flags:o})"
        );
    }
    // Bounded by its cgroup: guest memory plus headroom, a few threads.
    let cgroup = std::fs::read_to_string(proc("cgroup")).unwrap();
    let rel = cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap()
        .to_string();
    assert!(rel.starts_with("/isola/"), "{cgroup}");
    let dir = format!("/sys/fs/cgroup{rel}");
    let memory_max: u64 = std::fs::read_to_string(format!("{dir}/memory.max"))
        .unwrap()
        .trim()
        .parse()
        .expect("memory.max is a number");
    assert_eq!(memory_max, (256 + 64) << 20);
    let pids_max = std::fs::read_to_string(format!("{dir}/pids.max")).unwrap();
    assert_eq!(pids_max.trim(), "5");

    std::process::Command::new("kill")
        .args(["-TERM", &isola.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(isola.wait().unwrap().code(), Some(143));
    assert!(
        !std::path::Path::new(&dir).exists(),
        "the VMM's cgroup {dir} is left"
    );
    env.assert_clean();
}

/// A FROM-scratch image (one static binary; no /proc, /dev or /sys) runs at both levels alike.
#[test]
fn a_scratch_image_runs_in_both() {
    let env = Env::new();
    if !vm_capable(&env) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let probe = isola_e2e::repo().join("target/x86_64-unknown-linux-gnu/release/sysprobe");
    std::fs::copy(&probe, dir.path().join("sysprobe")).unwrap();
    let r = env.isola(&["import", dir.path().to_str().unwrap(), "scratch"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let (c, v) = both(&env, &["scratch", "/sysprobe", "getpid"]);
    for (iso, r) in [("container", &c), ("vm", &v)] {
        assert_eq!(
            (r.code, r.stdout.as_str(), r.stderr.as_str()),
            (0, "getpid ok\n", ""),
            "{iso}"
        );
    }
    env.assert_clean();
}

/// isola killed outright: its VMM dies with it (parent-death signal), and the next isola's
/// cleanup pass removes the VMM's cgroup and the record.
#[test]
fn the_vmm_dies_with_a_killed_isola_and_cleanup_takes_the_rest() {
    let env = Env::new();
    if !vm_capable(&env) {
        return;
    }
    let mut isola = env
        .cmd(&[
            "run",
            "--name",
            "killed",
            "--isolation",
            "vm",
            "sample",
            "sh",
            "-c",
            "echo ready; sleep 120",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = isola.stdout.take().unwrap();
    let mut ready = [0u8; 6];
    stdout.read_exact(&mut ready).unwrap();
    let vmm = children_of(isola.id());
    assert_eq!(vmm.len(), 1, "{vmm:?}");
    let vmm = vmm[0];
    let cgroup = std::fs::read_to_string(format!("/proc/{vmm}/cgroup")).unwrap();
    let dir = format!(
        "/sys/fs/cgroup{}",
        cgroup.lines().find_map(|l| l.strip_prefix("0::")).unwrap()
    );
    isola.kill().unwrap();
    isola.wait().unwrap();
    let gone = (0..200).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(25));
        !std::path::Path::new(&format!("/proc/{vmm}")).exists()
    });
    assert!(gone, "the VMM {vmm} outlived its isola");
    assert!(
        std::path::Path::new(&dir).exists(),
        "{dir}: removed by nobody yet"
    );
    let r = env.isola(&["ps", "-a"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        !std::path::Path::new(&dir).exists(),
        "{dir} left after the cleanup pass"
    );
    assert!(r.stdout.contains("killed"), "{}", r.stdout);
    let r = env.isola(&["rm", "killed"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    env.assert_clean();
}

/// isola as an OCI runtime at the VM level: `isola-vm create` boots the guest and waits, `start`
/// runs the workload, `kill` reaches it in the guest, `delete` leaves nothing; a bundle whose
/// config.json carries org.isola.isolation=vm runs in a VM under plain `isola` too.
#[test]
fn the_runtime_boots_at_create_and_runs_at_start() {
    let env = Env::new();
    if !vm_capable(&env) {
        return;
    }
    let link = env.root.join("isola-vm");
    std::os::unix::fs::symlink(isola_e2e::bin(), &link).unwrap();
    let rt = env.root.join("rt");
    let op = |prog: &std::path::Path, args: &[&str], out: Option<&std::path::Path>| {
        let mut c = std::process::Command::new(prog);
        c.arg("--root")
            .arg(&rt)
            .args(args)
            .env("ISOLA_ROOT", &env.root);
        c.stdin(Stdio::null());
        match out {
            // The monitor keeps the workload's stdio: a file, not this harness's pipe.
            Some(f) => {
                let f = std::fs::File::create(f).unwrap();
                c.stdout(f.try_clone().unwrap()).stderr(f);
                let st = c.status().unwrap();
                Run {
                    code: st.code().unwrap_or(-1),
                    stdout: String::new(),
                    stderr: String::new(),
                }
            }
            None => c.output().unwrap().into(),
        }
    };
    let status = |id: &str| {
        let r = op(&link, &["state", id], None);
        let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap_or_default();
        v["status"].as_str().unwrap_or("").to_string()
    };
    let bundle = env.root.join("b");
    let r = env.isola(&[
        "bundle",
        "sample",
        bundle.to_str().unwrap(),
        "sh",
        "-c",
        "trap 'echo got-term; exit 3' TERM; echo up $(uname -r); while :; do sleep 0.1; done",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let out = env.root.join("out");
    let pid_file = env.root.join("pid");
    let r = op(
        &link,
        &[
            "create",
            "--bundle",
            bundle.to_str().unwrap(),
            "--pid-file",
            pid_file.to_str().unwrap(),
            "v1",
        ],
        Some(&out),
    );
    assert_eq!(r.code, 0, "{}", std::fs::read_to_string(&out).unwrap());
    assert_eq!(status("v1"), "created");
    let monitor: i32 = std::fs::read_to_string(&pid_file).unwrap().parse().unwrap();
    // Booted, not started: the VMM (the monitor's child) runs, the workload has said nothing.
    assert!(
        !children_of(monitor as u32).is_empty(),
        "no VMM under the monitor"
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "");
    // ps lists the guest's processes: none before start.
    let r = op(&link, &["ps", "v1"], None);
    assert_eq!(
        (r.code, r.stdout.lines().count()),
        (0, 1),
        "{}{}",
        r.stdout,
        r.stderr
    );
    assert_eq!(op(&link, &["start", "v1"], None).code, 0);
    let host = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let t = std::time::Instant::now();
    while !std::fs::read_to_string(&out).unwrap().starts_with("up ") {
        assert!(
            t.elapsed().as_secs() < 60,
            "{}",
            std::fs::read_to_string(&out).unwrap()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(status("v1"), "running");
    // ... and the workload's once it runs, numbered as it numbers them (it is 1).
    let r = op(&link, &["ps", "v1"], None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.get(1) == Some(&"1") && f.get(2) == Some(&"0") && l.contains("sh -c trap")
        }),
        "{}",
        r.stdout
    );
    let r = op(&link, &["ps", "--format", "json", "v1"], None);
    let pids: Vec<u32> = serde_json::from_str(&r.stdout).unwrap_or_default();
    assert!(pids.contains(&1), "{}", r.stdout);
    // exec: a second process in the guest, beside the workload, with its own stdio.
    let r = op(
        &link,
        &[
            "exec",
            "-e",
            "X=y",
            "v1",
            "sh",
            "-c",
            "echo $X; ps -o comm | grep -c sleep; exit 4",
        ],
        None,
    );
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert!(r.stdout.starts_with("y\n"), "{}", r.stdout);
    let said = std::fs::read_to_string(&out).unwrap();
    assert!(
        !said.contains(host.trim()),
        "the guest's own kernel: {said}"
    );
    // exec with a terminal: the pty master goes to the console socket; a size set on it
    // reaches the session's pty in the guest.
    let sock = env.root.join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let taker = std::thread::spawn(move || isola_e2e::receive_fd(&listener));
    let mut client = std::process::Command::new(&link)
        .arg("--root")
        .arg(&rt)
        .args([
            "exec",
            "--tty",
            "--console-socket",
            sock.to_str().unwrap(),
            "v1",
        ])
        .args([
            "sh",
            "-c",
            "until [ \"$(stty size)\" = '40 100' ]; do sleep 0.1; done; echo resized; exit 6",
        ])
        .env("ISOLA_ROOT", &env.root)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let master = std::fs::File::from(taker.join().unwrap());
    let ws = libc::winsize {
        ws_row: 40,
        ws_col: 100,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from the pointer we pass, on the master we own.
    assert_eq!(
        unsafe {
            libc::ioctl(
                std::os::fd::AsRawFd::as_raw_fd(&master),
                libc::TIOCSWINSZ,
                &ws,
            )
        },
        0
    );
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = (&master).read_to_string(&mut text);
        text
    });
    let t = std::time::Instant::now();
    let code = loop {
        if let Some(st) = client.try_wait().unwrap() {
            break st.code();
        }
        if t.elapsed().as_secs() > 60 {
            let _ = client.kill();
            panic!("the exec session never saw its new size");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(code, Some(6));
    assert!(reader.join().unwrap().contains("resized"));

    // --all too reaches the workload (a VM's cgroup holds only its VMM's threads).
    let r = op(&link, &["kill", "--all", "v1", "TERM"], None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let t = std::time::Instant::now();
    while status("v1") != "stopped" {
        assert!(t.elapsed().as_secs() < 30, "still {}", status("v1"));
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(std::fs::read_to_string(&out)
        .unwrap()
        .ends_with("got-term\n"));
    let r = op(&link, &["delete", "v1"], None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(op(&link, &["state", "v1"], None).code, 1);
    assert!(isola_e2e::cgroups_of("v1").is_empty());

    // The annotation picks the level for plain `isola`; `run` waits and gives the status.
    let config = bundle.join("config.json");
    let mut spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    spec["annotations"]["org.isola.isolation"] = "vm".into();
    spec["process"]["args"] = serde_json::json!(["sh", "-c", "uname -r; exit 7"]);
    std::fs::write(&config, spec.to_string()).unwrap();
    let run = |id: &str| {
        op(
            &isola_e2e::bin(),
            &["run", "--bundle", bundle.to_str().unwrap(), id],
            None,
        )
    };
    let r = run("v2");
    assert_eq!(r.code, 7, "{}", r.stderr);
    assert_ne!(r.stdout.trim(), host.trim(), "a VM runs its own kernel");
    assert_eq!(op(&link, &["list", "-q"], None).stdout, "");

    // Annotations size the VM beyond linux.resources; a bad one is named and nothing is made.
    spec["annotations"]["org.isola.vm.memory-mib"] = "384".into();
    spec["annotations"]["org.isola.vm.vcpus"] = "2".into();
    spec["process"]["args"] =
        serde_json::json!(["sh", "-c", "nproc; sed -n 's/MemTotal: *//p' /proc/meminfo"]);
    std::fs::write(&config, spec.to_string()).unwrap();
    let r = run("v3");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut lines = r.stdout.lines();
    assert_eq!(lines.next(), Some("2"), "{}", r.stdout);
    let kb: u64 = lines
        .next()
        .and_then(|l| l.trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0);
    // The guest kernel keeps some for itself: between 256 and 384 MiB seen.
    assert!((256 << 10..=384 << 10).contains(&kb), "{}", r.stdout);
    spec["annotations"]["org.isola.vm.vcpus"] = "0".into();
    std::fs::write(&config, spec.to_string()).unwrap();
    let r = run("v4");
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("org.isola.vm.vcpus=\"0\""),
        "{}",
        r.stderr
    );
    assert!(isola_e2e::cgroups_of("v4").is_empty());
    let left: Vec<_> = std::fs::read_dir(&rt)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
    env.assert_clean();
}

/// Networking at both levels: a VM and a container on one user-defined network reach each
/// other (the VM's virtio-net on a tap of the bridge, the container's veth), the VM's
/// interface, route and /etc files are what a container's are, and `-p` reaches the VM from
/// the host's loopback and bridge address, TCP and UDP. Everything runs in this test's own
/// network namespace (see `own_netns`); nothing is left behind.
#[test]
fn a_vm_and_a_container_share_a_network_and_publish_ports_alike() {
    let env = Env::new();
    if !vm_capable(&env) {
        return;
    }
    let script = r#"
trap 'kill -9 $(jobs -p) 2>/dev/null; $ISOLA cleanup >/dev/null' EXIT
leases() { ls "$ISOLA_ROOT/run/net/leases/mixed" 2>/dev/null | wc -l; }
wait_leases() { i=0; until [ "$(leases)" -ge "$1" ]; do i=$((i+1)); [ $i -lt 600 ] || { echo "never $1 leases" >&2; exit 9; }; sleep 0.1; done; }
ask() { i=0; until out=$($NETECHO ask "$@" 2>/dev/null) && [ -n "$out" ]; do i=$((i+1)); [ $i -lt 120 ] || return 1; sleep 1; done; echo "$out"; }
$ISOLA network create --subnet 10.95.0.0/24 mixed >/dev/null || exit 9
show='ip -4 -o addr show eth0 | cut -d" " -f7; ip route | head -1; grep -w "$(hostname)" /etc/hosts | cut -f1; md5sum < /etc/resolv.conf | cut -c1-8'
$ISOLA run --rm --name vmsrv --hostname vmsrv --network mixed --isolation vm -p 8080:80 -p 5300:53/udp sample sh -c "
  $show
  trap 'exit 0' TERM
  (i=0; until grep -qw ctsrv /etc/hosts; do i=\$((i+1)); [ \$i -lt 900 ] || exit; sleep 0.2; done
   a=\$(grep -w ctsrv /etc/hosts | cut -f1); i=0
   until r=\$(netecho ask tcp \$a:90 hi-late 2>/dev/null) && [ -n \"\$r\" ]; do i=\$((i+1)); [ \$i -lt 60 ] || break; sleep 0.5; done
   echo \"vm learned ctsrv: \$a \$r\"
   while grep -qw ctsrv /etc/hosts; do sleep 0.2; done; echo 'vm forgot ctsrv') &
  netecho serve tcp 80 & netecho serve udp 53 & wait" > "$ISOLA_ROOT/vm.out" 2>&1 &
vm=$!
wait_leases 1
echo "loopback to vm: $(ask tcp 127.0.0.1:8080 hello-tcp)"
echo "bridge address to vm: $(ask tcp 10.95.0.1:8080 hello-bridge)"
echo "udp to vm: $(ask udp 127.0.0.1:5300 hello-udp)"
echo "container to vm by name: $($ISOLA run --rm --network mixed sample sh -c 'netecho ask tcp $(grep -w vmsrv /etc/hosts | cut -f1):80 hi-vm')"
$ISOLA run --rm --name ctsrv --network mixed sample sh -c "trap 'exit 0' TERM; netecho serve tcp 90 & wait" &
ct=$!
wait_leases 2
echo "vm to container: $($ISOLA run --rm --network mixed --isolation vm sample netecho ask tcp 10.95.0.3:90 hi-container)"
echo "host resolv.conf: $(cat /etc/resolv.conf 2>/dev/null | md5sum | cut -c1-8)"
echo "container view: $($ISOLA run --rm --name ctview --hostname ctview --network mixed sample sh -c "$show" | tr '\n' ' ')"
# The VM, booted before ctsrv joined, learned its name and sees it go when ctsrv ends.
kill $ct; wait $ct
i=0; until grep -q "vm forgot" "$ISOLA_ROOT/vm.out"; do i=$((i+1)); [ $i -lt 600 ] || break; sleep 0.1; done
kill $vm; wait $vm; echo "vm exit: $?"
echo "vm view: $(head -4 "$ISOLA_ROOT/vm.out" | tr '\n' ' ')"
echo "vm late: $(grep '^vm ' "$ISOLA_ROOT/vm.out" | tr '\n' ' ')"
echo "taps: $(ip -o link | grep -c ' tap' || true)"
echo "rules: $(nft list chain inet isola publish 2>/dev/null | grep -c workload || true)"
echo "leases: $(leases)"
$ISOLA network rm mixed >/dev/null
"#;
    let o = std::process::Command::new("timeout")
        .args(["-k", "5", "600", "sh", "-c", script])
        .env("ISOLA_ROOT", &env.root)
        .env("ISOLA", isola_e2e::bin())
        .env("NETECHO", isola_e2e::workload("netecho"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    let resolv = out
        .lines()
        .find_map(|l| l.strip_prefix("host resolv.conf: "))
        .unwrap_or("?")
        .to_string();
    for line in [
        "loopback to vm: hello-tcp\n".to_string(),
        "bridge address to vm: hello-bridge\n".into(),
        "udp to vm: hello-udp\n".into(),
        "container to vm by name: hi-vm\n".into(),
        "vm to container: hi-container\n".into(),
        format!(
            "container view: 10.95.0.4/24 default via 10.95.0.1 dev eth0  10.95.0.4 {resolv} \n"
        ),
        "vm exit: 0\n".into(),
        "vm late: vm learned ctsrv: 10.95.0.3 hi-late vm forgot ctsrv \n".into(),
        format!("vm view: 10.95.0.2/24 default via 10.95.0.1 dev eth0  10.95.0.2 {resolv} \n"),
        "taps: 0\nrules: 0\nleases: 0\n".into(),
    ] {
        assert!(out.contains(&line), "{line}---\n{out}{err}");
    }
    env.assert_clean();
}

/// Host directories, a volume filled from the image, read-only binds and a tmpfs, the same at
/// both levels: what the workload sees is identical, and what it writes lands on the host with
/// its owner and mode (a VM's through virtio-fs and virtiofsd, which ends with the VM).
#[test]
fn volumes_binds_and_tmpfs_look_the_same_at_both_levels() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let env = Env::new();
    if !vm_capable(&env) {
        return;
    }
    // --read-only: the root refuses writes, its tmpfs and /dev/shm take them, at both levels.
    let ro = "touch /x 2>/dev/null || echo root-ro; touch /tmp/ok && echo tmp-ok; \
              touch /dev/shm/s && echo shm-ok; echo x > /etc/hostname 2>/dev/null || echo etc-ro";
    for level in ["container", "vm"] {
        let r = env.isola(&[
            "run",
            "--rm",
            "--read-only",
            "--tmpfs",
            "/tmp",
            "--network",
            "none",
            "--isolation",
            level,
            "sample",
            "sh",
            "-c",
            ro,
        ]);
        assert_eq!(
            (r.code, r.stdout.as_str()),
            (0, "root-ro\ntmp-ok\nshm-ok\netc-ro\n"),
            "{level}: {}",
            r.stderr
        );
    }
    let host = env.root.join("host");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("f"), "hello\n").unwrap();
    std::fs::set_permissions(&host, std::fs::Permissions::from_mode(0o777)).unwrap();
    let script = "cat /data/f; umask 027; echo out > /data/g-$L && mkdir /data/d-$L && echo wrote; \
                  echo x > /ro/x 2>/dev/null || echo ro-refused; ls /ro/f; \
                  stat -c '%a %u %s' /etc/passwd; \
                  stat -c %a /t; dd if=/dev/zero of=/t/big bs=1k count=2048 2>/dev/null || echo tmpfs-full";
    let rw = format!("{}:/data", host.display());
    let ro = format!("{}:/ro:ro", host.display());
    let mut seen = Vec::new();
    for level in ["container", "vm"] {
        let volume = format!("cfg-{level}:/etc");
        let r = env.isola(&[
            "run",
            "--rm",
            "--network",
            "none",
            "--isolation",
            level,
            "-u",
            "1000:1000",
            "-e",
            &format!("L={level}"),
            "-v",
            &rw,
            "-v",
            &ro,
            "-v",
            &volume,
            "--tmpfs",
            "/t:size=1m",
            "sample",
            "sh",
            "-c",
            script,
        ]);
        assert_eq!(r.code, 0, "{level}: {}", r.stderr);
        seen.push(r.stdout.replace(level, "LEVEL"));
        for (name, mode) in [("g", 0o640), ("d", 0o750)] {
            let m = std::fs::metadata(host.join(format!("{name}-{level}"))).unwrap();
            assert_eq!(
                (m.uid(), m.gid(), m.mode() & 0o777),
                (1000, 1000, mode),
                "{level} {name}"
            );
        }
    }
    assert_eq!(seen[0], seen[1], "what the workload sees differs");
    assert!(
        seen[0].starts_with("hello\nwrote\nro-refused\n/ro/f\n"),
        "{}",
        seen[0]
    );
    assert!(seen[0].ends_with("1777\ntmpfs-full\n"), "{}", seen[0]);
    // A volume the VM wrote (as root), read by a container.
    let r = env.isola(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--isolation",
        "vm",
        "-v",
        "cfg-vm:/etc",
        "sample",
        "sh",
        "-c",
        "echo vm > /etc/by-vm",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = env.isola(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        "cfg-vm:/etc",
        "sample",
        "cat",
        "/etc/by-vm",
    ]);
    assert_eq!(r.stdout, "vm\n", "{}", r.stderr);
    // virtiofsd ended with its VM and left nothing.
    let running = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("comm")).ok())
        .filter(|c| c.trim() == "virtiofsd")
        .count();
    assert_eq!(running, 0, "virtiofsd left running");
    let run = std::fs::read_dir(env.root.join("run")).unwrap();
    let left: Vec<String> = run
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("vfs-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    env.assert_clean();
}

/// A detached VM: `run -d` returns once it runs; from other commands (other terminals) its
/// log, `exec`, `ps`, `inspect` and `stop` reach it; a workload ignoring SIGTERM is killed
/// after -t.
#[test]
fn a_detached_vm_is_reached_by_logs_exec_ps_and_stop() {
    let env = Env::new();
    if !vm_capable(&env) {
        return;
    }
    let r = env.isola(&[
        "run",
        "-d",
        "--network",
        "none",
        "--isolation",
        "vm",
        "--name",
        "bgvm",
        "sample",
        "sh",
        "-c",
        "echo vm-up; echo vm-err >&2; sleep 300",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let id = r.stdout.trim().to_string();
    assert_eq!(id.len(), 64, "{}", r.stdout);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !env.isola(&["logs", "bgvm"]).stdout.contains("vm-up") {
        assert!(
            std::time::Instant::now() < deadline,
            "no output from the VM"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let r = env.isola(&["logs", "bgvm"]);
    assert_eq!(
        (r.stdout.as_str(), r.stderr.as_str()),
        ("vm-up\n", "vm-err\n")
    );
    // exec: a process in the guest, beside the workload, with its environment and the
    // caller's changes; its status is the caller's.
    let r = env.isola(&[
        "exec",
        "-e",
        "X=42",
        "-u",
        "1000",
        "-w",
        "/tmp",
        "bgvm",
        "sh",
        "-c",
        "echo exec-$X; id -u; pwd; ps -o comm | grep -c sleep; exit 6",
    ]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (6, "exec-42\n1000\n/tmp\n1\n"),
        "{}",
        r.stderr
    );
    // exec -t / -it: a terminal of its own in the guest, what is typed reaching it.
    let (code, out) = env.in_terminal("exec -t bgvm sh -c 'tty; exit 4'", "");
    assert!(code == 4 && out.contains("/dev/pts/"), "{code} {out}");
    let (code, out) = env.in_terminal("exec -it bgvm sh", "echo in-$((40+2))\nexit 3\n");
    assert!(code == 3 && out.contains("in-42"), "{code} {out}");
    // cp: in and out of the running guest (a tar stream through exec and the image's tar).
    let host = env.root.join("cp");
    std::fs::create_dir_all(host.join("tree/sub")).unwrap();
    std::fs::write(host.join("tree/sub/b.txt"), "deep\n").unwrap();
    std::os::unix::fs::symlink("sub/b.txt", host.join("tree/link")).unwrap();
    let h = |p: &str| host.join(p).to_string_lossy().into_owned();
    for (from, to) in [
        (h("tree"), "bgvm:/tmp".to_string()),
        (h("tree/sub/b.txt"), "bgvm:/tmp/renamed".to_string()),
        ("bgvm:/tmp/tree".to_string(), h("back")),
        ("bgvm:/tmp/renamed".to_string(), h("r.txt")),
        ("bgvm:/tmp/tree/.".to_string(), h("flat")),
    ] {
        let r = env.isola(&["cp", &from, &to]);
        assert_eq!(r.code, 0, "cp {from} {to}: {}", r.stderr);
    }
    let r = env.isola(&[
        "exec",
        "bgvm",
        "sh",
        "-c",
        "cat /tmp/tree/link /tmp/renamed; stat -c %u /tmp/renamed",
    ]);
    assert_eq!(r.stdout, "deep\ndeep\n0\n", "{}", r.stderr);
    assert_eq!(
        std::fs::read_to_string(host.join("back/sub/b.txt")).unwrap(),
        "deep\n"
    );
    assert_eq!(
        std::fs::read_link(host.join("back/link")).unwrap(),
        std::path::Path::new("sub/b.txt")
    );
    assert_eq!(
        std::fs::read_to_string(host.join("r.txt")).unwrap(),
        "deep\n"
    );
    assert!(host.join("flat/sub/b.txt").is_file());
    let ps = env.isola(&["ps"]).stdout;
    let line = ps.lines().find(|l| l.contains("bgvm")).unwrap_or_default();
    assert!(line.contains(" vm ") && line.contains(" Up "), "{ps}");
    let r = env.isola(&["inspect", "bgvm"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v[0]["State"]["Running"], true);
    assert_eq!(v[0]["Isolation"], "vm");
    assert_eq!(env.isola(&["stop", "-t", "1", "bgvm"]).code, 0);
    assert_eq!(env.isola(&["wait", "bgvm"]).stdout, "137\n");
    let ps = env.isola(&["ps", "-a"]).stdout;
    assert!(ps.contains("Exited (137)"), "{ps}");
    // Stopped, a VM's root changes are gone: out of it come the image's files; into it, nothing.
    let r = env.isola(&["cp", "bgvm:/etc/passwd", &h("passwd")]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(std::fs::read_to_string(host.join("passwd"))
        .unwrap()
        .contains("root"));
    assert_ne!(env.isola(&["cp", "bgvm:/tmp/renamed", &h("gone")]).code, 0);
    let r = env.isola(&["cp", &h("r.txt"), "bgvm:/tmp"]);
    assert!(
        r.code != 0 && r.stderr.contains("stopped VM"),
        "{}",
        r.stderr
    );
    assert_eq!(env.isola(&["rm", "bgvm"]).code, 0);
    env.assert_clean();
}

#[test]
fn a_vm_runs_under_the_tiny_init_starts_again_and_restarts_by_policy() {
    let env = Env::new();
    if !vm_capable(&env) {
        return;
    }
    let inspect = |name: &str| -> serde_json::Value {
        let r = env.isola(&["inspect", name]);
        serde_json::from_str::<serde_json::Value>(&r.stdout).unwrap()[0].clone()
    };
    // --init: PID 1 is the tiny init, the orphan is reaped, the status is the command's.
    // Each run adds a line to its root: a VM's root changes live in its memory, so every
    // start begins from the image again (a container keeps them: start_restart.rs).
    let script = "tr '\\0' ' ' < /proc/1/cmdline; echo; sh -c 'sleep 0.2 &'; sleep 1; \
                  grep -l zombie /proc/[0-9]*/status | wc -l; echo run >> /runs; wc -l < /runs; exit 3";
    let r = env.isola(&[
        "run",
        "--isolation",
        "vm",
        "--init",
        "--name",
        "vmi",
        "--network",
        "none",
        "sample",
        "sh",
        "-c",
        script,
    ]);
    let first = format!("/dev/init -- sh -c {script} \n0\n1\n");
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (3, first.as_str()),
        "{}",
        r.stderr
    );
    let r = env.isola(&["start", "-a", "vmi"]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (3, first.as_str()),
        "{}",
        r.stderr
    );

    // Under the tiny init, stop's SIGTERM reaches `sleep` (as PID 1 it would be ignored and
    // end in the kill, 137).
    let r = env.isola(&[
        "run",
        "-d",
        "--isolation",
        "vm",
        "--init",
        "--name",
        "vmsig",
        "--network",
        "none",
        "sample",
        "sleep",
        "300",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(env.isola(&["stop", "-t", "60", "vmsig"]).code, 0);
    assert_eq!(env.isola(&["wait", "vmsig"]).stdout, "143\n");

    // The monitor of a detached VM boots it again as its policy says.
    let r = env.isola(&[
        "run",
        "-d",
        "--isolation",
        "vm",
        "--restart",
        "on-failure:1",
        "--name",
        "vmr",
        "--network",
        "none",
        "sample",
        "sh",
        "-c",
        "echo boot; exit 4",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(env.isola(&["wait", "vmr"]).stdout, "4\n");
    assert_eq!(env.isola(&["logs", "vmr"]).stdout, "boot\nboot\n");
    assert_eq!(inspect("vmr")["RestartCount"], 1);
    // The guest's OOM killer is recorded as the host's is for a container.
    let r = env.isola(&[
        "run",
        "--isolation",
        "vm",
        "--name",
        "vmhog",
        "--memory",
        "64m",
        "--network",
        "none",
        "sample",
        "memhog",
        "400",
    ]);
    assert_eq!(r.code, 137, "{}", r.stderr);
    assert_eq!(inspect("vmhog")["State"]["OOMKilled"], true);
    assert_eq!(inspect("vmr")["State"]["OOMKilled"], false);
    assert_eq!(env.isola(&["rm", "vmi", "vmsig", "vmr", "vmhog"]).code, 0);
    env.assert_clean();
}

#[test]
fn compare_measures_all_three_levels_where_kvm_works() {
    let env = Env::new();
    if !vm_capable(&env) {
        return;
    }
    let page = env.root.join("report.html");
    let (_, levels) = isola_e2e::compare_run(&env, &page);
    let (vm, ctr) = (&levels["vm"], &levels["container"]);
    assert!(vm.get("not_measured").is_none(), "{vm}");
    let phases: Vec<&str> = vm["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["phase"].as_str().unwrap())
        .collect();
    assert_eq!(
        phases,
        [
            "isola setup",
            "isolation setup",
            "kernel boot",
            "guest init",
            "workload",
            "teardown and exit"
        ]
    );
    let sum: f64 = vm["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["ms"].as_f64().unwrap())
        .sum();
    assert!((sum - vm["wall_ms"].as_f64().unwrap()).abs() < 0.01, "{vm}");
    assert!(vm["vmm_rss_mib"].as_f64().unwrap() > 0.0, "{vm}");
    // Its disk: the rootfs the container has too, and the ext4 image's allocated blocks.
    assert_eq!(vm["disk_mib"]["rootfs"], ctr["disk_mib"]["rootfs"]);
    let disk = std::fs::read_dir(env.root.join("vm"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "ext4"))
        .unwrap();
    let blocks = std::os::unix::fs::MetadataExt::blocks(&std::fs::metadata(&disk).unwrap());
    let mib = (blocks * 512) as f64 / (1 << 20) as f64;
    assert!(
        (vm["disk_mib"]["root_disk"].as_f64().unwrap() - mib).abs() < 0.01,
        "{vm}"
    );
    // Its own kernel, one interface (loopback), its own memory size; the container the host's.
    assert_ne!(vm["probe"]["kernel"], ctr["probe"]["kernel"], "{vm}");
    assert_eq!(vm["probe"]["interfaces"], serde_json::json!(["lo"]));
    assert!(
        vm["probe"]["memory_mib"].as_u64().unwrap() < ctr["probe"]["memory_mib"].as_u64().unwrap()
    );
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        html.contains("kernel boot") && html.contains("<svg"),
        "{html}"
    );
    env.assert_clean();
}

#[test]
fn bench_pagerank_runs_every_level_and_plots_them() {
    let env = Env::new();
    if !vm_capable(&env) {
        return;
    }
    let out = env.root.join("bench");
    let (_, rows) = isola_e2e::bench_run(&env, "bare,container,vm", &out);
    let csv = format!("{rows:?}");
    assert_eq!(rows.len(), 9, "{csv}");
    assert_eq!(rows.iter().filter(|r| r[0] == "vm").count(), 3, "{csv}");
    let results: Vec<&str> = rows.iter().map(|r| r[7].as_str()).collect();
    assert!(
        results
            .iter()
            .all(|x| *x == results[0] && x.contains("checksum=")),
        "{csv}"
    );
    // A VM instance's host tasks (VMM, vCPU threads) did run.
    assert!(
        rows.iter()
            .filter(|r| r[0] == "vm")
            .all(|r| r[4].parse::<f64>().unwrap() > 0.0),
        "{csv}"
    );
    let svg = std::fs::read_to_string(out.join("pagerank.svg")).unwrap();
    assert!(svg.contains("data-level=\"vm\""), "{svg}");
    let pixels = isola_e2e::plot_level_pixels(&out.join("pagerank.png"));
    assert!(pixels.iter().all(|n| *n > 500), "{pixels:?}");
    env.assert_clean();
}
