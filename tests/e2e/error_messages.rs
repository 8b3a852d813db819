//! Error messages: each says its cause once, and a full disk names the store path being
//! written, not the file being read.

use isola_e2e::Env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// How often `(os error N)` occurs in `s`.
fn os_errors(s: &str) -> usize {
    s.matches("(os error").count()
}

#[test]
fn errors_say_their_cause_once() {
    let env = Env::new();
    let missing = env.root.join("no-such-source");
    let missing_tar = env.root.join("no-such.tar");
    let cases: Vec<Vec<String>> = vec![
        vec!["import".into(), missing.display().to_string(), "x:1".into()],
        vec![
            "import".into(),
            missing_tar.display().to_string(),
            "x:1".into(),
        ],
        vec![
            "run".into(),
            "--security-opt".into(),
            format!("seccomp={}", env.root.join("none.json").display()),
            "sample".into(),
            "true".into(),
        ],
        // A loopback registry nobody listens on: the pull fails at once.
        vec!["run".into(), "127.0.0.1:1/nothing".into(), "true".into()],
    ];
    for args in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = env.isola(&args);
        assert_eq!(r.code, 125, "{args:?}: {}", r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "{args:?}: {}", r.stderr);
        assert!(
            os_errors(&r.stderr) <= 1,
            "{args:?} repeats its cause: {}",
            r.stderr
        );
    }
    assert!(env
        .isola(&["import", &missing.display().to_string(), "x:1"])
        .stderr
        .contains(&missing.display().to_string()));
    env.assert_clean();
}

/// A small tmpfs mounted on `dir`, unmounted on drop whatever the test's outcome.
struct SmallFs {
    dir: PathBuf,
}

impl SmallFs {
    fn mount(dir: &Path, size: &str) -> SmallFs {
        std::fs::create_dir_all(dir).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(st.success(), "mounting a tmpfs on {}", dir.display());
        SmallFs {
            dir: dir.to_path_buf(),
        }
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

#[test]
fn a_full_store_is_named_in_the_error() {
    let env = Env::empty();
    let src = tempfile::tempdir().unwrap();
    // 4 MiB of zeros: a small compressed layer that unpacks to more than the store holds.
    let rootfs = src.path().join("rootfs");
    std::fs::create_dir(&rootfs).unwrap();
    std::fs::write(rootfs.join("zeros"), vec![0u8; 4 << 20]).unwrap();
    let tar = src.path().join("zeros.tar.gz");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-czf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    let store = env.root.join("small");
    let _fs = SmallFs::mount(&store, "2m");
    let vars = [("ISOLA_ROOT", store.to_str().unwrap())];
    let r = env.isola_with(&["import", tar.to_str().unwrap(), "zeros:1"], &vars);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = env.isola_with(&["run", "--rm", "zeros:1", "true"], &vars);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(
        r.stderr.contains("No space left on device")
            && r.stderr
                .contains(&store.join("rootfs").display().to_string()),
        "the error names where in the store the write failed: {}",
        r.stderr
    );
    assert_eq!(os_errors(&r.stderr), 1, "{}", r.stderr);
    // Nothing half-unpacked is left.
    let left: Vec<_> = std::fs::read_dir(store.join("rootfs"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "left in the rootfs cache: {left:?}");
    // A layer that does not fit at all: the store's file is named.
    std::fs::write(rootfs.join("zeros"), random_bytes(3 << 20)).unwrap();
    let tar = src.path().join("random.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    let r = env.isola_with(&["import", tar.to_str().unwrap(), "random:1"], &vars);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(
        r.stderr
            .contains(&store.join("images").display().to_string()),
        "{}",
        r.stderr
    );
    assert_eq!(os_errors(&r.stderr), 1, "{}", r.stderr);
    // The same from a directory: the store's file is named, not the source file.
    let r = env.isola_with(&["import", rootfs.to_str().unwrap(), "random:2"], &vars);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(
        r.stderr.contains("No space left on device")
            && r.stderr
                .contains(&store.join("images").display().to_string())
            && !r.stderr.contains(&rootfs.display().to_string()),
        "{}",
        r.stderr
    );
    assert_eq!(os_errors(&r.stderr), 1, "{}", r.stderr);
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom").unwrap(), &mut v).unwrap();
    v
}
