//! Consent: legal bases, users' agreements to them, processing activities and their links;
//! required bases honoured, withdrawal kept on record, tenant isolation, roles, and agreement
//! personal fields sealed at rest.

use serde_json::{json, Value};
use sqlx::{Connection, PgConnection};

use crate::helpers::*;

/// A caller: a token in a tenant (None: the main tenant).
struct As<'a> {
    app: &'a TestApp,
    token: String,
    tenant: Option<String>,
}

impl As<'_> {
    async fn call(&self, endpoint: &str, body: Value) -> Reply {
        self.app.call(endpoint, Some(&self.token), self.tenant.as_deref(), body).await
    }
}

fn root(app: &TestApp) -> As<'_> {
    As { app, token: app.root_token.clone(), tenant: None }
}

/// A new tenant and its admin.
async fn tenant<'a>(app: &'a TestApp, name: &str) -> As<'a> {
    let (_, token) = app.create_tenant(name).await;
    As { app, token, tenant: Some(name.to_string()) }
}

/// A credential of `role` minted by `admin` in its tenant.
async fn mint<'a>(admin: &As<'a>, role: &str) -> As<'a> {
    let tenant = admin.tenant.clone().expect("a named tenant");
    let r = admin
        .app
        .raw(
            reqwest::Method::POST,
            "/v1/credentials/create",
            &[("x-bunker-token", &admin.token), ("x-bunker-tenant", &tenant)],
            serde_json::to_vec(&json!({ "role": role })).unwrap(),
        )
        .await;
    As { app: admin.app, token: r.ok()["token"].as_str().unwrap().to_string(), tenant: Some(tenant) }
}

async fn user(who: &As<'_>, login: &str) -> String {
    who.app.create_user(&who.token, who.tenant.as_deref(), json!({ "login": login })).await
}

async fn basis(who: &As<'_>, brief: &str, extra: Value) {
    let mut body = json!({ "brief": brief });
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    who.call("LegalBasisCreate", body).await.ok();
}

async fn accept(who: &As<'_>, token: &str, brief: &str, extra: Value) -> Reply {
    let mut body = json!({ "mode": "token", "identity": token, "brief": brief });
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    who.call("AgreementAccept", body).await
}

async fn agreement(who: &As<'_>, token: &str, brief: &str) -> Reply {
    who.call("AgreementGet", json!({ "mode": "token", "identity": token, "brief": brief })).await
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

async fn superuser(app: &TestApp) -> PgConnection {
    PgConnection::connect(&app.db_url).await.unwrap()
}

async fn agreement_count(su: &mut PgConnection) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM agreements").fetch_one(su).await.unwrap()
}

// ---------------------------------------------------------------- legal bases

