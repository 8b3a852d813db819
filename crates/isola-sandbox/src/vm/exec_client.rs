//! `exec` into a VM-isolated container: this process is the session's client. It hands the
//! process (resolved on the host, as the workload's was) to the container's monitor over
//! `exec.sock`, then relays: its stdin in, the session's stdout and stderr out, the signals it
//! gets in as the session's; it ends with the session's status. With `--detach` a child of it
//! is the client, and the pid file names that child (a subreaper waits for it as for the
//! process).

use super::boot::{write_all, FORWARDED_SIGNALS};
use super::exec_hub::socket_path;
use crate::{Detached, Error, ExecRequest, Status};
use isola_container::ContainerError;
use isola_guest_contract::frame::{Decoder, Frame, ToGuest, ToHost};
use isola_guest_contract::processes::GuestProcess;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;

pub fn exec(
    c: &Detached,
    r: ExecRequest,
    started: &mut dyn FnMut(i32) -> Result<(), Error>,
) -> Result<i32, Error> {
    let wrong = |m: &str| {
        Err(Error::Container(
            isola_container::ContainerError::WrongState(m.into()),
        ))
    };
    match c.status() {
        Status::Running => {}
        Status::Paused => return wrong("cannot exec in a paused container"),
        Status::Created => return wrong("cannot exec in a VM container before it is started"),
        Status::Stopped | Status::Creating => return wrong("cannot exec in a stopped container"),
    }
    let (mut spec, _) = isola_container::load_spec(&c.state.bundle)?;
    spec.set_process(Some(r.process));
    let plan = isola_process::Plan::from_spec(&spec).map_err(Error::Config)?;
    let socket = socket_path(&c.dir);
    let stream = super::exec_hub::connect(&c.dir)
        .map_err(|e| Error::Io(format!("{}: {e}", socket.display())))?;
    // With a terminal and a console socket: a host pty whose master goes to the caller; its
    // slave is the client's terminal (as the monitor does for the workload).
    let slave = match (plan.terminal, r.console_socket) {
        (true, Some(sock)) => Some(crate::console::for_console_socket(sock)?),
        _ => None,
    };
    let tty = plan.terminal;
    let plan = serde_json::to_vec(&plan).map_err(|e| Error::Io(e.to_string()))?;
    if !r.detach {
        started(std::process::id() as i32)?;
        return Ok(session(stream, &plan, slave, tty));
    }
    // SAFETY: fork(2) of this single-threaded process (an OCI runtime's `exec` starts no
    // threads); the child runs the session and exits.
    let fork = unsafe { nix::unistd::fork() }.map_err(|e| Error::Io(format!("fork: {e}")))?;
    let nix::unistd::ForkResult::Parent { child } = fork else {
        let code = session(stream, &plan, slave, tty);
        // SAFETY: _exit ends the child with the session's status.
        unsafe { libc::_exit(code) }
    };
    started(child.as_raw())?;
    Ok(0)
}

/// The workload's processes, as the guest numbers them (none before `start`).
pub fn processes(c: &Detached) -> Result<Vec<GuestProcess>, Error> {
    match c.status() {
        Status::Running | Status::Created => {}
        Status::Paused => {
            return Err(Error::Container(ContainerError::WrongState(
                "cannot list the processes of a paused VM (its vCPUs are frozen)".into(),
            )))
        }
        Status::Stopped | Status::Creating => {
            return Err(Error::Container(ContainerError::WrongState(
                "container not running".into(),
            )))
        }
    }
    let socket = socket_path(&c.dir);
    let gone = |e: std::io::Error| Error::Io(format!("{}: {e}", socket.display()));
    let mut stream = super::exec_hub::connect(&c.dir).map_err(gone)?;
    stream
        .write_all(&ToGuest::ListProcesses { session: 0 }.encode())
        .map_err(gone)?;
    let mut decoder = Decoder::<ToHost>::default();
    let mut buf = vec![0u8; 65536];
    loop {
        let n = stream.read(&mut buf).map_err(gone)?;
        if n == 0 {
            return Err(Error::Vm(
                "the VM ended before it listed its processes".into(),
            ));
        }
        let (frames, corrupt) = decoder.feed(&buf[..n]);
        if let Some(c) = corrupt {
            return Err(Error::Vm(c.to_string()));
        }
        for f in frames {
            if let ToHost::Processes { list, .. } = f {
                return isola_guest_contract::processes::decode(&list)
                    .ok_or_else(|| Error::Vm("the guest's process list does not parse".into()));
            }
        }
    }
}

/// Runs one session to its end; returns its status.
fn session(mut stream: UnixStream, plan: &[u8], slave: Option<OwnedFd>, tty: bool) -> i32 {
    if let Some(slave) = &slave {
        let _ = nix::unistd::setsid();
        if let Err(e) = crate::console::take(slave) {
            eprintln!("isola: exec: the terminal: {e}");
            return 125;
        }
    }
    drop(slave);
    // Keys reach the guest's pty untouched.
    let _raw = tty.then(super::terminal::RawMode::enter).flatten();
    let signals = match isola_vmm::host_relay::block_signals(FORWARDED_SIGNALS) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("isola: exec: {e}");
            return 125;
        }
    };
    let send = |stream: &mut UnixStream, f: ToGuest| stream.write_all(&f.encode()).is_ok();
    if !send(
        &mut stream,
        ToGuest::Exec {
            session: 0,
            plan: plan.to_vec(),
        },
    ) {
        eprintln!("isola: exec: the container's monitor is gone");
        return 125;
    }
    // With a terminal, its size goes in now and with each change (its SIGWINCH): the guest
    // pty's size, which signals the session's foreground processes there.
    let resize = |stream: &mut UnixStream| {
        if let Some((rows, cols)) = super::terminal::window_size().filter(|s| *s != (0, 0)) {
            send(
                stream,
                ToGuest::ExecResize {
                    session: 0,
                    rows,
                    cols,
                },
            );
        }
    };
    if tty {
        resize(&mut stream);
    }
    let mut decoder = Decoder::<ToHost>::default();
    let mut stdin_open = true;
    let mut buf = vec![0u8; 65536];
    loop {
        let mut fds = [
            libc::pollfd {
                fd: if stdin_open { 0 } else { -1 },
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: stream.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: signals.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: poll over our own array of three pollfds.
        if unsafe { libc::poll(fds.as_mut_ptr(), 3, -1) } < 0 {
            continue; // EINTR
        }
        if fds[0].revents != 0 {
            // SAFETY: read into a live buffer from our stdin.
            let n = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
            let data = if n > 0 {
                buf[..n as usize].to_vec()
            } else {
                Vec::new()
            };
            stdin_open = n > 0;
            send(&mut stream, ToGuest::ExecStdin { session: 0, data });
        }
        if fds[2].revents != 0 {
            while let Some(signal) = isola_vmm::host_relay::next_signal(signals.as_raw_fd()) {
                if tty && signal == libc::SIGWINCH {
                    resize(&mut stream);
                } else {
                    send(&mut stream, ToGuest::ExecSignal { session: 0, signal });
                }
            }
        }
        if fds[1].revents != 0 {
            let n = stream.read(&mut buf).unwrap_or(0);
            if n == 0 {
                eprintln!("isola: exec: the container ended before the process did");
                return 137;
            }
            let (frames, _) = decoder.feed(&buf[..n]);
            for f in frames {
                match f {
                    ToHost::ExecStdout { data, .. } => write_all(1, &data),
                    ToHost::ExecStderr { data, .. } => write_all(2, &data),
                    ToHost::ExecExit { code, .. } => return code,
                    _ => {}
                }
            }
        }
    }
}
