//! The secrets engine: OpenBao's `pb.Backend` service. Paths:
//! - `config` (create/update/read/delete): Strongroom's URL, the tenant and its `vault-plugin`
//!   credential, kept in OpenBao's storage; a read never shows the credential;
//! - `creds/<role>` (read): a Strongroom lease for a working role, answered as `token` with an
//!   OpenBao lease whose MaxTTL is Strongroom's hard cap; renew and revoke follow the lease.
//!
//! Strongroom decides which roles may be minted (the working roles only) and how long a lease
//! may live; the plugin never widens either. Revoke is idempotent so OpenBao's expiration
//! manager never retries a lease that is already gone.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::pki_types::CertificateDer;
use serde_json::{json, Map, Value};
use tokio::sync::{Notify, RwLock};
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use crate::broker::{self, Broker};
use crate::config::{self, Config};
use crate::log::{line, Level};
use crate::proto::logical;
use crate::proto::pb;
use crate::proto::pb::backend_server::Backend;
use crate::proto::pb::storage_client::StorageClient;
use crate::proto::pb::system_view_client::SystemViewClient;
use crate::proto::plugin;
use crate::strongroom::{Failure, Strongroom};
use crate::tls::Identity;

/// `logical.TypeLogical`: a secrets engine.
const TYPE_LOGICAL: u32 = 1;

/// How long `Setup` waits for the broker's announcement of the host services.
const BROKER_WAIT: Duration = Duration::from_secs(5);

const HELP: &str = "Strongroom secrets engine: write config (url, tenant, token: the tenant's \
vault-plugin credential; optional ca_cert), then read creds/<role> (app-reader, app-writer, dpo, \
auditor) for a short-lived Strongroom token. Renewal never passes Strongroom's hard cap; \
revoking the lease revokes the token.";

/// The operations OpenBao sends (`logical.Operation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    Create,
    Read,
    Update,
    Delete,
    Renew,
    Revoke,
    Rollback,
    Help,
    /// OpenBao 2.7's path resolution ahead of a request; nothing to resolve here.
    ResolvePath,
    Other,
}

impl Operation {
    fn of(name: &str) -> Operation {
        match name {
            "create" => Operation::Create,
            "read" => Operation::Read,
            "update" => Operation::Update,
            "delete" => Operation::Delete,
            "renew" => Operation::Renew,
            "revoke" => Operation::Revoke,
            "rollback" => Operation::Rollback,
            "help" => Operation::Help,
            "resolve-path" => Operation::ResolvePath,
            _ => Operation::Other,
        }
    }
}

/// The error kinds of `pb.ProtoError.err_type` this engine answers with.
#[derive(Debug, Clone, Copy)]
enum ErrType {
    Internal = 2,
    /// An HTTP status in `err_code`.
    Coded = 3,
    UnsupportedOperation = 5,
    UnsupportedPath = 6,
}

#[derive(Debug)]
struct Refusal {
    kind: ErrType,
    code: i64,
    message: String,
}

impl Refusal {
    fn coded(code: u16, message: impl Into<String>) -> Refusal {
        Refusal { kind: ErrType::Coded, code: code.into(), message: message.into() }
    }

    fn internal(message: impl Into<String>) -> Refusal {
        Refusal { kind: ErrType::Internal, code: 0, message: message.into() }
    }

    fn bad_request(message: impl Into<String>) -> Refusal {
        Refusal::coded(400, message)
    }

    fn unsupported(kind: ErrType, what: &str) -> Refusal {
        Refusal { kind, code: 0, message: what.to_string() }
    }

    fn proto(self) -> pb::ProtoError {
        pb::ProtoError { err_type: self.kind as u32, err_msg: self.message, err_code: self.code }
    }
}

impl From<Failure> for Refusal {
    fn from(f: Failure) -> Refusal {
        match f {
            // The mount's credential refused is the operator's problem, not the caller's: a 401
            // or 403 would read as the caller's own OpenBao token lacking rights.
            Failure::Refused { status: 401 | 403, message } => Refusal::coded(
                502,
                format!("Strongroom refused this mount's credential ({message}): write config with a live vault-plugin credential"),
            ),
            Failure::Refused { status, message } => Refusal::coded(status, format!("Strongroom refused: {message}")),
            Failure::Unavailable(why) => Refusal::coded(503, why),
        }
    }
}

type Answer = Result<Option<pb::Response>, Refusal>;