#[tokio::test]
async fn legal_bases_are_created_listed_renamed_and_deleted() {
    // Arrange
    let app = TestApp::spawn().await;
    let a = root(&app);

    // Act
    let created = a
        .call(
            "LegalBasisCreate",
            json!({"brief": " Marketing-Email ", "module": "newsletter", "fulldesc": "We send offers", "shortdesc": "Offers",
                   "basistype": "consent", "requiredmsg": "", "requiredflag": false}),
        )
        .await;
    a.call("LegalBasisCreate", json!({"brief": "contract", "status": "inactive", "requiredflag": "true"})).await.ok();

    // Assert
    created.ok();
    let list = a.call("LegalBasisListAgreements", json!({})).await;
    let rows = list.ok()["rows"].as_array().unwrap().clone();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["brief"], "contract");
    assert_eq!(rows[0]["status"], "inactive");
    assert_eq!(rows[0]["requiredflag"], true);
    assert_eq!(rows[1]["brief"], "marketing-email", "briefs are trimmed and lowercased");
    assert_eq!(rows[1]["status"], "active", "status defaults to active");
    assert_eq!(rows[1]["module"], "newsletter");
    assert_eq!(rows[1]["fulldesc"], "We send offers");
    assert_eq!(rows[1]["shortdesc"], "Offers");
    assert_eq!(rows[1]["basistype"], "consent");
    assert!(rows[1]["creationtime"].as_i64().unwrap() > 0);

    // Rename and change one field; the others stay.
    a.call("LegalBasisUpdate", json!({"brief": "marketing-email", "newbrief": "offers", "status": "inactive"})).await.ok();
    let rows = a.call("LegalBasisListAgreements", json!({})).await.ok()["rows"].clone();
    assert_eq!(rows[1]["brief"], "offers");
    assert_eq!(rows[1]["status"], "inactive");
    assert_eq!(rows[1]["module"], "newsletter");

    a.call("LegalBasisDelete", json!({"brief": "offers"})).await.ok();
    let rows = a.call("LegalBasisListAgreements", json!({})).await.ok()["rows"].clone();
    assert_eq!(rows.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn legal_basis_errors_are_400_404_and_409() {
    // Arrange
    let app = TestApp::spawn().await;
    let a = root(&app);
    basis(&a, "analytics", json!({})).await;
    basis(&a, "billing", json!({})).await;

    // Act + Assert
    assert!(a.call("LegalBasisCreate", json!({"brief": "Analytics"})).await.err(409).contains("already exists"));
    a.call("LegalBasisCreate", json!({})).await.err(400);
    for bad in ["", "a b", "a.b", "x".repeat(65).as_str()] {
        assert!(a.call("LegalBasisCreate", json!({ "brief": bad })).await.err(400).contains("brief"), "{bad:?}");
    }
    assert!(a.call("LegalBasisCreate", json!({"brief": "x", "status": "maybe"})).await.err(400).contains("status"));
    a.call("LegalBasisCreate", json!({"brief": "x", "requiredflag": "perhaps"})).await.err(400);
    a.call("LegalBasisUpdate", json!({"brief": "nope", "newbrief": "other"})).await.err(404);
    // No new name (the SDKs send only what changes): the name stays.
    a.call("LegalBasisUpdate", json!({"brief": "analytics"})).await.ok();
    assert!(a.call("LegalBasisUpdate", json!({"brief": "analytics", "newbrief": "billing"})).await.err(409).contains("already exists"));
    a.call("LegalBasisDelete", json!({"brief": "nope"})).await.err(404);
    a.call("LegalBasisDelete", json!({})).await.err(400);
    // Nothing changed by the failures.
    let rows = a.call("LegalBasisListAgreements", json!({})).await.ok()["rows"].clone();
    let briefs: Vec<&str> = rows.as_array().unwrap().iter().map(|r| r["brief"].as_str().unwrap()).collect();
    assert_eq!(briefs, ["analytics", "billing"]);
}

#[tokio::test]
async fn a_legal_basis_with_agreements_in_force_cannot_be_deleted() {
    // Arrange
    let app = TestApp::spawn().await;
    let a = root(&app);
    basis(&a, "newsletter", json!({})).await;
    let u = user(&a, "reader").await;
    accept(&a, &u, "newsletter", json!({})).await.ok();

    // Act
    let refused = a.call("LegalBasisDelete", json!({"brief": "newsletter"})).await;

    // Assert
    let msg = refused.err(409);
    assert!(msg.contains("in force") && msg.contains("AgreementRevokeAll"), "{msg}");
    a.call("AgreementRevokeAll", json!({"brief": "newsletter"})).await.ok();
    a.call("LegalBasisDelete", json!({"brief": "newsletter"})).await.ok();
    let left = a.call("AgreementListUserAgreements", json!({"mode": "token", "identity": u})).await;
    assert_eq!(left.ok()["total"], 0, "withdrawn agreements go with their legal basis");
}

// ---------------------------------------------------------------- agreements

#[tokio::test]
async fn an_agreement_is_accepted_read_listed_and_updated() {
    // Arrange
    let app = TestApp::spawn().await;
    let a = root(&app);
    basis(&a, "newsletter", json!({})).await;
    basis(&a, "profiling", json!({})).await;
    let u = user(&a, "alice").await;
    let before = now();

    // Act
    let r = accept(
        &a,
        &u,
        "Newsletter",
        json!({"agreementmethod": "web-form", "referencecode": "REF-1", "lastmodifiedby": "alice", "finaltime": "30d"}),
    )
    .await;
    app.root("AgreementAccept", json!({"mode": "login", "identity": "alice", "brief": "profiling", "starttime": 1_700_000_000})).await.ok();

    // Assert
    r.ok();
    let got = agreement(&a, &u, "newsletter").await;
    let ag = got.ok()["agreement"].clone();
    assert_eq!(ag["brief"], "newsletter");
    assert_eq!(ag["status"], "active");
    assert_eq!(ag["agreementmethod"], "web-form");
    assert_eq!(ag["referencecode"], "REF-1");
    assert_eq!(ag["lastmodifiedby"], "alice");
    let start = ag["starttime"].as_i64().unwrap();
    assert!(start >= before && start <= now(), "starttime defaults to now");
    let fin = ag["finaltime"].as_i64().unwrap();
    assert!((fin - start - 30 * 86_400).abs() <= 2, "30d is relative to now: {fin} vs {start}");
    let created = ag["creationtime"].as_i64().unwrap();
    assert!(created >= before);

    let list = a.call("AgreementListUserAgreements", json!({"mode": "token", "identity": u})).await;
    let rows = list.ok()["rows"].as_array().unwrap().clone();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["brief"], "newsletter");
    assert_eq!(rows[1]["brief"], "profiling");
    assert_eq!(rows[1]["starttime"], 1_700_000_000);
    assert_eq!(rows[1]["finaltime"], 0);

    // Accepting again updates the agreement and keeps its creation time.
    accept(&a, &u, "newsletter", json!({"status": "pending", "agreementmethod": "phone", "referencecode": "REF-2"})).await.ok();
    let ag = agreement(&a, &u, "newsletter").await.ok()["agreement"].clone();
    assert_eq!(ag["status"], "pending");
    assert_eq!(ag["agreementmethod"], "phone");
    assert_eq!(ag["referencecode"], "REF-2");
    assert_eq!(ag["creationtime"], created);
    assert_eq!(a.call("AgreementListUserAgreements", json!({"mode": "token", "identity": u})).await.ok()["total"], 2);

    // The user's audit trail records the consent calls.
    let events = a.call("AuditListUserEvents", json!({"mode": "token", "identity": u, "limit": 50})).await;
    let types: Vec<String> = events.ok()["rows"].as_array().unwrap().iter().map(|r| r["eventtype"].as_str().unwrap().to_string()).collect();
    assert!(types.iter().filter(|t| *t == "AgreementAccept").count() == 3, "{types:?}");
    assert!(types.iter().any(|t| t == "AgreementGet"), "{types:?}");
}

