//! `strongroom-openbao-plugin`: an OpenBao / HashiCorp Vault secrets engine that turns Vault
//! leases into short-lived Strongroom tokens, so applications never hold a long-lived Strongroom
//! credential. The host runs it as a go-plugin child process (protocol 5, gRPC over AutoMTLS);
//! the protocol as measured is in docs/vault-plugin.md and ../shared/vault-plugin-protocol.md.
//!
//! Start-up: check the host's magic cookie (a plain run, or the host's database-plugin probe,
//! exits non-zero), make a certificate, listen on a private unix socket, print the handshake
//! line, serve until the host says Shutdown or goes away.

mod backend;
mod broker;
mod config;
mod install;
mod log;
mod proto;
mod strongroom;
mod tls;

use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, Notify};
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;

use crate::log::{line, Level};

/// go-plugin's handshake for Vault/OpenBao backends: the cookie's key, its value, and the one
/// protocol version spoken (gRPC with AutoMTLS).
const COOKIE_KEY: &str = "VAULT_BACKEND_PLUGIN";
const COOKIE_VALUE: &str = "6669da05-b1c8-4f49-97d9-c8e5bed98e20";
const PROTOCOL_VERSION: &str = "5";

/// What the host told the plugin through the environment.
struct Launch {
    host_cert: CertificateDer<'static>,
    socket_base: PathBuf,
}

impl Launch {
    fn from_env() -> Result<Launch, String> {
        let var = |k: &str| std::env::var(k).unwrap_or_default();
        if var(COOKIE_KEY) != COOKIE_VALUE {
            // Also what tells OpenBao's type probe that this is not a database plugin.
            return Err("This is an OpenBao / HashiCorp Vault plugin: register it with the server \
                        (see docs/vault-plugin.md) rather than running it directly. \
                        `strongroom-openbao-plugin install DIR` copies it into a plugin directory."
                .into());
        }
        if !var("PLUGIN_PROTOCOL_VERSIONS").split(',').any(|v| v.trim() == PROTOCOL_VERSION) {
            return Err(format!(
                "the host offers plugin protocols {:?}; this plugin speaks {PROTOCOL_VERSION}",
                var("PLUGIN_PROTOCOL_VERSIONS")
            ));
        }
        let metadata_mode = var("BAO_PLUGIN_METADATA_MODE") == "true" || var("VAULT_PLUGIN_METADATA_MODE") == "true";
        let pem = var("PLUGIN_CLIENT_CERT");
        if metadata_mode || pem.is_empty() {
            return Err("the host did not enable AutoMTLS; this plugin serves only over mutual TLS".into());
        }
        let socket_base = std::env::var_os("PLUGIN_UNIX_SOCKET_DIR").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
        Ok(Launch { host_cert: tls::host_certificate(&pem)?, socket_base })
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Only outside a host: OpenBao's own arguments (from the catalog) never select a subcommand.
    if std::env::var_os(COOKIE_KEY).is_none() {
        if let [cmd, dir] = args.as_slice() {
            if cmd == "install" {
                return match install::run(std::path::Path::new(dir)) {
                    Ok(sha) => {
                        println!("installed {dir}/{}\nsha256 {sha}", install::NAME);
                        println!("register: bao plugin register -sha256={sha} -command={} secret strongroom", install::NAME);
                        ExitCode::SUCCESS
                    }
                    Err(why) => {
                        eprintln!("{why}");
                        ExitCode::FAILURE
                    }
                };
            }
        }
    }
    let launch = match Launch::from_env() {
        Ok(l) => l,
        Err(why) => {
            eprintln!("{why}");
            return ExitCode::FAILURE;
        }
    };
    // The HTTP client to Strongroom finds its provider here; every other config names it.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let served = runtime.block_on(serve(launch));
    // A task still blocked (a DNS lookup) must not keep a plugin the host is done with alive.
    runtime.shutdown_timeout(Duration::from_millis(500));
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            line(Level::Error, &why);
            ExitCode::FAILURE
        }
    }
}

/// A directory only this user can enter, holding the socket; removed on the way out.
struct SocketDir(PathBuf);

