//! A HashiCorp Vault stand-in: just enough of the KV v2 engine (read, write, and deleting a
//! secret's metadata, which in Vault destroys every version of it) and the Kubernetes auth
//! method (login) for the auto-unseal and tenant-KEK tests, answering with Vault's documented
//! JSON shapes (`{"data":{"data":…,"metadata":…}, "lease_id", …}`; 204 for a metadata delete,
//! absent path or not). No Vault binary can be installed here, so this is the closest faithful
//! peer we can run; it checks `X-Vault-Token` like Vault does. It is not Vault: versions are
//! not kept (a write replaces the data), and nothing else of the engine exists.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

#[derive(Default)]
pub struct Inner {
    /// (mount, path) -> (version, data)
    pub secrets: HashMap<(String, String), (u64, Value)>,
    pub tokens: Vec<String>,
    /// role -> expected service-account JWT
    pub k8s_roles: HashMap<String, String>,
    pub reads: u64,
    pub metadata_deletes: u64,
}

#[derive(Clone, Default)]
pub struct StandIn(pub Arc<Mutex<Inner>>);

fn envelope(data: Value, auth: Value) -> Value {
    json!({"request_id": uuid::Uuid::new_v4().to_string(), "lease_id": "", "renewable": false, "lease_duration": 0,
           "data": data, "wrap_info": null, "warnings": null, "auth": auth})
}

fn denied() -> Response {
    (StatusCode::FORBIDDEN, Json(json!({"errors": ["permission denied"]}))).into_response()
}

impl StandIn {
    fn authorized(&self, headers: &HeaderMap) -> bool {
        let token = headers.get("x-vault-token").and_then(|v| v.to_str().ok()).unwrap_or("");
        self.0.lock().unwrap().tokens.iter().any(|t| t == token)
    }

    pub fn put(&self, mount: &str, path: &str, data: Value) {
        let mut g = self.0.lock().unwrap();
        let version = g.secrets.get(&(mount.into(), path.into())).map_or(1, |(v, _)| v + 1);
        g.secrets.insert((mount.into(), path.into()), (version, data));
    }

    pub fn get(&self, mount: &str, path: &str) -> Option<Value> {
        self.0.lock().unwrap().secrets.get(&(mount.into(), path.into())).map(|(_, d)| d.clone())
    }

    /// Serves on 127.0.0.1:0; returns the base URL.
    pub async fn serve(self) -> String {
        let app = Router::new()
            .route("/v1/{mount}/data/{*path}", get(read).post(write))
            .route("/v1/{mount}/metadata/{*path}", delete(delete_metadata))
            .route("/v1/auth/{mount}/login", post(login))
            .with_state(self);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }
}

async fn read(State(s): State<StandIn>, Path((mount, path)): Path<(String, String)>, headers: HeaderMap) -> Response {
    if !s.authorized(&headers) {
        return denied();
    }
    let mut g = s.0.lock().unwrap();
    g.reads += 1;
    match g.secrets.get(&(mount, path)) {
        Some((version, data)) => {
            let meta = json!({"created_time": "2026-11-23T00:00:00Z", "deletion_time": "", "custom_metadata": null, "destroyed": false, "version": version});
            Json(envelope(json!({"data": data, "metadata": meta}), Value::Null)).into_response()
        }
        None => (StatusCode::NOT_FOUND, Json(json!({"errors": []}))).into_response(),
    }
}

/// Like Vault, takes a JSON body whatever the Content-Type says.
async fn write(
    State(s): State<StandIn>,
    Path((mount, path)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if !s.authorized(&headers) {
        return denied();
    }
    let Some(data) = body.get("data").cloned() else {
        return (StatusCode::BAD_REQUEST, Json(json!({"errors": ["no data provided"]}))).into_response();
    };
    s.put(&mount, &path, data);
    let version = s.0.lock().unwrap().secrets[&(mount, path)].0;
    let meta = json!({"created_time": "2026-11-23T00:00:00Z", "deletion_time": "", "custom_metadata": null, "destroyed": false, "version": version});
    Json(envelope(meta, Value::Null)).into_response()
}

/// `DELETE /v1/{mount}/metadata/{path}`: removes the secret with all its versions; 204 whether
/// or not it existed, as Vault answers.
async fn delete_metadata(State(s): State<StandIn>, Path((mount, path)): Path<(String, String)>, headers: HeaderMap) -> Response {
    if !s.authorized(&headers) {
        return denied();
    }
    let mut g = s.0.lock().unwrap();
    g.secrets.remove(&(mount, path));
    g.metadata_deletes += 1;
    StatusCode::NO_CONTENT.into_response()
}

async fn login(State(s): State<StandIn>, Path(_mount): Path<String>, body: axum::body::Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let role = body["role"].as_str().unwrap_or("");
    let jwt = body["jwt"].as_str().unwrap_or("");
    let mut g = s.0.lock().unwrap();
    if g.k8s_roles.get(role).map(String::as_str) != Some(jwt) {
        return (StatusCode::FORBIDDEN, Json(json!({"errors": ["invalid role or service account token"]}))).into_response();
    }
    let token = format!("hvs.{}", uuid::Uuid::new_v4().simple());
    g.tokens.push(token.clone());
    let auth = json!({"client_token": token, "accessor": "acc", "policies": ["strongroom"], "token_policies": ["strongroom"],
                      "metadata": {"role": role}, "lease_duration": 3600, "renewable": true, "entity_id": "", "token_type": "service", "orphan": true});
    Json(envelope(Value::Null, auth)).into_response()
}