#[tokio::test]
async fn agreement_errors_are_400_and_404() {
    // Arrange
    let app = TestApp::spawn().await;
    let a = root(&app);
    basis(&a, "newsletter", json!({})).await;
    basis(&a, "dormant", json!({"status": "inactive"})).await;
    let u = user(&a, "bob").await;

    // Act + Assert
    assert!(accept(&a, "no-such-token", "newsletter", json!({})).await.err(404).contains("user"));
    assert!(accept(&a, &u, "unknown", json!({})).await.err(404).contains("legal basis"));
    assert!(accept(&a, &u, "dormant", json!({})).await.err(400).contains("inactive"));
    assert!(accept(&a, &u, "newsletter", json!({"status": "withdrawn"})).await.err(400).contains("status"));
    assert!(accept(&a, &u, "newsletter", json!({"finaltime": "soon"})).await.err(400).contains("finaltime"));
    assert!(accept(&a, &u, "newsletter", json!({"starttime": 2_000_000_000, "finaltime": 1_900_000_000})).await.err(400).contains("after"));
    a.call("AgreementAccept", json!({"mode": "nickname", "identity": u, "brief": "newsletter"})).await.err(400);
    a.call("AgreementAccept", json!({"mode": "token", "identity": u})).await.err(400);
    assert!(agreement(&a, &u, "newsletter").await.err(404).contains("agreement"));
    agreement(&a, &u, "unknown").await.err(404);
    agreement(&a, "no-such-token", "newsletter").await.err(404);
    a.call("AgreementListUserAgreements", json!({"mode": "token", "identity": "no-such-token"})).await.err(404);
    a.call("AgreementCancel", json!({"mode": "token", "identity": u, "brief": "newsletter"})).await.err(404);
    a.call("AgreementRevokeAll", json!({"brief": "unknown"})).await.err(404);
    a.call("AgreementRevokeAll", json!({})).await.err(400);
    // The DPO-request variant (tests/api/requests.rs) checks like the direct call: no agreement, 404.
    a.call("AgreementCancelRequest", json!({"mode": "token", "identity": u, "brief": "newsletter"})).await.err(404);
}

