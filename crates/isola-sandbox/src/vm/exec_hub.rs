//! Exec into a VM: the monitor listens on `exec.sock` in the container's state directory; each
//! `isola exec` that connects is one session. The client sends guest-bound frames for session
//! 0 (`Exec`, then `ExecStdin`, `ExecSignal`); the monitor numbers them and passes them to the
//! guest, and passes the session's `ExecStdout`, `ExecStderr` and `ExecExit` back. A client
//! that goes away takes its process with it (SIGKILL in the guest).

use isola_guest_contract::frame::{Decoder, Frame, ToGuest, ToHost};
use isola_vmm::host_relay::Sideband;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Where a VM container's monitor takes exec sessions.
pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join("exec.sock")
}

/// `f` with the socket's path, reached through a descriptor of the state directory when the
/// whole path is longer than a socket address holds (108 bytes; a deep `--root` or
/// `ISOLA_ROOT`): `/proc/self/fd/N/exec.sock` is short, and the kernel resolves it alike.
fn at_socket<T>(
    state_dir: &Path,
    f: impl FnOnce(&Path) -> std::io::Result<T>,
) -> std::io::Result<T> {
    let full = socket_path(state_dir);
    if full.as_os_str().len() < 100 {
        return f(&full);
    }
    let dir = std::fs::File::open(state_dir)?;
    f(&PathBuf::from(format!(
        "/proc/self/fd/{}/exec.sock",
        dir.as_raw_fd()
    )))
}

/// Listens for exec sessions in `state_dir`.
pub fn listen(state_dir: &Path) -> std::io::Result<UnixListener> {
    at_socket(state_dir, |p| UnixListener::bind(p))
}

/// An exec session's connection to the monitor of `state_dir`.
pub fn connect(state_dir: &Path) -> std::io::Result<UnixStream> {
    at_socket(state_dir, |p| UnixStream::connect(p))
}

struct Client {
    id: u32,
    stream: UnixStream,
    decoder: Decoder<ToGuest>,
}

pub struct ExecHub {
    listener: UnixListener,
    clients: Vec<Client>,
    next: u32,
}

/// Shared by the relay (clients in) and the channel's reader (guest frames out).
pub type SharedHub = Arc<Mutex<ExecHub>>;

impl ExecHub {
    pub fn new(listener: UnixListener) -> SharedHub {
        let _ = listener.set_nonblocking(true);
        Arc::new(Mutex::new(ExecHub {
            listener,
            clients: Vec::new(),
            next: 1,
        }))
    }

    /// A guest frame of a session, to its client (the last one ends it).
    pub fn deliver(&mut self, f: &ToHost) {
        let Some(id) = f.session() else { return };
        if let Some(c) = self.clients.iter_mut().find(|c| c.id == id) {
            let _ = c.stream.write_all(&f.encode());
        }
        if f.ends_session() {
            self.clients.retain(|c| c.id != id);
        }
    }
}

/// The relay's view of a shared hub.
pub struct HubSide(pub SharedHub);

impl Sideband for HubSide {
    fn fds(&self) -> Vec<RawFd> {
        let hub = self.0.lock().unwrap_or_else(|p| p.into_inner());
        std::iter::once(hub.listener.as_raw_fd())
            .chain(hub.clients.iter().map(|c| c.stream.as_raw_fd()))
            .collect()
    }

    fn ready(&mut self, fd: RawFd, to_guest: &mut Vec<u8>) {
        let mut hub = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if fd == hub.listener.as_raw_fd() {
            while let Ok((stream, _)) = hub.listener.accept() {
                let _ = stream.set_nonblocking(false);
                let id = hub.next;
                hub.next += 1;
                hub.clients.push(Client {
                    id,
                    stream,
                    decoder: Decoder::default(),
                });
            }
            return;
        }
        let Some(i) = hub.clients.iter().position(|c| c.stream.as_raw_fd() == fd) else {
            return;
        };
        let mut buf = [0u8; 65536];
        let c = &mut hub.clients[i];
        let n = c.stream.read(&mut buf).unwrap_or(0);
        let (frames, corrupt) = c.decoder.feed(&buf[..n]);
        for f in frames {
            to_guest.extend(f.for_session(c.id).encode());
        }
        if n == 0 || corrupt.is_some() {
            // Gone (or talking nonsense): its process goes too.
            to_guest.extend(
                ToGuest::ExecSignal {
                    session: c.id,
                    signal: libc::SIGKILL,
                }
                .encode(),
            );
            hub.clients.remove(i);
        }
    }
}
