//! Test support: throwaway databases and a TCP proxy that can cut the
//! connection to Postgres and restore it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use diesel::connection::SimpleConnection as _;
use diesel::prelude::*;

/// The server the tests use; `TEST_DATABASE_URL` may point elsewhere.
pub fn postgres_base_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://localhost".to_owned())
}

/// A uniquely named database that is dropped when the value is.
#[derive(Debug)]
pub struct TestDatabase {
    pub name: String,
    base: String,
}

impl TestDatabase {
    /// A fresh, empty database (the server under test migrates it).
    pub fn create(prefix: &str) -> Self {
        let base = postgres_base_url();
        let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnection::establish(&format!("{base}/postgres")).expect("connect to postgres");
        conn.batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .expect("create test database");
        Self { name, base }
    }

    /// A name for a database that does not exist yet (the server creates it);
    /// it is dropped at the end all the same.
    pub fn reserve(prefix: &str) -> Self {
        let base = postgres_base_url();
        let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        Self { name, base }
    }

    pub fn url(&self) -> String {
        format!("{}/{}", self.base, self.name)
    }

    /// The URL of this database reached through `proxy` instead.
    pub fn url_via(&self, proxy: &TcpProxy) -> String {
        format!("postgres://{}/{}", proxy.addr(), self.name)
    }

    pub fn connect(&self) -> PgConnection {
        PgConnection::establish(&self.url()).expect("connect to test database")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Ok(mut conn) = PgConnection::establish(&format!("{}/postgres", self.base)) {
            let _ = conn.batch_execute(&format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name));
        }
    }
}

/// Forwards TCP connections to a target until stopped; `start_again` opens
/// the same port again. Stopping also cuts every open connection, which is
/// what a Postgres crash looks like to a client.
pub struct TcpProxy {
    addr: SocketAddr,
    target: SocketAddr,
    running: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
    accept_thread: Option<thread::JoinHandle<()>>,
}

impl TcpProxy {
    pub fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut proxy = Self {
            addr,
            target,
            running: Arc::new(AtomicBool::new(false)),
            open: Arc::new(Mutex::new(Vec::new())),
            accept_thread: None,
        };
        proxy.run(listener);
        proxy
    }

    /// A proxy in front of the local Postgres.
    pub fn to_postgres() -> Self {
        let url = url::Url::parse(&postgres_base_url()).unwrap();
        let host = url.host_str().unwrap_or("localhost");
        let host = if host == "localhost" { "127.0.0.1" } else { host };
        let port = url.port().unwrap_or(5432);
        Self::start(format!("{host}:{port}").parse().unwrap())
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn run(&mut self, listener: TcpListener) {
        listener.set_nonblocking(true).unwrap();
        self.running.store(true, Ordering::SeqCst);
        let running = self.running.clone();
        let open = self.open.clone();
        let target = self.target;
        self.accept_thread = Some(thread::spawn(move || {
            while running.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let Ok(server) = TcpStream::connect(target) else {
                            continue;
                        };
                        client.set_nonblocking(false).unwrap();
                        let mut guard = open.lock().unwrap();
                        guard.push(client.try_clone().unwrap());
                        guard.push(server.try_clone().unwrap());
                        drop(guard);
                        pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
                        pipe(server, client);
                    }
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
        }));
    }

    /// Closes the port and cuts every open connection.
    pub fn stop(&mut self) {
        self.running.store(false, Ordering::SeqCst);
        if let Some(t) = self.accept_thread.take() {
            let _ = t.join();
        }
        for stream in self.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    /// Opens the same port again.
    pub fn start_again(&mut self) {
        let listener = TcpListener::bind(self.addr).unwrap();
        self.run(listener);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.stop();
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}