/// The host's services, reached over the broker.
#[derive(Clone)]
struct Host {
    storage: StorageClient<Channel>,
    system: SystemViewClient<Channel>,
}

/// A mount's configuration with its ready client.
struct Mounted {
    config: Config,
    /// `config.fingerprint()`, which every lease minted under it records.
    fingerprint: String,
    strongroom: Strongroom,
}

pub struct Engine {
    identity: Arc<Identity>,
    host_cert: CertificateDer<'static>,
    broker: Arc<Broker>,
    host: RwLock<Option<Host>>,
    /// The stored config, read once and dropped on a write, `InvalidateKey` or `Cleanup`.
    mounted: RwLock<Option<Arc<Mounted>>>,
}

impl Engine {
    pub fn new(identity: Arc<Identity>, host_cert: CertificateDer<'static>, broker: Arc<Broker>) -> Engine {
        Engine { identity, host_cert, broker, host: RwLock::new(None), mounted: RwLock::new(None) }
    }

    async fn host(&self) -> Result<Host, Refusal> {
        self.host.read().await.clone().ok_or_else(|| Refusal::internal("this mount has no storage (the host did not broker one)"))
    }

    async fn stored(&self) -> Result<Option<Config>, Refusal> {
        match self.get(config::STORAGE_KEY).await? {
            None => Ok(None),
            Some(value) => {
                serde_json::from_slice(&value).map(Some).map_err(|_| Refusal::internal("the stored config is unreadable; write it again"))
            }
        }
    }

    async fn mounted(&self) -> Result<Arc<Mounted>, Refusal> {
        self.current().await?.ok_or_else(|| Refusal::bad_request("not configured: write config (url, tenant, token) first"))
    }

    /// The stored config with its client, cached; `None` when nothing is configured.
    async fn current(&self) -> Result<Option<Arc<Mounted>>, Refusal> {
        if let Some(m) = self.mounted.read().await.clone() {
            return Ok(Some(m));
        }
        // Loaded under the write lock: a write or invalidation in between waits for it, so an
        // older config can never be cached over a newer one.
        let mut cached = self.mounted.write().await;
        if let Some(m) = cached.clone() {
            return Ok(Some(m));
        }
        let Some(config) = self.stored().await? else { return Ok(None) };
        let mounted = Arc::new(Mounted::new(config)?);
        *cached = Some(mounted.clone());
        Ok(Some(mounted))
    }

