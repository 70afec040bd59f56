//! The portal's page frame and stylesheet. Accessibility: one `h1` per page, a skip link, a
//! labelled navigation marking the current page, visible focus, text contrast above 7:1, and a
//! single-column layout that fits a 320-pixel-wide phone.

use axum::response::{Html, IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};

use super::text::{self, t, tf, Msg};

pub const CSS: &str = r#"
*{box-sizing:border-box}
html{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;font-size:100%;line-height:1.5;color:#1a1a1a;background:#f6f6f4}
body{margin:0}
a{color:#0b4f8a}
a:focus,button:focus,input:focus,textarea:focus,select:focus,summary:focus{outline:3px solid #c25400;outline-offset:2px}
.visually-hidden{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
.skip{position:absolute;left:-999px;top:0;background:#fff;padding:.5rem 1rem}
.skip:focus{left:1rem}
header{background:#13294b;color:#fff;padding:.75rem 1rem}
header .brand{margin:0;font-weight:700}
header nav ul{list-style:none;margin:.5rem 0 0;padding:0;display:flex;flex-wrap:wrap;gap:.25rem 1rem}
header nav a{color:#fff}
header nav a[aria-current=page]{font-weight:700;text-decoration-thickness:3px}
header form{display:inline;margin:0}
header button.link{background:none;border:0;color:#fff;text-decoration:underline;font:inherit;line-height:inherit;padding:0;margin:0;cursor:pointer;min-height:auto;vertical-align:baseline}
header .brand{display:flex;align-items:center;gap:.5rem}
header img.logo{max-height:2rem;max-width:8rem;background:#fff;padding:2px}
main{max-width:46rem;margin:0 auto;padding:1rem}
h1{font-size:1.6rem;margin:.5rem 0 1rem}
h2{font-size:1.2rem;margin-top:1.5rem}
label{display:block;font-weight:600;margin:.75rem 0 .25rem}
textarea{display:block}
input[type=text],input[type=email],input[type=password],input[type=tel],textarea{width:100%;max-width:32rem;padding:.5rem;border:2px solid #595959;border-radius:4px;font:inherit;background:#fff;color:#1a1a1a}
button{font:inherit;padding:.5rem 1rem;border-radius:4px;border:2px solid #13294b;background:#13294b;color:#fff;cursor:pointer;min-height:44px;margin-top:.75rem}
button.secondary{background:#fff;color:#13294b}
button.danger{background:#8a1c1c;border-color:#8a1c1c}
.hint{color:#4a4a4a;font-size:.95rem;margin:.25rem 0}
.notice{border-left:6px solid #0b4f8a;background:#fff;padding:.75rem 1rem;margin:1rem 0}
.demo{border:3px dashed #8a1c1c;background:#fff4f4;padding:.75rem 1rem}
[role=alert]{border-left:6px solid #8a1c1c;background:#fff;padding:.75rem 1rem}
table{border-collapse:collapse;width:100%;background:#fff;margin:.5rem 0;display:block;overflow-x:auto}
th,td{text-align:left;padding:.4rem .6rem;border-bottom:1px solid #bdbdbd;vertical-align:top;word-break:break-word}
dl{background:#fff;padding:.5rem 1rem;margin:.5rem 0}
dt{font-weight:600}
dd{margin:0 0 .5rem;word-break:break-word}
pre{white-space:pre-wrap;word-break:break-word;background:#fff;padding:.5rem;max-width:100%;overflow-x:auto}
del{background:#ffe3e3;color:#6b0000}
ins{background:#e0f5e0;color:#0a4a0a;text-decoration:none}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(9rem,1fr));gap:.75rem}
.card{background:#fff;padding:.75rem;border:1px solid #bdbdbd}
.card strong{display:block;font-size:1.6rem}
code.code{font-size:1.6rem;font-weight:700;letter-spacing:.15em;background:#fff;padding:.1rem .4rem;border:2px solid #13294b}
.landing ul{line-height:2}
.value{white-space:pre-line}
"#;

/// Navigation of a signed-in page: the links, which one is current, and the sign-out form.
pub struct Nav<'a> {
    pub links: &'a [(&'a str, Msg)],
    pub current: &'a str,
    pub sign_out: &'a str,
    pub csrf: &'a str,
}

pub const USER_LINKS: &[(&str, Msg)] = &[
    ("/portal/me", Msg::NavProfile),
    ("/portal/me/consents", Msg::NavConsents),
    ("/portal/me/apps", Msg::NavApps),
    ("/portal/me/sessions", Msg::NavSessions),
    ("/portal/me/activity", Msg::NavActivity),
    ("/portal/me/export", Msg::NavExport),
    ("/portal/me/forget", Msg::NavForget),
];

pub const DPO_LINKS: &[(&str, Msg)] = &[("/portal/dpo", Msg::NavRequests)];

/// The logo's origin when it may be shown (https only), for the page's `img-src`.
pub fn logo_origin(logo: &str) -> Option<String> {
    let rest = logo.strip_prefix("https://")?;
    let host = rest
        .split(['/', '?', '#'])
        .next()
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b)))?;
    Some(format!("https://{host}"))
}

/// A page in the portal's frame, in this request's language, naming the organisation (its
/// company title and logo) once the request knows it.
pub fn render(title: &str, nav: Option<&Nav>, body: Markup) -> Response {
    let org = text::org();
    let logo = org.as_ref().filter(|o| logo_origin(&o.logo).is_some()).map(|o| o.logo.clone());
    let brand = match &org {
        Some(o) => tf(Msg::PortalOf, &[o.shown()]),
        None => t(Msg::PortalName).to_string(),
    };
    let html = html! {
        (DOCTYPE)
        html lang=(text::lang().code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                title { (title) " · " (brand) }
                link rel="stylesheet" href="/portal/static/portal.css";
            }
            body {
                a.skip href="#main" { (t(Msg::SkipToContent)) }
                header {
                    p.brand {
                        @if let Some(logo) = &logo { img.logo src=(logo) alt=""; }
                        (brand)
                    }
                    @if let Some(nav) = nav {
                        nav aria-label=(t(Msg::MainNav)) {
                            ul {
                                @for (href, label) in nav.links {
                                    li {
                                        @if *href == nav.current {
                                            a href=(href) aria-current="page" { (t(*label)) }
                                        } @else {
                                            a href=(href) { (t(*label)) }
                                        }
                                    }
                                }
                                li.signout {
                                    form method="post" action=(nav.sign_out) {
                                        input type="hidden" name="csrf" value=(nav.csrf);
                                        button.link type="submit" { (t(Msg::SignOut)) }
                                    }
                                }
                            }
                        }
                    }
                }
                main id="main" tabindex="-1" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    };
    let mut res = Html(html.into_string()).into_response();
    if let Some(origin) = logo.as_deref().and_then(logo_origin) {
        // The organisation's logo is the one thing a page loads from elsewhere.
        let csp = super::CSP.replace("img-src 'self'", &format!("img-src 'self' {origin}"));
        if let Ok(v) = axum::http::HeaderValue::from_str(&csp) {
            res.headers_mut().insert(axum::http::header::CONTENT_SECURITY_POLICY, v);
        }
    }
    res
}

/// A JSON value as readable text: strings bare, everything else as compact JSON.
pub fn plain(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}