impl SocketDir {
    fn create(base: &std::path::Path) -> Result<SocketDir, String> {
        let mut attempt = 0u32;
        loop {
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().subsec_nanos();
            let path = base.join(format!("strongroom-plugin-{}-{nanos:x}", std::process::id()));
            match std::fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => return Ok(SocketDir(path)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 8 => attempt += 1,
                Err(e) => return Err(format!("cannot create the socket directory in {}: {e}", base.display())),
            }
        }
    }
}

impl Drop for SocketDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn serve(launch: Launch) -> Result<(), String> {
    let identity = Arc::new(tls::Identity::generate().map_err(|e| format!("cannot make a certificate: {e}"))?);
    let server_tls = Arc::new(identity.server_config(&launch.host_cert).map_err(|e| e.to_string())?);
    let dir = SocketDir::create(&launch.socket_base)?;
    let socket = dir.0.join("plugin.sock");
    let listener = UnixListener::bind(&socket).map_err(|e| format!("cannot listen on {}: {e}", socket.display()))?;

    // Each connection's TLS handshake runs on its own, so a stalled client holds up nobody.
    let (accepted, incoming) = mpsc::channel::<Result<Conn, std::io::Error>>(16);
    let acceptor = tokio_rustls::TlsAcceptor::from(server_tls);
    tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors, say: keep serving the connections there are.
                    line(Level::Warn, &format!("accept failed: {e}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let (acceptor, accepted) = (acceptor.clone(), accepted.clone());
            tokio::spawn(async move {
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => {
                        let _ = accepted.send(Ok(Conn(tls))).await;
                    }
                    Ok(Err(e)) => line(Level::Warn, &format!("refused a connection: {e}")),
                    Err(_) => line(Level::Warn, "refused a connection: TLS handshake timed out"),
                }
            });
        }
    });

    let broker = Arc::new(broker::Broker::default());
    let shutdown = Arc::new(Notify::new());
    let engine = backend::Engine::new(identity.clone(), launch.host_cert.clone(), broker.clone());
    let server = tonic::transport::Server::builder()
        .add_service(proto::pb::backend_server::BackendServer::new(engine))
        .add_service(proto::plugin::grpc_broker_server::GrpcBrokerServer::new(broker::BrokerService(broker)))
        .add_service(proto::plugin::grpc_controller_server::GrpcControllerServer::new(backend::Controller(shutdown.clone())))
        .add_service(proto::logical::plugin_version_server::PluginVersionServer::new(backend::Version))
        .serve_with_incoming(ReceiverStream::new(incoming));
    let server = tokio::spawn(server);

    // CORE|APP|NETWORK|ADDR|PROTOCOL|SERVER-CERT, then nothing more on stdout.
    let mut out = std::io::stdout().lock();
    writeln!(out, "1|{PROTOCOL_VERSION}|unix|{}|grpc|{}", socket.display(), identity.handshake_field()).map_err(|e| e.to_string())?;
    out.flush().map_err(|e| e.to_string())?;
    drop(out);

    let parent = std::os::unix::process::parent_id();
    let orphaned = async move {
        // OpenBao killed without a Shutdown leaves the plugin to init: leave too.
        while std::os::unix::process::parent_id() == parent {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    };
    let interrupted = async {
        // go-plugin's convention: a terminal's Ctrl-C reaches the whole process group; the host
        // shuts its plugins down itself, so an interrupt is not a reason to go.
        loop {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = shutdown.notified() => {
            // Let the Shutdown reply reach the host before the process goes.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        _ = orphaned => line(Level::Warn, "the host went away; exiting"),
        r = server => return r.map_err(|e| e.to_string())?.map_err(|e| e.to_string()),
        _ = interrupted => {}
    }
    drop(dir);
    Ok(())
}

/// A served TLS connection, as tonic wants it.
struct Conn(tokio_rustls::server::TlsStream<UnixStream>);

impl Connected for Conn {
    type ConnectInfo = ();
    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for Conn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[std::io::IoSlice<'_>]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}