    /// The config a lease was minted under (its fingerprint in `internal_data`): the current
    /// one, or a retired one. `None` when neither is kept any more.
    async fn minted_under(&self, fingerprint: Option<&str>) -> Result<Option<Arc<Mounted>>, Refusal> {
        let current = self.current().await?;
        let Some(fingerprint) = fingerprint else { return Ok(current) };
        if let Some(m) = current.filter(|m| m.fingerprint == fingerprint) {
            return Ok(Some(m));
        }
        let Some(entry) = self.get(&format!("{}{fingerprint}", config::RETIRED_PREFIX)).await? else { return Ok(None) };
        let retired: config::Retired = serde_json::from_slice(&entry).map_err(|_| Refusal::internal("a retired config is unreadable"))?;
        Ok(Some(Arc::new(Mounted::new(retired.config)?)))
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Refusal> {
        let mut host = self.host().await?;
        let reply =
            host.storage.get(pb::StorageGetArgs { key: key.into(), txn: String::new() }).await.map_err(storage_failed("get"))?.into_inner();
        storage_done("get", &reply.err)?;
        Ok(reply.entry.map(|e| e.value))
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<(), Refusal> {
        let mut host = self.host().await?;
        let entry = pb::StorageEntry { key: key.into(), value, seal_wrap: true };
        let reply = host.storage.put(pb::StoragePutArgs { entry: Some(entry), txn: String::new() }).await.map_err(storage_failed("put"))?;
        storage_done("put", &reply.into_inner().err)
    }

    async fn delete(&self, key: &str) -> Result<(), Refusal> {
        let mut host = self.host().await?;
        let reply =
            host.storage.delete(pb::StorageDeleteArgs { key: key.into(), txn: String::new() }).await.map_err(storage_failed("delete"))?;
        storage_done("delete", &reply.into_inner().err)
    }

    /// Keeps `config` under `retired/` for the leases minted under it, and drops retired configs
    /// older than `RETIRED_KEEP_S`.
    async fn retire(&self, config: Config) -> Result<(), Refusal> {
        let now = unix_now();
        let key = format!("{}{}", config::RETIRED_PREFIX, config.fingerprint());
        let value =
            serde_json::to_vec(&config::Retired { config, retired_at: now }).map_err(|_| Refusal::internal("config does not serialize"))?;
        self.put(&key, value).await?;
        let mut host = self.host().await?;
        let listed = host.storage.list(pb::StorageListArgs { prefix: config::RETIRED_PREFIX.into(), txn: String::new() }).await;
        let names = listed.map(|r| r.into_inner().keys).unwrap_or_default();
        for name in names {
            let key = format!("{}{name}", config::RETIRED_PREFIX);
            let Some(value) = self.get(&key).await? else { continue };
            let expired = serde_json::from_slice::<config::Retired>(&value).map_or(true, |r| now - r.retired_at > config::RETIRED_KEEP_S);
            if expired {
                self.delete(&key).await?;
            }
        }
        Ok(())
    }

    async fn forget(&self) {
        *self.mounted.write().await = None;
    }

    async fn route(&self, request: pb::Request) -> Answer {
        let operation = Operation::of(&request.operation);
        match operation {
            Operation::Help => return Ok(Some(response(json!({"help": HELP}), None))),
            Operation::Rollback | Operation::ResolvePath => return Ok(None),
            _ => {}
        }
        if request.path == config::STORAGE_KEY {
            return match operation {
                Operation::Read => self.read_config().await,
                Operation::Create | Operation::Update => self.write_config(&request).await,
                Operation::Delete => self.delete_config().await,
                _ => Err(Refusal::unsupported(ErrType::UnsupportedOperation, "config takes create, update, read and delete")),
            };
        }
        if let Some(role) = request.path.strip_prefix("creds/") {
            return match operation {
                Operation::Read => self.creds(role, &request).await,
                Operation::Renew => self.renew(&request).await,
                Operation::Revoke => self.revoke(&request).await,
                _ => Err(Refusal::unsupported(ErrType::UnsupportedOperation, "creds/<role> takes read")),
            };
        }
        Err(Refusal::unsupported(ErrType::UnsupportedPath, "unsupported path: this engine serves config and creds/<role>"))
    }

    async fn read_config(&self) -> Answer {
        Ok(self.stored().await?.map(|c| response(c.shown(), None)))
    }

    async fn write_config(&self, request: &pb::Request) -> Answer {
        let data = request_data(request)?;
        // Held from reading the config being replaced to writing its successor: no request
        // caches the old one meanwhile, and two writes cannot both replace the same config (the
        // one between them would never be retired).
        let mut cached = self.mounted.write().await;
        let previous = self.stored().await?;
        let config = Config::written(previous.as_ref(), &data).map_err(Refusal::bad_request)?;
        let fingerprint = config.fingerprint();
        let value = serde_json::to_vec(&config).map_err(|_| Refusal::internal("config does not serialize"))?;
        if let Some(previous) = previous.filter(|p| p.fingerprint() != fingerprint) {
            self.retire(previous).await?;
        }
        let written = self.put(config::STORAGE_KEY, value).await;
        *cached = None;
        written?;
        line(Level::Info, &format!("config written: url={} tenant={} credential={fingerprint}", config.url, config.tenant));
        Ok(None)
    }

    async fn delete_config(&self) -> Answer {
        let mut cached = self.mounted.write().await;
        if let Some(previous) = self.stored().await? {
            self.retire(previous).await?;
        }
        let deleted = self.delete(config::STORAGE_KEY).await;
        *cached = None;
        deleted?;
        Ok(None)
    }

    /// The lease's length: the `ttl` asked for, else the mount's default, and never past the
    /// mount's maximum, so that Strongroom's lease ends when OpenBao's does.
    async fn lease_ttl(&self, request: &pb::Request) -> Result<Option<i64>, Refusal> {
        let asked = match request_data(request)?.get("ttl") {
            None | Some(Value::Null) => None,
            Some(v) => Some(seconds(v).ok_or_else(|| Refusal::bad_request("ttl must be seconds or a duration such as 10m"))?),
        };
        let Ok(mut host) = self.host().await else { return Ok(asked) };
        let ttl_of = |r: Result<Response<pb::TtlReply>, Status>| r.ok().map(|r| r.into_inner().ttl / 1_000_000_000).filter(|s| *s > 0);
        let max = ttl_of(host.system.max_lease_ttl(pb::Empty {}).await);
        let ttl = match asked {
            Some(a) => Some(a),
            None => ttl_of(host.system.default_lease_ttl(pb::Empty {}).await),
        };
        Ok(match (ttl, max) {
            (Some(t), Some(m)) => Some(t.min(m)),
            (t, _) => t,
        })
    }

    async fn creds(&self, role: &str, request: &pb::Request) -> Answer {
        // Strongroom decides which roles exist (working roles, `role:<name>` tenant roles); this
        // only keeps the path to plain names.
        if role.is_empty() || role.len() > 100 || !role.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b':' | b'.'))
        {
            return Err(Refusal::bad_request("bad role"));
        }
        let mounted = self.mounted().await?;
        let ttl = self.lease_ttl(request).await?;
        let creds = mounted.strongroom.creds(role, ttl).await?;
        let options = pb::LeaseOptions {
            ttl: nanos(creds.lease_duration),
            renewable: creds.renewable,
            increment: 0,
            issue_time: Some(timestamp(SystemTime::now())),
            max_ttl: nanos(creds.max_lease_duration),
        };
        let internal = json!({"lease_id": creds.lease_id, "role": role, "config": mounted.fingerprint});
        let data = json!({"token": creds.token.as_str(), "tenant": mounted.config.tenant, "role": role});
        Ok(Some(response(
            data,
            Some(pb::Secret { lease_options: Some(options), internal_data: internal.to_string(), lease_id: String::new() }),
        )))
    }

