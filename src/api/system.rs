//! SystemGenerateWrappingKey, SystemSetLicenseKey, and `GET /metrics` on the API address (the
//! SDKs' getSystemMetrics). All three are for the main tenant's root only (resource `system`).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::Value;
use zeroize::Zeroizing;

use super::body::{Body, Metadata};
use super::{fields, Call};
use crate::app::AppState;
use crate::auth::Claimed;
use crate::error::{Error, Result};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v2/SystemGenerateWrappingKey", post(generate_wrapping_key))
        .route("/v2/SystemSetLicenseKey", post(set_license_key))
        .route("/metrics", get(metrics))
}

#[derive(Deserialize)]
struct LicenseReq {
    #[serde(default)]
    licensekey: Option<Zeroizing<String>>,
    #[serde(default)]
    request_metadata: Metadata,
}

/// Strongroom needs no licence: the call is accepted and audited, the key is not stored (nor
/// recorded: it is the customer's secret with another vendor), and the answer says so.
async fn set_license_key(State(st): State<AppState>, claimed: Claimed, Body(req): Body<LicenseReq>) -> Result<Json<Value>> {
    let call = Call::open(&st, &claimed, "SystemSetLicenseKey", req.request_metadata).await?;
    let result = match req.licensekey.as_deref().map(|k| k.trim()) {
        None | Some("") => Err(Error::bad("missing field `licensekey`")),
        Some(_) => Ok(fields([("message", "Strongroom needs no license key; it was accepted and not stored".into())])),
    };
    call.finish(result).await
}

/// The Prometheus text of this instance, as the metrics listener serves it, for the root
/// credential (the unauthenticated listener, `STRONGROOM_METRICS_LISTEN`, is for scrapers on a
/// private network). The call is audited like any other.
pub async fn metrics(State(st): State<AppState>, claimed: Claimed) -> Result<Response> {
    let call = Call::open(&st, &claimed, "SystemGetMetrics", Metadata::default()).await?;
    let handle = crate::telemetry::install_metrics().map_err(Error::Internal)?;
    // Audited and committed; the answer is the text, not the JSON acknowledgement.
    let _ack = call.finish(Ok(serde_json::Map::new())).await?;
    Ok(crate::telemetry::scrape_text(&st, &handle).into_response())
}

#[derive(Deserialize)]
struct WrapReq {
    key1: Zeroizing<String>,
    key2: Zeroizing<String>,
    /// Our threshold is 2: a third share is optional, and checked when given.
    #[serde(default)]
    key3: Option<Zeroizing<String>>,
    #[serde(default)]
    request_metadata: Metadata,
}

/// Root of the main tenant only. Returns the new wrapping key once (hex); when an auto-unseal
/// source is configured it is installed there before the vault switches to it.
async fn generate_wrapping_key(State(st): State<AppState>, claimed: Claimed, Body(req): Body<WrapReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "SystemGenerateWrappingKey", req.request_metadata).await?;
    let mut wrapping = None;
    let result = async {
        let mut keys = vec![req.key1.as_str(), req.key2.as_str()];
        if let Some(k3) = &req.key3 {
            keys.push(k3.as_str());
        }
        let wk = st.vault().generate_wrapping_key(&keys, st.unseal_source()).await?;
        if let Some(src) = st.unseal_source() {
            call.note("stored_in", src.describe());
        }
        wrapping = Some(crate::custody::hex_key(&wk));
        Ok(fields([("stored", st.unseal_source().is_some().into())]))
    }
    .await;
    call.finish_revealing(result, "wrappingkey", wrapping.map(|wk| wk.to_string())).await
}
