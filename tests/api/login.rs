//! CaptchaCreate, UserPrelogin and UserLogin: the SDKs' passwordless sign-in, on the portal's
//! codes. The captcha is read off its SVG the way a person reads it (by its strokes), and the
//! code comes through the real notification webhook.

use serde_json::{json, Value};

use crate::helpers::*;
use crate::portal::portal_app;

/// Reads the six digits off a captcha image: its dark strokes, by which grid points of each
/// 20x36 seven-segment cell they join.
pub fn read_captcha(data_url: &str) -> String {
    use base64::Engine;
    let b64 = data_url.strip_prefix("data:image/svg+xml;base64,").expect("an SVG data URL");
    let svg = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b64).unwrap()).unwrap();
    let attr = |line: &str, name: &str| -> i32 {
        let at = line.find(&format!(" {name}=\"")).unwrap() + name.len() + 3;
        line[at..].split('"').next().unwrap().parse().unwrap()
    };
    let mut masks = [0u8; 6];
    for line in svg.split("<line").skip(1).filter(|l| l.contains("#222")) {
        let (x1, y1, x2, y2) = (attr(line, "x1"), attr(line, "y1"), attr(line, "x2"), attr(line, "y2"));
        let cell = ((x1.min(x2) - 5) / 30) as usize;
        let point = |x: i32, y: i32| {
            let col = if x - (10 + 30 * cell as i32) < 10 { 0 } else { 1 };
            let row = ((y - 12 + 8) / 16).clamp(0, 2);
            (col, row)
        };
        let mut ends = [point(x1, y1), point(x2, y2)];
        ends.sort();
        let seg = match ends {
            [(0, 0), (1, 0)] => 0,
            [(1, 0), (1, 1)] => 1,
            [(1, 1), (1, 2)] => 2,
            [(0, 2), (1, 2)] => 3,
            [(0, 1), (0, 2)] => 4,
            [(0, 0), (0, 1)] => 5,
            [(0, 1), (1, 1)] => 6,
            other => panic!("not a segment: {other:?}"),
        };
        masks[cell] |= 1 << seg;
    }
    const ON: [u8; 10] = [0x3f, 0x06, 0x5b, 0x4f, 0x66, 0x6d, 0x7d, 0x07, 0x7f, 0x6f];
    masks.iter().map(|m| char::from(b'0' + ON.iter().position(|o| o == m).expect("a digit") as u8)).collect()
}

pub async fn captcha(app: &TestApp) -> (String, String) {
    let r = app.call("CaptchaCreate", None, None, json!({})).await;
    let v = r.ok().clone();
    (v["captchacode"].as_str().unwrap().to_string(), read_captcha(v["captchaimage"].as_str().unwrap()))
}

async fn prelogin(app: &TestApp, mode: &str, identity: &str) -> Value {
    let (id, digits) = captcha(app).await;
    app.call("UserPrelogin", None, None, json!({"mode": mode, "identity": identity, "code": digits, "captchacode": id})).await.ok().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_with_a_captcha_and_an_emailed_code_and_gets_their_own_xtoken() {
    let (app, hook) = portal_app(|_| {}).await;
    let me = app.create_user(&app.root_token, None, json!({"email": "login-me@example.com", "name": "Me"})).await;
    let other = app.create_user(&app.root_token, None, json!({"email": "login-other@example.com"})).await;

    assert_eq!(prelogin(&app, "email", "Login-Me@example.com").await["status"], "ok");
    let code = hook.code_for("login-me@example.com").await;
    let r = app.call("UserLogin", None, None, json!({"mode": "email", "identity": "login-me@example.com", "smscode": code})).await;
    let got = r.ok().clone();
    assert_eq!(got["token"], me.as_str());
    let xtoken = got["xtoken"].as_str().unwrap().to_string();
    assert_eq!(app.call("UserGet", Some(&xtoken), None, json!({"mode": "token", "identity": me})).await.ok()["profile"]["name"], "Me");
    app.call("UserGet", Some(&xtoken), None, json!({"mode": "token", "identity": other})).await.err(404);
    app.call("UserDelete", Some(&xtoken), None, json!({"mode": "token", "identity": me})).await.err(403);
    // The code is used up.
    app.call("UserLogin", None, None, json!({"mode": "email", "identity": "login-me@example.com", "smscode": code})).await.err(403);
    // Audited in the user's trail.
    let trail = app.root("AuditListUserEvents", json!({"mode": "token", "identity": me, "limit": 50})).await;
    let types: Vec<&str> = trail.ok()["rows"].as_array().unwrap().iter().map(|r| r["eventtype"].as_str().unwrap()).collect();
    assert!(types.contains(&"UserPrelogin") && types.contains(&"UserLogin"), "{types:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_captchas_codes_and_unknown_people_are_refused_alike() {
    let (app, hook) = portal_app(|_| {}).await;
    app.create_user(&app.root_token, None, json!({"email": "login-x@example.com"})).await;
    let (id, digits) = captcha(&app).await;
    let wrong: String = digits.chars().map(|c| if c == '9' { '0' } else { char::from(c as u8 + 1) }).collect();
    let e = app
        .call("UserPrelogin", None, None, json!({"mode": "email", "identity": "login-x@example.com", "code": wrong, "captchacode": id}))
        .await;
    assert!(e.err(400).contains("captcha"));
    let forged = format!("9999999999.{}", id.split_once('.').unwrap().1);
    app.call(
        "UserPrelogin",
        None,
        None,
        json!({"mode": "email", "identity": "login-x@example.com", "code": digits, "captchacode": forged}),
    )
    .await
    .err(400);
    assert_eq!(hook.sent_to("login-x@example.com"), 0, "no code without a captcha");
    app.call("UserPrelogin", None, None, json!({"mode": "login", "identity": "x", "code": digits, "captchacode": id})).await.err(400);
    app.call("UserPrelogin", None, None, json!({"mode": "email", "identity": "login-x@example.com"})).await.err(400);

    // An unknown address gets the same answer, and nothing is sent.
    assert_eq!(prelogin(&app, "email", "nobody@example.com").await["status"], "ok");
    app.call("UserLogin", None, None, json!({"mode": "email", "identity": "nobody@example.com", "smscode": "000000"})).await.err(403);

    prelogin(&app, "email", "login-x@example.com").await;
    let code = hook.code_for("login-x@example.com").await;
    let bad = if code == "000000" { "000001" } else { "000000" };
    app.call("UserLogin", None, None, json!({"mode": "email", "identity": "login-x@example.com", "smscode": bad})).await.err(403);
    // The right code still works after one wrong try; another tenant's header finds nothing.
    app.call("UserLogin", None, Some("nosuch"), json!({"mode": "email", "identity": "login-x@example.com", "smscode": code}))
        .await
        .err(403);
    app.call("UserLogin", None, None, json!({"mode": "email", "identity": "login-x@example.com", "smscode": code})).await.ok();
    app.call("UserLogin", None, None, json!({"mode": "phone", "identity": "", "smscode": "1"})).await.err(400);
}