    async fn renew(&self, request: &pb::Request) -> Answer {
        let secret = request.secret.clone().ok_or_else(|| Refusal::bad_request("renew without a lease"))?;
        let (lease_id, fingerprint) = lease_of(&secret).ok_or_else(|| Refusal::bad_request("the lease carries no Strongroom lease id"))?;
        let options = secret.lease_options.unwrap_or_default();
        let increment = (options.increment > 0).then(|| options.increment.saturating_add(999_999_999) / 1_000_000_000);
        let mounted = self
            .minted_under(fingerprint.as_deref())
            .await?
            .ok_or_else(|| Refusal::bad_request("the config this lease was minted under is gone: read new creds"))?;
        let renewed = mounted.strongroom.renew(&lease_id, increment).await?;
        // MaxTTL counts from the lease's issue time, Strongroom's cap from now: OpenBao prefers
        // the caller's increment over our TTL, so only MaxTTL keeps its lease within the cap.
        let issued = options.issue_time.unwrap_or_else(|| timestamp(SystemTime::now()));
        let elapsed = unix_now().saturating_sub(issued.seconds).max(0);
        let renewed_options = pb::LeaseOptions {
            ttl: nanos(renewed.lease_duration),
            renewable: renewed.renewable,
            increment: options.increment,
            issue_time: Some(issued),
            max_ttl: nanos(elapsed.saturating_add(renewed.max_lease_duration)),
        };
        // The answer's secret and data replace the stored ones: both are echoed.
        let data: Value = serde_json::from_str(&request.data).unwrap_or_else(|_| json!({}));
        Ok(Some(response(
            data,
            Some(pb::Secret { lease_options: Some(renewed_options), internal_data: secret.internal_data, lease_id: String::new() }),
        )))
    }

    /// Revokes with the credential that minted the lease (current or retired config). A lease
    /// with no Strongroom lease id is none of ours and done; one whose config is gone entirely
    /// stays an error, since its token may live on: OpenBao keeps retrying and reports it, and
    /// revoking the vault-plugin credential in Strongroom ends it (and every lease it minted).
    async fn revoke(&self, request: &pb::Request) -> Answer {
        let Some((lease_id, fingerprint)) = request.secret.as_ref().and_then(lease_of) else {
            line(Level::Warn, "revoke of a lease without a Strongroom lease id: nothing to revoke");
            return Ok(None);
        };
        let Some(mounted) = self.minted_under(fingerprint.as_deref()).await? else {
            return Err(Refusal::internal(
                "the config this lease was minted under is gone, so its token cannot be revoked from here: \
                 revoke the vault-plugin credential in Strongroom, which revokes every lease it minted",
            ));
        };
        mounted.strongroom.revoke(&lease_id).await?;
        Ok(None)
    }
}

impl Mounted {
    fn new(config: Config) -> Result<Mounted, Refusal> {
        let strongroom = Strongroom::new(&config).map_err(Refusal::internal)?;
        Ok(Mounted { fingerprint: config.fingerprint(), config, strongroom })
    }
}

