//! Running the vCPUs: the boot CPU on the calling thread, the others on their own threads, all
//! sharing one `Bus` of devices. The first vCPU to see the machine end (reset, triple fault,
//! the time limit, an error) ends them all: it raises `Bus::stop` and the others are kicked
//! out of KVM_RUN with a signal until they notice.

use crate::devices::boot_timer::BootTimer;
use crate::devices::i8042::I8042;
use crate::devices::serial::Uart;
use crate::explain::{self, Exit, ExitLog};
use crate::jail::filters::ThreadKind;
use crate::jail::Jail;
use crate::layout::*;
use crate::virtio::mmio::MmioTransport;
use crate::vm::VmExit;
use kvm_ioctls::{VcpuExit, VcpuFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::thread::Scope;
use std::time::{Duration, Instant};
use vm_memory::GuestMemoryMmap;

/// How long the supervisor sleeps at most between looks at the time limits (the machine's end
/// wakes it sooner).
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// Set by SIGALRM when `--timeout` passes.
static TIMED_OUT: AtomicBool = AtomicBool::new(false);
/// The signal that kicks a vCPU thread out of KVM_RUN (its handler does nothing).
fn kick_signal() -> libc::c_int {
    libc::SIGRTMIN() + 1
}

extern "C" fn on_alarm(_: libc::c_int) {
    TIMED_OUT.store(true, Ordering::SeqCst);
}

extern "C" fn on_kick(_: libc::c_int) {}

/// Installs the SIGALRM and kick handlers — no SA_RESTART, so KVM_RUN returns EINTR — and
/// arms the alarm if there is a time limit.
fn install_handlers(timeout: Option<Duration>) {
    TIMED_OUT.store(false, Ordering::SeqCst);
    // SAFETY: sigaction with handlers that only touch an atomic (or nothing); alarm takes no
    // pointers.
    unsafe {
        for (sig, handler) in [
            (libc::SIGALRM, on_alarm as extern "C" fn(libc::c_int)),
            (kick_signal(), on_kick),
        ] {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = handler as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
        if let Some(t) = timeout {
            libc::alarm(t.as_secs().max(1) as libc::c_uint);
        }
    }
}

/// For threads that are not vCPUs: the alarm must interrupt a vCPU, not them.
pub fn keep_vcpu_signals_away() {
    // SAFETY: sigset operations on a local set; pthread_sigmask with no old-set pointer.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGALRM);
        libc::sigaddset(&mut set, kick_signal());
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// Whether guest init has started (its first boot-timer mark).
fn booted(bus: &Bus) -> bool {
    lock(&bus.marks).init_started()
}

pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs every vCPU on its own thread until the machine ends, supervising from the calling
/// thread; returns how it ended (the first vCPU to see the end decides).
pub fn run_all<'scope, 'env>(
    scope: &'scope Scope<'scope, 'env>,
    vcpus: Vec<VcpuFd>,
    bus: &'scope Bus<'env>,
    timeout: Option<Duration>,
    boot_timeout: Duration,
    jail: &'scope Jail,
) -> Result<VmExit, String> {
    install_handlers(timeout);
    let _ = bus.supervisor.set(std::thread::current());
    let handles: Vec<_> = vcpus
        .into_iter()
        .map(|mut vcpu| {
            scope.spawn(move || {
                // SAFETY: pthread_self has no preconditions.
                lock(&bus.threads).push(unsafe { libc::pthread_self() });
                let exit = jail
                    .confine_thread(ThreadKind::Vcpu)
                    .and_then(|()| run_vcpu(&mut vcpu, bus));
                bus.end(exit);
            })
        })
        .collect();
    // From here on SIGALRM goes to a vCPU thread (its KVM_RUN returns EINTR at once and it ends
    // the machine); parked here, this thread would only see it at its next wake (std's park
    // waits out EINTR). The vCPUs were spawned first: they inherit no blocked signal.
    keep_vcpu_signals_away();
    if let Err(e) = jail.confine_thread(ThreadKind::Supervisor) {
        bus.end(Err(e));
    }
    // Asleep until the machine ends (`Bus::end` wakes it; a vCPU ends it on --timeout's alarm)
    // or the boot time limit passes: a polling supervisor would take the CPU from the vCPU
    // hundreds of times a second, each a world switch.
    while !bus.stop.load(Ordering::SeqCst) {
        if TIMED_OUT.load(Ordering::SeqCst) {
            bus.end(Ok(VmExit::Timeout));
        } else if !booted(bus) {
            match boot_timeout.checked_sub(bus.started.elapsed()) {
                Some(left) => std::thread::park_timeout(left.min(IDLE_CHECK)),
                None => bus.end(Ok(VmExit::BootTimeout)),
            }
        } else {
            std::thread::park_timeout(IDLE_CHECK);
        }
    }
    if timeout.is_some() {
        // SAFETY: cancels the pending alarm; no memory is involved.
        unsafe { libc::alarm(0) };
    }
    // A vCPU may be inside KVM_RUN (a halted guest CPU stays there): kick until all are out.
    while handles.iter().any(|h| !h.is_finished()) {
        for t in lock(&bus.threads).iter() {
            // SAFETY: the thread is one of ours and still joinable (scoped threads are joined
            // only when the scope ends), so its pthread_t is valid.
            unsafe { libc::pthread_kill(*t, kick_signal()) };
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    lock(&bus.ending)
        .take()
        .unwrap_or_else(|| Err("the vCPUs ended without a reason".into()))
}

/// Everything a vCPU exit may reach: the devices on I/O ports and on MMIO, guest memory, the
/// boot timer's marks.
pub struct Bus<'a> {
    pub uart: Mutex<Uart>,
    pub i8042: Mutex<I8042>,
    pub virtio: Vec<Mutex<MmioTransport>>,
    pub mem: &'a GuestMemoryMmap,
    pub marks: Mutex<BootTimer>,
    pub started: Instant,
    /// Raised when the machine ends; every vCPU stops at its next exit.
    pub stop: AtomicBool,
    /// How it ended, as the first vCPU (or the time limit) saw it.
    pub ending: Mutex<Option<Result<VmExit, String>>>,
    /// The vCPU threads, to kick out of KVM_RUN.
    pub threads: Mutex<Vec<libc::pthread_t>>,
    /// The thread that watches the time limits, to wake when the machine ends.
    pub supervisor: std::sync::OnceLock<std::thread::Thread>,
    /// Exits handled here, by kind: port I/O, MMIO (each a trip from the guest to isola).
    pub io_exits: AtomicU64,
    pub mmio_exits: AtomicU64,
    /// Each exit in words, with --explain (see explain.rs).
    pub exit_log: ExitLog,
}

impl Bus<'_> {
    /// The machine ends with `how` (unless it already ended otherwise): every vCPU stops at
    /// its next exit and the supervisor wakes.
    pub fn end(&self, how: Result<VmExit, String>) {
        lock(&self.ending).get_or_insert(how);
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.supervisor.get() {
            t.unpark();
        }
    }

    /// The virtio transport whose register window holds `addr`, and the offset in it.
    fn virtio_at(&self, addr: u64) -> Option<(&Mutex<MmioTransport>, u64)> {
        let offset = addr.checked_sub(VIRTIO_MMIO_BASE)?;
        let t = self.virtio.get((offset / VIRTIO_MMIO_SIZE) as usize)?;
        Some((t, offset % VIRTIO_MMIO_SIZE))
    }
}

/// Runs a vCPU until the guest resets or shuts down the machine, or the time limit passes.
fn run_vcpu(vcpu: &mut VcpuFd, bus: &Bus) -> Result<VmExit, String> {
    loop {
        if TIMED_OUT.load(Ordering::SeqCst) {
            return Ok(VmExit::Timeout);
        }
        if bus.stop.load(Ordering::SeqCst) {
            return Ok(VmExit::Shutdown); // another vCPU saw the end first; its reason stands
        }
        match vcpu.run() {
            Ok(VcpuExit::IoIn(port, data)) => {
                bus.io_exits.fetch_add(1, Ordering::Relaxed);
                bus.exit_log.note(Exit::PortIn(port, data.len()));
                let v = {
                    let mut uart = lock(&bus.uart);
                    if uart.handles(port) {
                        uart.read(port)
                    } else if I8042::handles(port) {
                        lock(&bus.i8042).read(port)
                    } else {
                        0xff
                    }
                };
                data.iter_mut().for_each(|b| *b = v);
            }
            Ok(VcpuExit::IoOut(port, data)) => {
                bus.io_exits.fetch_add(1, Ordering::Relaxed);
                bus.exit_log.note(Exit::PortOut(port, data));
                let v = data.first().copied().unwrap_or(0);
                let mut uart = lock(&bus.uart);
                if uart.handles(port) {
                    uart.write(port, v);
                } else if I8042::handles(port) {
                    if lock(&bus.i8042).write(port, v) {
                        explain::say(|| "the guest reset the machine through the i8042".into());
                        return Ok(VmExit::Reset);
                    }
                } else if port == BOOT_TIMER_PORT {
                    lock(&bus.marks).record(v);
                }
            }
            Ok(VcpuExit::MmioRead(addr, data)) => {
                bus.mmio_exits.fetch_add(1, Ordering::Relaxed);
                bus.exit_log.note(Exit::MmioRead(addr, data.len()));
                match bus.virtio_at(addr) {
                    Some((t, offset)) => lock(t).read(offset, data),
                    None => data.iter_mut().for_each(|b| *b = 0xff),
                }
            }
            Ok(VcpuExit::MmioWrite(addr, data)) => {
                bus.mmio_exits.fetch_add(1, Ordering::Relaxed);
                bus.exit_log.note(Exit::MmioWrite(addr, data));
                if let Some((t, offset)) = bus.virtio_at(addr) {
                    lock(t).write(offset, data, bus.mem);
                }
            }
            Ok(VcpuExit::Shutdown) | Ok(VcpuExit::Hlt) => {
                bus.exit_log.note(Exit::Stopped(
                    "KVM_EXIT_SHUTDOWN or HLT: the vCPU stopped (a triple fault, or a halt the \
                     in-kernel interrupt controller cannot end)",
                ));
                return Ok(VmExit::Shutdown);
            }
            Ok(VcpuExit::InternalError) => {
                return Err(
                    "KVM could not emulate a guest instruction (KVM_EXIT_INTERNAL_ERROR); \
                     is this a nested PVM host? see `isola doctor`"
                        .into(),
                )
            }
            Ok(VcpuExit::FailEntry(reason, _)) => {
                return Err(format!(
                    "KVM could not enter the guest (hardware entry failure {reason:#x})"
                ))
            }
            Ok(other) => return Err(format!("unexpected VM exit {other:?}")),
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => continue,
            Err(e) => return Err(format!("KVM_RUN: {e}")),
        }
    }
}
