//! netecho: the sample image's network tool (its busybox `nc` has no UDP), for the network
//! tests and benchmarks — the same binary in the workload and, where a test needs it, on the host.
//!
//!   netecho serve tcp|udp PORT              echo every connection or datagram back, forever
//!   netecho once udp PORT                   print the first datagram, echo it back, exit
//!   netecho peer PORT                       answer one TCP connection with the address it
//!                                           came from (what a server out there sees), exit
//!   netecho ask tcp|udp HOST:PORT MSG       send MSG, print the reply (UDP: sent again every
//!                                           200 ms until one comes, 15 s at most)
//!   netecho rr HOST:PORT SECONDS            1-byte TCP round trips: "rr N round trips M us each"
//!   netecho stream HOST:PORT SECONDS        TCP bulk through the echo: "stream X MB/s"

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

fn die(msg: &str) -> ! {
    eprintln!("netecho: {msg}");
    std::process::exit(2)
}

fn addr(s: &str) -> SocketAddr {
    s.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .unwrap_or_else(|| die(&format!("{s:?}: expected HOST:PORT")))
}

fn port(s: &str) -> u16 {
    s.parse()
        .unwrap_or_else(|_| die(&format!("{s:?}: expected a port")))
}

fn echo_tcp(mut s: TcpStream) {
    let _ = s.set_nodelay(true);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if s.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}

fn serve(proto: &str, port: u16) {
    match proto {
        "tcp" => {
            let l = TcpListener::bind(("0.0.0.0", port)).unwrap_or_else(|e| die(&e.to_string()));
            for s in l.incoming().flatten() {
                std::thread::spawn(move || echo_tcp(s));
            }
        }
        "udp" => {
            let s = UdpSocket::bind(("0.0.0.0", port)).unwrap_or_else(|e| die(&e.to_string()));
            let mut buf = vec![0u8; 65536];
            while let Ok((n, from)) = s.recv_from(&mut buf) {
                let _ = s.send_to(&buf[..n], from);
            }
        }
        p => die(&format!("{p:?}: expected tcp or udp")),
    }
}

fn once_udp(port: u16) {
    let s = UdpSocket::bind(("0.0.0.0", port)).unwrap_or_else(|e| die(&e.to_string()));
    let mut buf = vec![0u8; 65536];
    let (n, from) = s
        .recv_from(&mut buf)
        .unwrap_or_else(|e| die(&e.to_string()));
    let _ = s.send_to(&buf[..n], from);
    println!("{}", String::from_utf8_lossy(&buf[..n]).trim_end());
}

fn peer(port: u16) {
    let l = TcpListener::bind(("0.0.0.0", port)).unwrap_or_else(|e| die(&e.to_string()));
    let (mut s, from) = l.accept().unwrap_or_else(|e| die(&e.to_string()));
    // Read the question whole first: closing with it unread would reset the connection.
    let mut question = Vec::new();
    let _ = s.read_to_end(&mut question);
    let _ = s.write_all(from.ip().to_string().as_bytes());
}

fn ask(proto: &str, to: SocketAddr, msg: &str) {
    let reply = match proto {
        "tcp" => {
            let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(10))
                .unwrap_or_else(|e| die(&format!("{to}: {e}")));
            s.write_all(msg.as_bytes())
                .and_then(|()| s.shutdown(std::net::Shutdown::Write))
                .unwrap_or_else(|e| die(&e.to_string()));
            let mut got = String::new();
            s.set_read_timeout(Some(Duration::from_secs(10))).ok();
            s.read_to_string(&mut got)
                .unwrap_or_else(|e| die(&e.to_string()));
            got
        }
        "udp" => {
            let s = UdpSocket::bind("0.0.0.0:0").unwrap_or_else(|e| die(&e.to_string()));
            s.set_read_timeout(Some(Duration::from_millis(200))).ok();
            let mut buf = vec![0u8; 65536];
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                // A refused send (nothing listening yet) is tried again like a lost one.
                let _ = s.send_to(msg.as_bytes(), to);
                if let Ok((n, _)) = s.recv_from(&mut buf) {
                    break String::from_utf8_lossy(&buf[..n]).into_owned();
                }
                if Instant::now() > deadline {
                    die(&format!("{to}: no reply in 15 s"));
                }
            }
        }
        p => die(&format!("{p:?}: expected tcp or udp")),
    };
    println!("{}", reply.trim_end());
}

fn connect(to: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&to, Duration::from_secs(10))
        .unwrap_or_else(|e| die(&format!("{to}: {e}")));
    s.set_nodelay(true).ok();
    s
}

fn round_trips(to: SocketAddr, secs: f64) {
    let mut s = connect(to);
    let (mut n, mut b) = (0u64, [0u8; 1]);
    let start = Instant::now();
    while start.elapsed().as_secs_f64() < secs {
        s.write_all(b"x")
            .and_then(|()| s.read_exact(&mut b))
            .unwrap_or_else(|e| die(&e.to_string()));
        n += 1;
    }
    let us = start.elapsed().as_secs_f64() * 1e6 / n.max(1) as f64;
    println!("rr {n} round trips {us:.1} us each");
}

fn stream(to: SocketAddr, secs: f64) {
    let s = connect(to);
    let mut reader = s.try_clone().unwrap_or_else(|e| die(&e.to_string()));
    let drain = std::thread::spawn(move || {
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0u64;
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            total += n as u64;
        }
        total
    });
    let mut w = s;
    let chunk = vec![7u8; 128 * 1024];
    let start = Instant::now();
    while start.elapsed().as_secs_f64() < secs {
        w.write_all(&chunk).unwrap_or_else(|e| die(&e.to_string()));
    }
    w.shutdown(std::net::Shutdown::Write).ok();
    let total = drain.join().unwrap_or(0);
    let mbs = total as f64 / start.elapsed().as_secs_f64() / 1e6;
    println!("stream {mbs:.1} MB/s");
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let secs = |s: &str| -> f64 {
        s.parse()
            .unwrap_or_else(|_| die(&format!("{s:?}: expected seconds")))
    };
    match a.as_slice() {
        ["serve", proto, p] => serve(proto, port(p)),
        ["once", "udp", p] => once_udp(port(p)),
        ["peer", p] => peer(port(p)),
        ["ask", proto, to, msg] => ask(proto, addr(to), msg),
        ["rr", to, s] => round_trips(addr(to), secs(s)),
        ["stream", to, s] => stream(addr(to), secs(s)),
        _ => die("usage: netecho serve|once|peer|ask|rr|stream ... (see the source's head)"),
    }
}