/// The Strongroom lease id and the fingerprint of the config it was minted under.
fn lease_of(secret: &pb::Secret) -> Option<(String, Option<String>)> {
    let internal: Value = serde_json::from_str(&secret.internal_data).ok()?;
    let lease = internal["lease_id"].as_str()?.to_string();
    Some((lease, internal["config"].as_str().map(str::to_string)))
}

/// A storage call the host's gRPC refused.
fn storage_failed(op: &'static str) -> impl Fn(Status) -> Refusal {
    move |s| Refusal::internal(format!("storage {op}: {}", s.message()))
}

/// A storage reply's own error field: empty when the call succeeded.
fn storage_done(op: &str, err: &str) -> Result<(), Refusal> {
    if err.is_empty() {
        Ok(())
    } else {
        Err(Refusal::internal(format!("storage {op}: {err}")))
    }
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() as i64
}

fn request_data(request: &pb::Request) -> Result<Map<String, Value>, Refusal> {
    if request.data.trim().is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_str(&request.data) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(Value::Null) => Ok(Map::new()),
        _ => Err(Refusal::bad_request("the request data must be a JSON object")),
    }
}

fn response(data: Value, secret: Option<pb::Secret>) -> pb::Response {
    pb::Response { data: data.to_string(), secret, ..Default::default() }
}

/// Go's `time.Duration`: nanoseconds.
fn nanos(seconds: i64) -> i64 {
    seconds.saturating_mul(1_000_000_000)
}

fn timestamp(t: SystemTime) -> prost_types::Timestamp {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    prost_types::Timestamp { seconds: d.as_secs() as i64, nanos: d.subsec_nanos() as i32 }
}

/// A TTL as OpenBao passes it on: seconds (number or digits) or a Go duration ("90s", "10m",
/// "1h30m"). Sub-second parts round up; zero or negative is no TTL.
pub fn seconds(v: &Value) -> Option<i64> {
    let secs = match v {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) if s.bytes().all(|b| b.is_ascii_digit()) && !s.is_empty() => s.parse::<f64>().ok()?,
        Value::String(s) => go_duration(s)?,
        _ => return None,
    };
    (secs.is_finite() && secs > 0.0 && secs < 1e12).then(|| secs.ceil() as i64)
}

fn go_duration(s: &str) -> Option<f64> {
    let mut rest = s;
    let mut total = 0.0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += number * scale;
        rest = &rest[unit_len..];
    }
    Some(total)
}

#[tonic::async_trait]
impl Backend for Engine {
    async fn handle_request(&self, request: Request<pb::HandleRequestArgs>) -> Result<Response<pb::HandleRequestReply>, Status> {
        let Some(req) = request.into_inner().request else {
            return Ok(Response::new(pb::HandleRequestReply { response: None, err: Some(Refusal::bad_request("no request").proto()) }));
        };
        let reply = match self.route(req).await {
            Ok(response) => pb::HandleRequestReply { response, err: None },
            Err(refusal) => pb::HandleRequestReply { response: None, err: Some(refusal.proto()) },
        };
        Ok(Response::new(reply))
    }

    async fn special_paths(&self, _: Request<pb::Empty>) -> Result<Response<pb::SpecialPathsReply>, Status> {
        // The stored config holds a credential: seal-wrapped where the seal can.
        let paths = pb::Paths { seal_wrap_storage: vec![config::STORAGE_KEY.into(), config::RETIRED_PREFIX.into()], ..Default::default() };
        Ok(Response::new(pb::SpecialPathsReply { paths: Some(paths) }))
    }

    async fn handle_existence_check(
        &self,
        request: Request<pb::HandleExistenceCheckArgs>,
    ) -> Result<Response<pb::HandleExistenceCheckReply>, Status> {
        let is_config = request.into_inner().request.is_some_and(|r| r.path == config::STORAGE_KEY);
        let reply = if !is_config {
            pb::HandleExistenceCheckReply { check_found: false, exists: false, err: None }
        } else {
            match self.stored().await {
                Ok(stored) => pb::HandleExistenceCheckReply { check_found: true, exists: stored.is_some(), err: None },
                Err(refusal) => pb::HandleExistenceCheckReply { check_found: true, exists: false, err: Some(refusal.proto()) },
            }
        };
        Ok(Response::new(reply))
    }

    async fn cleanup(&self, _: Request<pb::Empty>) -> Result<Response<pb::Empty>, Status> {
        // Quick by design: a slow Cleanup blocks the host's shutdown (observed).
        self.forget().await;
        Ok(Response::new(pb::Empty {}))
    }

