//! The endpoint declarations (`api::endpoints`) against the wire: the OpenAPI document the vault
//! serves lists exactly the declared v2 endpoints, the contract's are exactly those declared as
//! contract endpoints, every declared endpoint is routed, and every name a handler opens a call
//! with is declared. The contract is `tests/contract/v2-endpoints.md` (our copy of
//! `shared/contract/v2-endpoints.md`).

use std::collections::BTreeSet;

use serde_json::{json, Value};
use strongroom::api::endpoints::{self, Effect, Origin};

use crate::helpers::*;

/// Endpoint names of the contract's tables (`| Name | request | response | errors |` rows).
fn contract_names() -> BTreeSet<String> {
    let text = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/contract/v2-endpoints.md")).unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("| "))
        .filter_map(|l| l.split(" |").next())
        .filter(|n| n.chars().next().is_some_and(|c| c.is_ascii_uppercase()) && n.chars().all(|c| c.is_ascii_alphanumeric()))
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn the_served_openapi_document_is_the_declared_surface_and_the_contract() {
    // Sealed (never initialized): the document is still served, to anyone.
    let app = TestApp::spawn_uninitialized().await;
    let r = app.client.get(format!("{}/v2/openapi.json", app.base)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let doc: Value = r.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();

    let declared: BTreeSet<String> = strongroom::api::v2_endpoints().map(|n| format!("/v2/{n}")).collect();
    let served: BTreeSet<String> = paths.keys().cloned().collect();
    assert_eq!(served, declared);

    let contract = contract_names();
    assert_eq!(contract.len(), 92, "{contract:?}");
    let as_contract: BTreeSet<String> = paths
        .iter()
        .filter(|(_, p)| p["post"]["x-strongroom-origin"] == "contract")
        .map(|(_, p)| p["post"]["operationId"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(as_contract, contract, "contract endpoints declared otherwise, or missing");

    let get = &paths["/v2/UserGet"]["post"];
    assert_eq!((get["tags"][0].as_str(), get["x-strongroom-effect"].as_str()), (Some("users.profile"), Some("reads")));
    let bulk = &paths["/v2/BulkListTokens"]["post"];
    assert_eq!(bulk["tags"][0], "tokens", "detokenizing in bulk is a tokens right");
    assert_eq!(paths["/v2/UserCreate"]["post"]["x-strongroom-effect"], "changes");
    for ep in endpoints::ENDPOINTS.iter().filter(|e| e.origin == Origin::Internal) {
        assert!(!paths.contains_key(&format!("/v2/{}", ep.name)), "{} is a /v1 operation", ep.name);
    }
}

#[tokio::test]
async fn every_declared_endpoint_is_routed_and_every_opened_call_is_declared() {
    let app = TestApp::spawn().await;
    for ep in endpoints::ENDPOINTS.iter().filter(|e| e.origin != Origin::Internal) {
        let r = app.root(ep.name, json!({})).await;
        // A 404 of its own ("... not found") is an answer; the router's is "unknown endpoint".
        let unrouted = r.body["message"].as_str().is_some_and(|m| m.starts_with("unknown endpoint"));
        assert!(!unrouted && r.code != 501 && r.code < 500, "{} answered {} {}", ep.name, r.code, r.body);
    }

    // The names handlers open calls with (`Call::open(.., "Name", ..)`), from the source.
    let mut opened = BTreeSet::new();
    for (_, text) in server_sources() {
        for (i, _) in text.match_indices("Call::open(") {
            let args = &text[i..text[i..].find(';').map_or(text.len(), |j| i + j)];
            if let Some(q) = args.find('"') {
                let name: String = args[q + 1..].chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
                opened.insert(name);
            }
        }
    }
    assert!(opened.len() > 100, "{opened:?}");
    let undeclared: Vec<&String> = opened.iter().filter(|n| endpoints::declared(n).is_none()).collect();
    assert!(undeclared.is_empty(), "calls opened under undeclared names: {undeclared:?}");
    // And each read is declared as one: a listing or getter that changes things would say so.
    for ep in endpoints::ENDPOINTS {
        let reads_by_name = ["Get", "List", "Search"].iter().any(|w| ep.name.contains(w)) && !ep.name.contains("Set");
        if ep.effect == Effect::Reads {
            assert!(reads_by_name, "{} is declared a read", ep.name);
        }
    }
}
