//! A loopback TCP proxy that can stop forwarding without closing anything:
//! the failure of a host that vanished without a RST (a rescheduled pod, a
//! NAT that dropped the flow). The kernel keeps every socket open, requests
//! are accepted and never answered.
//!
//! ```no_run
//! # async fn run() {
//! let proxy = covet_test::proxy::BlackHoleProxy::start("127.0.0.1:6379".parse().unwrap()).await;
//! let url = format!("redis://{}", proxy.addr());
//! proxy.black_hole();           // traffic vanishes from now on
//! proxy.forward_to("127.0.0.1:6380".parse().unwrap()); // new connections go there
//! # }
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Forward, new connections to this upstream.
    Forward(SocketAddr),
    /// Forward requests to the upstream of each connection, swallow the
    /// replies: the server applies what it is sent, the client never hears.
    DropReplies(SocketAddr),
    /// Accept connections and read what arrives, forward nothing, close
    /// nothing.
    BlackHole,
}

/// The proxy; stops (closing its connections) when dropped.
#[derive(Debug)]
pub struct BlackHoleProxy {
    addr: SocketAddr,
    mode: watch::Sender<(Mode, u64)>,
    accepted: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl BlackHoleProxy {
    /// A proxy on a free loopback port, forwarding to `upstream`.
    pub async fn start(upstream: SocketAddr) -> BlackHoleProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address");
        let (mode, rx) = watch::channel((Mode::Forward(upstream), 0));
        let accepted = Arc::new(AtomicU64::new(0));
        let count = Arc::clone(&accepted);
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                count.fetch_add(1, Ordering::Relaxed);
                let _ = client.set_nodelay(true);
                tokio::spawn(serve(client, rx.clone()));
            }
        });
        BlackHoleProxy {
            addr,
            mode,
            accepted,
            task,
        }
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// From now on every byte in either direction, on every connection old
    /// and new, is swallowed. Nothing is closed.
    pub fn black_hole(&self) {
        self.mode.send_modify(|(m, n)| {
            *m = Mode::BlackHole;
            *n += 1;
        });
    }

    /// Requests keep reaching the server (new connections go to
    /// `upstream`), replies are swallowed: every request times out after
    /// the server applied it.
    pub fn drop_replies(&self, upstream: SocketAddr) {
        self.mode.send_modify(|(m, n)| {
            *m = Mode::DropReplies(upstream);
            *n += 1;
        });
    }

    /// New connections are forwarded to `upstream`. Connections that were
    /// black-holed stay dead (their flow is gone, as after a NAT reset);
    /// connections opened while forwarding keep forwarding to the upstream
    /// they were opened to.
    pub fn forward_to(&self, upstream: SocketAddr) {
        self.mode.send_modify(|(m, n)| {
            *m = Mode::Forward(upstream);
            *n += 1;
        });
    }
}

impl Drop for BlackHoleProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One client connection.
async fn serve(mut client: TcpStream, mut mode: watch::Receiver<(Mode, u64)>) {
    let mut now = mode.borrow_and_update().0;
    let upstream = match now {
        Mode::Forward(to) | Mode::DropReplies(to) => to,
        Mode::BlackHole => return swallow(client).await,
    };
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = server.set_nodelay(true);
    let (mut cr, mut cw) = client.split();
    let (mut sr, mut sw) = server.split();
    let mut up = [0u8; 16 * 1024];
    let mut down = [0u8; 16 * 1024];
    loop {
        tokio::select! {
            n = cr.read(&mut up) => match n {
                Ok(0) | Err(_) => return,
                Ok(n) => if now != Mode::BlackHole && sw.write_all(&up[..n]).await.is_err() {
                    return;
                },
            },
            n = sr.read(&mut down) => match n {
                Ok(0) | Err(_) => return,
                Ok(n) => if matches!(now, Mode::Forward(_)) && cw.write_all(&down[..n]).await.is_err() {
                    return;
                },
            },
            changed = mode.changed() => {
                if changed.is_err() {
                    return;
                }
                // A flow that was black-holed never comes back.
                if now != Mode::BlackHole {
                    now = mode.borrow_and_update().0;
                }
            }
        }
    }
}

async fn swallow(mut client: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    while let Ok(n) = client.read(&mut buf).await {
        if n == 0 {
            return;
        }
    }
}
