//! How big a bundle's VM is: guest memory and vCPUs from `linux.resources`, unless the bundle's
//! annotations say otherwise (as Kata's `io.katacontainers.config.hypervisor.default_memory`
//! and `default_vcpus` do).

use crate::Error;
use oci_spec::runtime::Spec;

/// Guest memory (MiB) without a memory limit.
pub const DEFAULT_MEMORY_MIB: u64 = 256;
/// Guest RAM beyond a memory limit, for the guest kernel, init and page cache.
const GUEST_HEADROOM_MIB: u64 = 128;
/// The least guest memory a Linux guest with isola's init boots in.
const MIN_MEMORY_MIB: u64 = 64;
/// The most guest memory an annotation may ask for.
const MAX_MEMORY_MIB: u64 = 1 << 16;

/// Guest memory in MiB (a whole number, 64 to 65536).
pub const MEMORY_ANNOTATION: &str = "org.isola.vm.memory-mib";
/// vCPUs (a whole number, 1 to `isola_vmm::vm::MAX_CPUS`).
pub const VCPUS_ANNOTATION: &str = "org.isola.vm.vcpus";

/// Guest memory (MiB) and vCPUs. Without annotations: the memory limit plus room for the
/// guest's kernel and init (at least the default), and `cpus` rounded up to whole CPUs (a VM
/// has whole CPUs; the container level throttles instead).
pub fn vm_size(spec: &Spec) -> Result<(u64, u8), Error> {
    let res = spec.linux().as_ref().and_then(|l| l.resources().as_ref());
    let limit = res
        .and_then(|r| r.memory().as_ref())
        .and_then(|m| m.limit())
        .filter(|l| *l > 0);
    let mut mem_mib = limit.map_or(DEFAULT_MEMORY_MIB, |b| {
        ((b as u64).div_ceil(1 << 20) + GUEST_HEADROOM_MIB).max(DEFAULT_MEMORY_MIB)
    });
    let cpu = res.and_then(|r| r.cpu().as_ref());
    let mut cpus = match (cpu.and_then(|c| c.quota()), cpu.and_then(|c| c.period())) {
        (Some(q), p) if q > 0 => (q as u64).div_ceil(p.unwrap_or(100_000).max(1)),
        _ => 1,
    }
    .clamp(1, u64::from(isola_vmm::vm::MAX_CPUS));
    let max_cpus = u64::from(isola_vmm::vm::MAX_CPUS);
    if let Some(v) = annotation(spec, MEMORY_ANNOTATION, MIN_MEMORY_MIB, MAX_MEMORY_MIB)? {
        mem_mib = v;
    }
    if let Some(v) = annotation(spec, VCPUS_ANNOTATION, 1, max_cpus)? {
        cpus = v;
    }
    Ok((mem_mib, cpus as u8))
}

/// A whole-number annotation in `min..=max`, if the bundle has it.
fn annotation(spec: &Spec, key: &str, min: u64, max: u64) -> Result<Option<u64>, Error> {
    let Some(text) = spec.annotations().as_ref().and_then(|a| a.get(key)) else {
        return Ok(None);
    };
    match text.parse::<u64>() {
        Ok(v) if (min..=max).contains(&v) => Ok(Some(v)),
        _ => Err(Error::Vm(format!(
            "config.json: annotation {key}={text:?}: expected a whole number from {min} to {max}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> Spec {
        let mut base = serde_json::to_value(Spec::default()).unwrap();
        for (k, v) in json.as_object().unwrap() {
            base[k] = v.clone();
        }
        serde_json::from_value(base).unwrap()
    }

    #[test]
    fn resources_size_the_vm() {
        let s = spec(serde_json::json!({"linux": {"resources": {
            "memory": {"limit": 512u64 << 20},
            "cpu": {"quota": 150000, "period": 100000}
        }}}));
        assert_eq!(vm_size(&s).unwrap(), (512 + 128, 2));
        assert_eq!(vm_size(&spec(serde_json::json!({}))).unwrap(), (256, 1));
    }

    #[test]
    fn annotations_override_resources() {
        let s = spec(serde_json::json!({
            "linux": {"resources": {"memory": {"limit": 512u64 << 20}}},
            "annotations": {"org.isola.vm.memory-mib": "1024", "org.isola.vm.vcpus": "2"}
        }));
        assert_eq!(vm_size(&s).unwrap(), (1024, 2));
    }

    #[test]
    fn a_bad_annotation_is_named() {
        for (key, value) in [
            ("org.isola.vm.memory-mib", "32"),
            ("org.isola.vm.memory-mib", "lots"),
            ("org.isola.vm.vcpus", "0"),
            ("org.isola.vm.vcpus", "1000"),
        ] {
            let s = spec(serde_json::json!({ "annotations": { key: value } }));
            let e = vm_size(&s).unwrap_err().to_string();
            assert!(e.contains(key) && e.contains(value), "{e}");
        }
    }
}