#[tokio::test]
async fn an_agreement_past_its_finaltime_reads_as_expired() {
    // Arrange
    let app = TestApp::spawn().await;
    let a = root(&app);
    basis(&a, "trial", json!({})).await;
    let u = user(&a, "carol").await;
    let t = now();

    // Act
    accept(&a, &u, "trial", json!({"starttime": t - 100, "finaltime": (t - 10).to_string()})).await.ok();

    // Assert
    let ag = agreement(&a, &u, "trial").await.ok()["agreement"].clone();
    assert_eq!(ag["status"], "expired");
    assert_eq!(ag["finaltime"], t - 10);
    // An expired agreement is not in force: its basis may be deleted.
    a.call("LegalBasisDelete", json!({"brief": "trial"})).await.ok();
}

#[tokio::test]
async fn cancel_withdraws_and_keeps_the_record() {
    // Arrange
    let app = TestApp::spawn().await;
    let a = root(&app);
    basis(&a, "newsletter", json!({})).await;
    let u = user(&a, "dave").await;
    accept(&a, &u, "newsletter", json!({"referencecode": "keep-me"})).await.ok();
    let before = now();

    // Act
    let r = a.call("AgreementCancel", json!({"mode": "login", "identity": "dave", "brief": "newsletter"})).await;

    // Assert
    r.ok();
    let ag = agreement(&a, &u, "newsletter").await.ok()["agreement"].clone();
    assert_eq!(ag["status"], "withdrawn");
    assert!(ag["withdrawntime"].as_i64().unwrap() >= before);
    assert_eq!(ag["referencecode"], "keep-me");
    // Cancelling again is harmless; accepting again re-activates.
    a.call("AgreementCancel", json!({"mode": "token", "identity": u, "brief": "newsletter"})).await.ok();
    accept(&a, &u, "newsletter", json!({})).await.ok();
    let ag = agreement(&a, &u, "newsletter").await.ok()["agreement"].clone();
    assert_eq!(ag["status"], "active");
    assert_eq!(ag["withdrawntime"], 0);
}

#[tokio::test]
async fn a_required_legal_basis_cannot_be_withdrawn() {
    // Arrange
    let app = TestApp::spawn().await;
    let a = root(&app);
    basis(&a, "terms", json!({"requiredflag": true, "requiredmsg": "The terms of service are required to use the service"})).await;
    basis(&a, "kyc", json!({"requiredflag": true})).await;
    let u = user(&a, "erin").await;
    accept(&a, &u, "terms", json!({})).await.ok();
    accept(&a, &u, "kyc", json!({})).await.ok();

    // Act
    let cancel = a.call("AgreementCancel", json!({"mode": "token", "identity": u, "brief": "terms"})).await;
    let cancel_default = a.call("AgreementCancel", json!({"mode": "token", "identity": u, "brief": "kyc"})).await;
    let revoke = a.call("AgreementRevokeAll", json!({"brief": "terms"})).await;

    // Assert
    assert_eq!(cancel.err(400), "The terms of service are required to use the service");
    assert!(cancel_default.err(400).contains("required"));
    assert!(revoke.err(400).contains("required"));
    assert_eq!(agreement(&a, &u, "terms").await.ok()["agreement"]["status"], "active");
    // Once no longer required, it can be withdrawn.
    a.call("LegalBasisUpdate", json!({"brief": "terms", "newbrief": "terms", "requiredflag": false})).await.ok();
    a.call("AgreementCancel", json!({"mode": "token", "identity": u, "brief": "terms"})).await.ok();
}