    async fn invalidate_key(&self, request: Request<pb::InvalidateKeyArgs>) -> Result<Response<pb::Empty>, Status> {
        if request.into_inner().key == config::STORAGE_KEY {
            self.forget().await;
        }
        Ok(Response::new(pb::Empty {}))
    }

    async fn setup(&self, request: Request<pb::SetupArgs>) -> Result<Response<pb::SetupReply>, Status> {
        let broker_id = request.into_inner().broker_id;
        let Some(info) = self.broker.announced(broker_id, BROKER_WAIT).await else {
            // Registration probes may broker nothing; a mount without storage refuses config.
            line(Level::Warn, "no host services were brokered; running without storage");
            return Ok(Response::new(pb::SetupReply { err: String::new() }));
        };
        let tls = self.identity.client_config(&self.host_cert).map_err(|e| Status::internal(e.to_string()))?;
        match broker::dial(&info, Arc::new(tls)).await {
            Ok(channel) => {
                let host = Host { storage: StorageClient::new(channel.clone()), system: SystemViewClient::new(channel) };
                *self.host.write().await = Some(host);
                self.forget().await;
                Ok(Response::new(pb::SetupReply { err: String::new() }))
            }
            Err(why) => {
                line(Level::Error, &why);
                Ok(Response::new(pb::SetupReply { err: why }))
            }
        }
    }

    async fn initialize(&self, _: Request<pb::InitializeArgs>) -> Result<Response<pb::InitializeReply>, Status> {
        Ok(Response::new(pb::InitializeReply { err: None }))
    }

    async fn r#type(&self, _: Request<pb::Empty>) -> Result<Response<pb::TypeReply>, Status> {
        Ok(Response::new(pb::TypeReply { r#type: TYPE_LOGICAL }))
    }
}

/// `logical.PluginVersion`: the crate's version, as semver with a leading `v`.
pub struct Version;

#[tonic::async_trait]
impl logical::plugin_version_server::PluginVersion for Version {
    async fn version(&self, _: Request<logical::Empty>) -> Result<Response<logical::VersionReply>, Status> {
        Ok(Response::new(logical::VersionReply { plugin_version: concat!("v", env!("CARGO_PKG_VERSION")).to_string() }))
    }
}

/// go-plugin's GRPCController: the host asks the plugin to exit (and kills it ~2 s later).
pub struct Controller(pub Arc<Notify>);

#[tonic::async_trait]
impl plugin::grpc_controller_server::GrpcController for Controller {
    async fn shutdown(&self, _: Request<plugin::Empty>) -> Result<Response<plugin::Empty>, Status> {
        self.0.notify_one();
        Ok(Response::new(plugin::Empty {}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_read_as_openbao_passes_them() {
        assert_eq!(seconds(&json!(5)), Some(5));
        assert_eq!(seconds(&json!("300")), Some(300));
        assert_eq!(seconds(&json!("5s")), Some(5));
        assert_eq!(seconds(&json!("1h30m")), Some(5400));
        assert_eq!(seconds(&json!("1.5s")), Some(2));
        assert_eq!(seconds(&json!("500ms")), Some(1));
        for bad in [json!("ten"), json!("5x"), json!(""), json!(0), json!(-3), json!(true), json!("1e400s")] {
            assert_eq!(seconds(&bad), None, "{bad}");
        }
    }

    #[test]
    fn operations_are_named_as_openbao_names_them() {
        assert_eq!(Operation::of("resolve-path"), Operation::ResolvePath);
        assert_eq!(Operation::of("renew"), Operation::Renew);
        assert_eq!(Operation::of("patch"), Operation::Other);
    }

    #[test]
    fn strongroom_refusals_keep_their_status_and_outages_are_503() {
        let e = Refusal::from(Failure::Refused { status: 400, message: "bad role".into() }).proto();
        assert_eq!((e.err_type, e.err_code), (ErrType::Coded as u32, 400));
        assert!(e.err_msg.contains("bad role"));
        let e = Refusal::from(Failure::Unavailable("down".into())).proto();
        assert_eq!(e.err_code, 503);
        // The mount's own credential refused is not the caller's 403.
        let e = Refusal::from(Failure::Refused { status: 403, message: "invalid credential".into() }).proto();
        assert_eq!(e.err_code, 502);
        assert!(e.err_msg.contains("write config"));
    }
}
