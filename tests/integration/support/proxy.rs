//! A TCP proxy the test controls: `cut` drops every open connection and
//! refuses new ones until `restore`; `black_hole` keeps every connection
//! open but drops what crosses it (a peer gone without a reset) until
//! `restore`. Used to make the database or Redis vanish and come back
//! under a running server.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

pub struct TcpProxy {
    pub addr: SocketAddr,
    cut: Arc<AtomicBool>,
    silent: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
}

impl TcpProxy {
    pub fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy bind");
        let addr = listener.local_addr().expect("proxy addr");
        let cut = Arc::new(AtomicBool::new(false));
        let silent = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        {
            let (cut, stop, open, silent) = (cut.clone(), stop.clone(), open.clone(), silent.clone());
            thread::spawn(move || {
                for client in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(client) = client else { continue };
                    if cut.load(Ordering::SeqCst) {
                        let _ = client.shutdown(Shutdown::Both);
                        continue;
                    }
                    let Ok(server) = TcpStream::connect(target) else {
                        let _ = client.shutdown(Shutdown::Both);
                        continue;
                    };
                    if let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) {
                        // Checked again under the lock `cut` drains with: a
                        // connection accepted while `cut` ran must not survive it.
                        let mut open = open.lock().unwrap();
                        if cut.load(Ordering::SeqCst) {
                            let _ = client.shutdown(Shutdown::Both);
                            let _ = server.shutdown(Shutdown::Both);
                            continue;
                        }
                        open.push(c2);
                        open.push(s2);
                    }
                    pipe(client, server, &silent);
                }
            });
        }
        Self { addr, cut, silent, open, stop }
    }

    /// Keeps the connections open and accepts new ones, but nothing gets
    /// through, either way, until `restore`.
    pub fn black_hole(&self) {
        self.silent.store(true, Ordering::SeqCst);
    }

    /// Closes every connection through the proxy and refuses new ones.
    pub fn cut(&self) {
        let mut open = self.open.lock().unwrap();
        self.cut.store(true, Ordering::SeqCst);
        for stream in open.drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    pub fn restore(&self) {
        self.silent.store(false, Ordering::SeqCst);
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.cut();
        // Wake the accept loop so it sees `stop`.
        let _ = TcpStream::connect(self.addr);
    }
}

/// Copies both ways; while `silent`, what is read is dropped.
fn pipe(a: TcpStream, b: TcpStream, silent: &Arc<AtomicBool>) {
    let copy = |mut from: TcpStream, mut to: TcpStream| {
        let silent = silent.clone();
        thread::spawn(move || -> io::Result<()> {
            use std::io::{Read, Write};
            let mut buf = [0u8; 16 * 1024];
            loop {
                let n = from.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                if !silent.load(Ordering::SeqCst) {
                    to.write_all(&buf[..n])?;
                }
            }
            let _ = to.shutdown(Shutdown::Write);
            Ok(())
        });
    };
    if let (Ok(a2), Ok(b2)) = (a.try_clone(), b.try_clone()) {
        copy(a, b2);
        copy(b, a2);
    }
}
