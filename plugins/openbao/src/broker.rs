//! go-plugin's GRPCBroker. Just before `Setup`, the host opens a gRPC server for the plugin
//! (Storage, SystemView) and announces its socket as a `ConnInfo` on the broker stream; the
//! plugin dials it with mTLS. The stream must stay open for the plugin's whole life: without it
//! the host's unmount and shutdown hang (measured on OpenBao 2.7.2).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::Notify;
use tonic::codegen::tokio_stream::{self, Stream};
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status, Streaming};

use crate::proto::plugin::grpc_broker_server::GrpcBroker;
use crate::proto::plugin::ConnInfo;

/// The host's announcements, by service id.
#[derive(Default)]
pub struct Broker {
    announced: Mutex<HashMap<u32, ConnInfo>>,
    arrived: Notify,
}

impl Broker {
    fn record(&self, info: ConnInfo) {
        self.announced.lock().unwrap_or_else(|p| p.into_inner()).insert(info.service_id, info);
        self.arrived.notify_waiters();
    }

    /// The announcement for `id`, waiting up to `within` for it to arrive (it races `Setup`).
    pub async fn announced(&self, id: u32, within: Duration) -> Option<ConnInfo> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let arrived = self.arrived.notified();
            if let Some(info) = self.announced.lock().unwrap_or_else(|p| p.into_inner()).get(&id) {
                return Some(info.clone());
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return None;
            }
        }
    }
}

/// The gRPC face of the broker.
pub struct BrokerService(pub Arc<Broker>);

#[tonic::async_trait]
impl GrpcBroker for BrokerService {
    type StartStreamStream = Pin<Box<dyn Stream<Item = Result<ConnInfo, Status>> + Send>>;

    async fn start_stream(&self, request: Request<Streaming<ConnInfo>>) -> Result<Response<Self::StartStreamStream>, Status> {
        let mut inbound = request.into_inner();
        let broker = self.0.clone();
        tokio::spawn(async move {
            while let Ok(Some(info)) = inbound.message().await {
                broker.record(info);
            }
        });
        // The plugin never asks the host to dial a service of its own, so its side of the stream
        // carries nothing; it stays open until the host ends the call.
        Ok(Response::new(Box::pin(tokio_stream::pending())))
    }
}

/// A channel to a brokered host service: mTLS with our certificate, pinning the host's.
pub async fn dial(info: &ConnInfo, tls: Arc<rustls::ClientConfig>) -> Result<Channel, String> {
    let network = info.network.clone();
    let address = info.address.clone();
    if network != "unix" && network != "tcp" {
        return Err(format!("broker announced an unknown network {network:?}"));
    }
    let connector = tower::service_fn(move |_: tonic::codegen::http::Uri| {
        let (network, address, tls) = (network.clone(), address.clone(), tls.clone());
        async move {
            let connector = tokio_rustls::TlsConnector::from(tls);
            let name = ServerName::try_from("localhost").expect("a valid name");
            if network == "unix" {
                let stream = UnixStream::connect(&address).await?;
                Ok::<_, std::io::Error>(TokioIo::new(Box::new(connector.connect(name, stream).await?) as Box<dyn Io>))
            } else {
                let stream = TcpStream::connect(&address).await?;
                Ok(TokioIo::new(Box::new(connector.connect(name, stream).await?) as Box<dyn Io>))
            }
        }
    });
    // The URI only names the authority for HTTP/2; the connector above decides where to go.
    Endpoint::from_static("http://localhost")
        .connect_timeout(Duration::from_secs(5))
        .connect_with_connector(connector)
        .await
        .map_err(|e| format!("cannot reach the host's brokered services: {e}"))
}

/// A TLS stream over either transport.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> Io for T {}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_announcement_is_found_whether_it_comes_before_or_after_the_wait() {
        let broker = Arc::new(Broker::default());
        broker.record(ConnInfo { service_id: 1, network: "unix".into(), address: "/a".into(), knock: None });
        assert_eq!(broker.announced(1, Duration::from_millis(10)).await.unwrap().address, "/a");
        let late = broker.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            late.record(ConnInfo { service_id: 2, network: "unix".into(), address: "/b".into(), knock: None });
        });
        assert_eq!(broker.announced(2, Duration::from_secs(5)).await.unwrap().address, "/b");
        assert!(broker.announced(3, Duration::from_millis(20)).await.is_none());
    }
}