#[tokio::test]
async fn revoke_all_withdraws_every_users_agreement_on_a_brief() {
    // Arrange
    let app = TestApp::spawn().await;
    let a = root(&app);
    basis(&a, "newsletter", json!({})).await;
    basis(&a, "profiling", json!({})).await;
    let users = [user(&a, "u1").await, user(&a, "u2").await, user(&a, "u3").await];
    for u in &users {
        accept(&a, u, "newsletter", json!({})).await.ok();
        accept(&a, u, "profiling", json!({})).await.ok();
    }
    a.call("AgreementCancel", json!({"mode": "token", "identity": users[0], "brief": "newsletter"})).await.ok();

    // Act
    let r = a.call("AgreementRevokeAll", json!({"brief": "newsletter"})).await;

    // Assert
    assert_eq!(r.ok()["revoked"], 2, "the already withdrawn one is not counted");
    for u in &users {
        assert_eq!(agreement(&a, u, "newsletter").await.ok()["agreement"]["status"], "withdrawn");
        assert_eq!(agreement(&a, u, "profiling").await.ok()["agreement"]["status"], "active", "other briefs untouched");
    }
    assert_eq!(a.call("AgreementRevokeAll", json!({"brief": "newsletter"})).await.ok()["revoked"], 0);
}

#[tokio::test]
async fn deleting_a_user_removes_its_agreements() {
    // Arrange
    let app = TestApp::spawn().await;
    let a = root(&app);
    basis(&a, "newsletter", json!({})).await;
    let gone = user(&a, "gone").await;
    let stays = user(&a, "stays").await;
    accept(&a, &gone, "newsletter", json!({})).await.ok();
    accept(&a, &stays, "newsletter", json!({})).await.ok();
    let mut su = superuser(&app).await;
    assert_eq!(agreement_count(&mut su).await, 2);

    // Act
    a.call("UserDelete", json!({"mode": "token", "identity": gone})).await.ok();

    // Assert
    assert_eq!(agreement_count(&mut su).await, 1);
    agreement(&a, &stays, "newsletter").await.ok();
    // The remaining agreement is not live for the deleted user, so revoking counts one.
    assert_eq!(a.call("AgreementRevokeAll", json!({"brief": "newsletter"})).await.ok()["revoked"], 1);
}

#[tokio::test]
async fn personal_agreement_fields_are_not_readable_at_rest() {
    // Arrange
    let app = TestApp::spawn().await;
    let a = root(&app);
    basis(&a, "newsletter", json!({})).await;
    let u = user(&a, "frank").await;
    let marker = "MARKER-REF-7731";

    // Act
    accept(&a, &u, "newsletter", json!({"referencecode": marker, "lastmodifiedby": "MARKER-BY-7731", "agreementmethod": "MARKER-M-7731"}))
        .await
        .ok();

    // Assert
    let mut su = superuser(&app).await;
    let rows: Vec<(Vec<u8>, String)> =
        sqlx::query_as("SELECT personal, row_to_json(agreements)::text FROM agreements").fetch_all(&mut su).await.unwrap();
    assert_eq!(rows.len(), 1);
    for (blob, whole) in rows {
        assert!(!blob.windows(11).any(|w| w == b"MARKER-"), "agreement fields stored in plaintext");
        assert!(!whole.contains("MARKER"), "agreement row holds plaintext");
    }
    let audit: Vec<Vec<u8>> = sqlx::query_scalar("SELECT details FROM audit_events").fetch_all(&mut su).await.unwrap();
    assert!(audit.iter().all(|b| !b.windows(7).any(|w| w == b"MARKER-")));
    // Through the API the fields read back.
    assert_eq!(agreement(&a, &u, "newsletter").await.ok()["agreement"]["referencecode"], marker);
}

// ---------------------------------------------------------------- processing activities

