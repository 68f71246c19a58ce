//! Ports on the loopback interface.

use std::io;
use std::net::TcpListener;

/// A TCP port on 127.0.0.1 that nobody listens on right now: for a server the caller starts
/// (another process can take it before that server binds it: callers retry, or bind port 0
/// themselves where they can), or for a connection that must be refused.
pub fn free_port() -> io::Result<u16> {
    let listener = TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}

/// `http://127.0.0.1:<port>` of a [`free_port`]: an address where a connection is refused.
///
/// Panics when no port can be had (test set-up).
pub fn refused_http_url() -> String {
    let port = free_port().expect("test-support: no free port on 127.0.0.1");
    format!("http://127.0.0.1:{port}")
}
