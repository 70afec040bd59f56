//! System* endpoints of the v2 contract served so far: SystemGenerateWrappingKey.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::Value;
use zeroize::Zeroizing;

use super::body::{Body, Metadata};
use super::{fields, Call};
use crate::app::AppState;
use crate::auth::Claimed;
use crate::error::Result;

pub fn routes() -> Router<AppState> {
    Router::new().route("/v2/SystemGenerateWrappingKey", post(generate_wrapping_key))
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