#[tokio::test]
async fn processing_activities_are_managed_and_linked_to_legal_bases() {
    // Arrange
    let app = TestApp::spawn().await;
    let a = root(&app);
    basis(&a, "newsletter", json!({})).await;
    basis(&a, "analytics", json!({})).await;

    // Act
    a.call(
        "ProcessingActivityCreate",
        json!({"activity": "Email-Campaigns", "title": "Email campaigns", "script": "send.sh", "fulldesc": "Monthly", "applicableto": "customers"}),
    )
    .await
    .ok();
    a.call("ProcessingActivityLinkLegalBasis", json!({"activity": "email-campaigns", "brief": "newsletter"})).await.ok();
    a.call("ProcessingActivityLinkLegalBasis", json!({"activity": "email-campaigns", "brief": "newsletter"})).await.ok();
    a.call("ProcessingActivityLinkLegalBasis", json!({"activity": "email-campaigns", "brief": "analytics"})).await.ok();

    // Assert
    let rows = a.call("ProcessingActivityListActivities", json!({})).await.ok()["rows"].clone();
    assert_eq!(rows.as_array().unwrap().len(), 1);
    assert_eq!(rows[0]["activity"], "email-campaigns");
    assert_eq!(rows[0]["title"], "Email campaigns");
    assert_eq!(rows[0]["script"], "send.sh");
    assert_eq!(rows[0]["applicableto"], "customers");
    assert_eq!(rows[0]["legalbases"], json!(["analytics", "newsletter"]), "linking twice is one link");

    a.call("ProcessingActivityUnlinkLegalBasis", json!({"activity": "email-campaigns", "brief": "analytics"})).await.ok();
    a.call("ProcessingActivityUnlinkLegalBasis", json!({"activity": "email-campaigns", "brief": "analytics"})).await.ok();
    // A renamed basis stays linked under its new brief; a deleted one drops out.
    a.call("LegalBasisUpdate", json!({"brief": "newsletter", "newbrief": "offers"})).await.ok();
    a.call("ProcessingActivityUpdate", json!({"activity": "email-campaigns", "newactivity": "mailings", "title": "Mailings"})).await.ok();
    let rows = a.call("ProcessingActivityListActivities", json!({})).await.ok()["rows"].clone();
    assert_eq!(rows[0]["activity"], "mailings");
    assert_eq!(rows[0]["title"], "Mailings");
    assert_eq!(rows[0]["script"], "send.sh", "fields not sent stay");
    assert_eq!(rows[0]["legalbases"], json!(["offers"]));
    a.call("LegalBasisDelete", json!({"brief": "offers"})).await.ok();
    let rows = a.call("ProcessingActivityListActivities", json!({})).await.ok()["rows"].clone();
    assert_eq!(rows[0]["legalbases"], json!([]));

    a.call("ProcessingActivityDelete", json!({"activity": "mailings"})).await.ok();
    assert_eq!(a.call("ProcessingActivityListActivities", json!({})).await.ok()["total"], 0);
}

#[tokio::test]
async fn processing_activity_errors_are_400_404_and_409() {
    // Arrange
    let app = TestApp::spawn().await;
    let a = root(&app);
    basis(&a, "newsletter", json!({})).await;
    a.call("ProcessingActivityCreate", json!({"activity": "mailings"})).await.ok();
    a.call("ProcessingActivityCreate", json!({"activity": "surveys"})).await.ok();

    // Act + Assert
    assert!(a.call("ProcessingActivityCreate", json!({"activity": "Mailings"})).await.err(409).contains("already exists"));
    a.call("ProcessingActivityCreate", json!({"activity": "not valid"})).await.err(400);
    a.call("ProcessingActivityCreate", json!({})).await.err(400);
    a.call("ProcessingActivityUpdate", json!({"activity": "nope", "newactivity": "x"})).await.err(404);
    a.call("ProcessingActivityUpdate", json!({"activity": "mailings", "newactivity": "surveys"})).await.err(409);
    a.call("ProcessingActivityDelete", json!({"activity": "nope"})).await.err(404);
    let link = |activity: &'static str, brief: &'static str| json!({ "activity": activity, "brief": brief });
    assert!(a.call("ProcessingActivityLinkLegalBasis", link("nope", "newsletter")).await.err(404).contains("processing activity"));
    assert!(a.call("ProcessingActivityLinkLegalBasis", link("mailings", "nope")).await.err(404).contains("legal basis"));
    a.call("ProcessingActivityUnlinkLegalBasis", link("nope", "newsletter")).await.err(404);
    a.call("ProcessingActivityUnlinkLegalBasis", link("mailings", "nope")).await.err(404);
    a.call("ProcessingActivityLinkLegalBasis", json!({"activity": "mailings"})).await.err(400);
}

