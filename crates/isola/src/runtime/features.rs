//! `features`: what this runtime supports, as the runtime spec's features document, so a caller
//! can check before it asks (containerd reads it).

use super::Result;
use isola_sandbox::vm::{MEMORY_ANNOTATION, VCPUS_ANNOTATION};
use isola_sandbox::ISOLATION_ANNOTATION;
use serde_json::json;

pub fn features() -> Result<()> {
    let caps: Vec<String> = caps::all().iter().map(|c| c.to_string()).collect();
    let mount_options: Vec<&str> = isola_container::mount_options::known().collect();
    let doc = json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.1.0",
        // Hooks are not run: a bundle that has them is refused at create.
        "hooks": [],
        "mountOptions": mount_options,
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "uts"],
            "capabilities": caps,
            "cgroup": {"v1": true, "v2": true, "systemd": false, "systemdUser": false, "rdma": false},
            "seccomp": {
                "enabled": true,
                "actions": [
                    "SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
                    "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"
                ],
                "operators": [
                    "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
                    "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"
                ],
                "archs": ["SCMP_ARCH_X86_64"],
                "knownFlags": [
                    "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                    "SECCOMP_FILTER_FLAG_TSYNC"
                ],
                "supportedFlags": [
                    "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                    "SECCOMP_FILTER_FLAG_TSYNC"
                ]
            },
            "apparmor": {"enabled": false},
            "selinux": {"enabled": false},
            "intelRdt": {"enabled": false}
        },
        "annotations": {
            ISOLATION_ANNOTATION: "container or vm: the isolation level (isola-vm: always vm)",
            MEMORY_ANNOTATION: "the VM's guest memory in MiB (default: the memory limit plus 128, at least 256)",
            VCPUS_ANNOTATION: "the VM's vCPUs (default: the CPU quota rounded up, at least 1)",
            "org.isola.runtime": "isola"
        }
    });
    println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    Ok(())
}
