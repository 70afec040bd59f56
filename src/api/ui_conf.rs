//! TenantGetUIConf and our TenantSetUIConf: per-tenant UI settings (logo link, company title,
//! ...) that the SDKs' getUIConf reads, in the shape of Databunker's `/v1/sys/uiconfiguration`
//! (`{"ui": {"LogoLink": ..., ...}}`). Any credential of the tenant reads them; its admin sets
//! them. They are shown to data subjects, so links must be http(s) and texts plain.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::body::{Body, Metadata, NoArgs};
use super::{fields, Call};
use crate::app::AppState;
use crate::auth::Claimed;
use crate::error::{Error, Result};

pub fn routes() -> Router<AppState> {
    Router::new().route("/v2/TenantGetUIConf", post(get_ui_conf)).route("/v2/TenantSetUIConf", post(set_ui_conf))
}

/// The settings, named as Databunker names them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct UiConf {
    pub logo_link: String,
    pub company_title: String,
    #[serde(rename = "CompanyVAT")]
    pub company_vat: String,
    pub company_city: String,
    pub company_link: String,
    #[serde(rename = "CustomCSSLink")]
    pub custom_css_link: String,
    pub magic_lookup: bool,
    /// Our extension: the portal's labels for profile fields (`{"dob": "Date of birth"}`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub field_labels: std::collections::BTreeMap<String, String>,
}

/// TenantSetUIConf: Pro-style lowercase fields; an absent one keeps its value, "" clears it.
#[derive(Deserialize)]
struct SetReq {
    #[serde(default)]
    logolink: Option<String>,
    #[serde(default)]
    companytitle: Option<String>,
    #[serde(default)]
    companyvat: Option<String>,
    #[serde(default)]
    companycity: Option<String>,
    #[serde(default)]
    companylink: Option<String>,
    #[serde(default)]
    customcsslink: Option<String>,
    #[serde(default, deserialize_with = "super::body::bool_or_string")]
    magiclookup: Option<bool>,
    /// Replaces every label; `{}` clears them.
    #[serde(default)]
    fieldlabels: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default)]
    request_metadata: Metadata,
}

fn link(field: &str, v: &str) -> Result<String> {
    let v = v.trim();
    let ok = v.is_empty()
        || (v.len() <= 2048 && (v.starts_with("https://") || v.starts_with("http://")) && v.bytes().all(|b| b.is_ascii_graphic()));
    if ok {
        Ok(v.to_string())
    } else {
        Err(Error::bad(format!("{field} must be an http(s) link of at most 2048 characters")))
    }
}

fn text(field: &str, v: &str) -> Result<String> {
    let v = v.trim();
    if v.chars().count() <= 200 && !v.chars().any(char::is_control) {
        Ok(v.to_string())
    } else {
        Err(Error::bad(format!("{field} must be at most 200 characters without control characters")))
    }
}

/// The tenant's settings; defaults (empty) when never set.
pub async fn load(call: &mut Call) -> Result<UiConf> {
    Ok(match call.tx.ui_settings().await? {
        Some(s) => serde_json::from_str(&s)?,
        None => UiConf::default(),
    })
}

/// The settings of `tenant` for pages anyone may see (a sign-in page's logo and title): they
/// are public by nature, so no credential and no audit event. `None`: no such tenant.
pub async fn public(st: &AppState, tenant: &str) -> Result<Option<UiConf>> {
    let Some(mut tx) = st.db().tenant_tx_by_name(tenant).await? else { return Ok(None) };
    let conf = match tx.ui_settings().await? {
        Some(s) => serde_json::from_str(&s)?,
        None => UiConf::default(),
    };
    tx.commit().await?;
    Ok(Some(conf))
}

async fn get_ui_conf(State(st): State<AppState>, claimed: Claimed, Body(req): Body<NoArgs>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "TenantGetUIConf", req.request_metadata).await?;
    let result = async { Ok(fields([("ui", serde_json::to_value(load(&mut call).await?)?)])) }.await;
    call.finish(result).await
}

async fn set_ui_conf(State(st): State<AppState>, claimed: Claimed, Body(req): Body<SetReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "TenantSetUIConf", req.request_metadata).await?;
    let result = async {
        let mut conf = load(&mut call).await?;
        let mut changed = 0;
        let mut set = |slot: &mut String, v: &Option<String>, check: fn(&str, &str) -> Result<String>, name: &str| -> Result<()> {
            if let Some(v) = v {
                *slot = check(name, v)?;
                changed += 1;
            }
            Ok(())
        };
        set(&mut conf.logo_link, &req.logolink, link, "logolink")?;
        set(&mut conf.company_title, &req.companytitle, text, "companytitle")?;
        set(&mut conf.company_vat, &req.companyvat, text, "companyvat")?;
        set(&mut conf.company_city, &req.companycity, text, "companycity")?;
        set(&mut conf.company_link, &req.companylink, link, "companylink")?;
        set(&mut conf.custom_css_link, &req.customcsslink, link, "customcsslink")?;
        if let Some(m) = req.magiclookup {
            conf.magic_lookup = m;
            changed += 1;
        }
        if let Some(labels) = &req.fieldlabels {
            if labels.len() > 100 || labels.keys().any(|k| k.is_empty() || k.len() > 200) {
                return Err(Error::bad("fieldlabels must map at most 100 field names to labels"));
            }
            conf.field_labels = labels.iter().map(|(k, v)| Ok((k.clone(), text("fieldlabels", v)?))).collect::<Result<_>>()?;
            changed += 1;
        }
        if changed == 0 {
            return Err(Error::bad(
                "nothing to update: give logolink, companytitle, companyvat, companycity, companylink, customcsslink, magiclookup or fieldlabels",
            ));
        }
        call.tx.set_ui_settings(&serde_json::to_string(&conf)?).await?;
        call.note("changed", changed);
        Ok(fields([("ui", serde_json::to_value(conf)?)]))
    }
    .await;
    call.finish(result).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_and_texts_are_checked() {
        assert_eq!(link("l", " https://x.example/logo.png ").unwrap(), "https://x.example/logo.png");
        assert_eq!(link("l", "").unwrap(), "");
        for bad in ["javascript:alert(1)", "data:image/png;base64,AAAA", "https://x y", "ftp://x"] {
            assert!(link("l", bad).is_err(), "{bad}");
        }
        assert!(text("t", "Acme GmbH").is_ok());
        assert!(text("t", "a\nb").is_err());
        assert!(text("t", &"x".repeat(201)).is_err());
        let json = serde_json::to_value(UiConf { company_vat: "DE1".into(), ..UiConf::default() }).unwrap();
        assert_eq!(json["CompanyVAT"], "DE1");
        assert!(json.get("LogoLink").is_some() && json.get("CustomCSSLink").is_some() && json.get("MagicLookup").is_some());
    }
}