// ---------------------------------------------------------------- isolation and roles

#[tokio::test]
async fn another_tenant_sees_none_of_a_tenants_consent_data() {
    // Arrange
    let app = TestApp::spawn().await;
    let one = tenant(&app, "one").await;
    let two = tenant(&app, "two").await;
    basis(&one, "newsletter", json!({})).await;
    one.call("ProcessingActivityCreate", json!({"activity": "mailings"})).await.ok();
    let u = user(&one, "grace").await;
    accept(&one, &u, "newsletter", json!({})).await.ok();

    // Act + Assert
    agreement(&two, &u, "newsletter").await.err(404);
    accept(&two, &u, "newsletter", json!({})).await.err(404);
    two.call("AgreementListUserAgreements", json!({"mode": "token", "identity": u})).await.err(404);
    two.call("AgreementCancel", json!({"mode": "token", "identity": u, "brief": "newsletter"})).await.err(404);
    two.call("AgreementRevokeAll", json!({"brief": "newsletter"})).await.err(404);
    two.call("LegalBasisUpdate", json!({"brief": "newsletter", "newbrief": "x"})).await.err(404);
    two.call("LegalBasisDelete", json!({"brief": "newsletter"})).await.err(404);
    two.call("ProcessingActivityUpdate", json!({"activity": "mailings", "newactivity": "x"})).await.err(404);
    two.call("ProcessingActivityDelete", json!({"activity": "mailings"})).await.err(404);
    two.call("ProcessingActivityLinkLegalBasis", json!({"activity": "mailings", "brief": "newsletter"})).await.err(404);
    assert_eq!(two.call("LegalBasisListAgreements", json!({})).await.ok()["total"], 0);
    assert_eq!(two.call("ProcessingActivityListActivities", json!({})).await.ok()["total"], 0);
    // Names are per tenant: the second may use the same brief and activity.
    basis(&two, "newsletter", json!({})).await;
    two.call("ProcessingActivityCreate", json!({"activity": "mailings"})).await.ok();
    agreement(&one, &u, "newsletter").await.ok();
}

#[tokio::test]
async fn roles_get_what_the_policy_grants() {
    // Arrange
    let app = TestApp::spawn().await;
    let admin = tenant(&app, "acme").await;
    basis(&admin, "newsletter", json!({})).await;
    let u = user(&admin, "heidi").await;
    let reader = mint(&admin, "app-reader").await;
    let writer = mint(&admin, "app-writer").await;
    let dpo = mint(&admin, "dpo").await;

    // Act + Assert: app-writer accepts and cancels, but does not manage bases.
    accept(&writer, &u, "newsletter", json!({})).await.ok();
    writer.call("LegalBasisCreate", json!({"brief": "other"})).await.err(403);
    writer.call("AgreementRevokeAll", json!({"brief": "newsletter"})).await.err(403);
    // app-reader reads; it may not accept, cancel, or change bases and activities.
    agreement(&reader, &u, "newsletter").await.ok();
    reader.call("AgreementListUserAgreements", json!({"mode": "token", "identity": u})).await.ok();
    reader.call("LegalBasisListAgreements", json!({})).await.ok();
    reader.call("ProcessingActivityListActivities", json!({})).await.ok();
    accept(&reader, &u, "newsletter", json!({})).await.err(403);
    reader.call("AgreementCancel", json!({"mode": "token", "identity": u, "brief": "newsletter"})).await.err(403);
    reader.call("LegalBasisDelete", json!({"brief": "newsletter"})).await.err(403);
    reader.call("ProcessingActivityCreate", json!({"activity": "x"})).await.err(403);
    writer.call("AgreementCancel", json!({"mode": "token", "identity": u, "brief": "newsletter"})).await.ok();
    // The DPO manages everything consent.
    dpo.call("ProcessingActivityCreate", json!({"activity": "mailings"})).await.ok();
    dpo.call("AgreementRevokeAll", json!({"brief": "newsletter"})).await.ok();
}
