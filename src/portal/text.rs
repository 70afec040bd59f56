//! What the portal says, in English and German: one catalogue of messages, chosen per request by
//! `Accept-Language` (data subjects are often EU citizens), plus the words for what the vault
//! records in its own vocabulary (event names, statuses, field keys, Unix times), so no page
//! shows a person an endpoint name, a raw timestamp or JSON.
//!
//! The language (and the organisation whose portal it is, once known) live in a task-local
//! [`Look`] that the portal's middleware scopes around each request: every message and error
//! page of that request reads it, instead of threading a language through every function.

use std::cell::RefCell;

use axum::extract::Request;
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::Response;

/// A language the portal speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    En,
    De,
}

impl Lang {
    /// The best of our languages for an `Accept-Language` header (q-values honoured; English
    /// when nothing matches).
    pub fn from_accept(header: &str) -> Lang {
        let mut best = (Lang::En, -1.0f32);
        for part in header.split(',') {
            let mut it = part.trim().split(';');
            let tag = it.next().unwrap_or_default().trim().to_ascii_lowercase();
            let q = it.find_map(|p| p.trim().strip_prefix("q=").and_then(|q| q.parse::<f32>().ok())).unwrap_or(1.0);
            let lang = match tag.split('-').next().unwrap_or_default() {
                "de" => Lang::De,
                "en" => Lang::En,
                _ => continue,
            };
            if q > best.1 {
                best = (lang, q);
            }
        }
        best.0
    }

    pub fn from_headers(headers: &HeaderMap) -> Lang {
        headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()).map_or(Lang::En, Lang::from_accept)
    }

    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::De => "de",
        }
    }
}

/// The organisation a page belongs to, from its UI settings (`TenantSetUIConf`).
#[derive(Debug, Clone, Default)]
pub struct Org {
    pub name: String,
    pub title: String,
    pub logo: String,
    pub labels: std::collections::BTreeMap<String, String>,
}

impl Org {
    /// What a page calls the organisation: its company title, else its portal name.
    pub fn shown(&self) -> &str {
        if self.title.is_empty() {
            &self.name
        } else {
            &self.title
        }
    }
}

/// How this request's pages look: their language and organisation.
#[derive(Debug, Clone, Default)]
pub struct Look {
    pub lang: Lang,
    pub org: Option<Org>,
}

tokio::task_local! {
    static LOOK: RefCell<Look>;
}

/// Middleware: scopes a [`Look`] in the request's language around the portal's handlers.
pub async fn scoped(req: Request, next: Next) -> Response {
    let look = Look { lang: Lang::from_headers(req.headers()), org: None };
    LOOK.scope(RefCell::new(look), next.run(req)).await
}

/// Runs `f` with a look in `lang` (for pages rendered outside the portal's routes).
pub async fn with_lang<F: std::future::Future>(lang: Lang, f: F) -> F::Output {
    LOOK.scope(RefCell::new(Look { lang, org: None }), f).await
}

/// This request's language (English outside a scope).
pub fn lang() -> Lang {
    LOOK.try_with(|l| l.borrow().lang).unwrap_or_default()
}

/// This request's organisation, once a handler has named it.
pub fn org() -> Option<Org> {
    LOOK.try_with(|l| l.borrow().org.clone()).ok().flatten()
}

/// Names the organisation of this request's pages.
pub fn set_org(org: Org) {
    let _ = LOOK.try_with(|l| l.borrow_mut().org = Some(org));
}

macro_rules! catalogue {
    ($($key:ident => $en:literal, $de:literal;)*) => {
        /// Every sentence the portal shows. `{}` marks an argument of [`tf`], in order.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Msg { $($key),* }

        impl Msg {
            pub const ALL: &'static [Msg] = &[$(Msg::$key),*];

            pub fn text(self, lang: Lang) -> &'static str {
                match (self, lang) {
                    $((Msg::$key, Lang::En) => $en, (Msg::$key, Lang::De) => $de,)*
                }
            }
        }
    };
}

catalogue! {
    PortalName => "Privacy portal", "Datenschutzportal";
    PortalOf => "Privacy portal of {}", "Datenschutzportal von {}";
    SkipToContent => "Skip to content", "Zum Inhalt springen";
    MainNav => "Main", "Hauptmenü";
    SignOut => "Sign out", "Abmelden";
    // navigation
    NavProfile => "My profile", "Mein Profil";
    NavConsents => "Consents", "Einwilligungen";
    NavApps => "App data", "App-Daten";
    NavSessions => "Sessions", "Sitzungen";
    NavActivity => "Access log", "Zugriffsprotokoll";
    NavExport => "Download my data", "Meine Daten herunterladen";
    NavForget => "Forget me", "Mich vergessen";
    NavRequests => "Requests", "Anträge";
    // errors
    TitleTooMany => "Too many attempts", "Zu viele Versuche";
    TitleNotAllowed => "Not allowed", "Nicht erlaubt";
    TitleNotFound => "Not found", "Nicht gefunden";
    TitleCheckInput => "Please check your input", "Bitte prüfen Sie Ihre Eingabe";
    TitleUnavailable => "Unavailable", "Nicht verfügbar";
    TitleWrongMethod => "This page cannot be used that way", "Diese Seite kann so nicht aufgerufen werden";
    BackToPortal => "Back to the portal", "Zurück zum Portal";
    NoSuchPage => "There is no such page.", "Diese Seite gibt es nicht.";
    WrongMethod => "This address is not a page to open directly: it receives a form. Start again from the portal.", "Diese Adresse ist keine Seite zum direkten Aufruf, sondern nimmt ein Formular entgegen. Beginnen Sie bitte im Portal neu.";
    Internal => "Something went wrong on our side. Please try again later.", "Bei uns ist etwas schiefgegangen. Bitte versuchen Sie es später noch einmal.";
    Sealed => "The vault is sealed; the portal is unavailable until it is unsealed.", "Der Tresor ist versiegelt; das Portal ist erst nach dem Entsiegeln wieder erreichbar.";
    Unavailable => "The service is briefly unavailable. Please try again in a moment.", "Der Dienst ist kurz nicht erreichbar. Bitte versuchen Sie es gleich noch einmal.";
    ApiBad => "The change was refused: {}", "Die Änderung wurde abgelehnt: {}";
    ApiForbidden => "You are not allowed to do this here.", "Das dürfen Sie hier nicht.";
    ApiNotFound => "This was not found; it may have been erased.", "Das wurde nicht gefunden; vielleicht wurde es gelöscht.";
    ApiConflict => "Someone changed this meanwhile. Reload the page and try again.", "Das wurde inzwischen geändert. Laden Sie die Seite neu und versuchen Sie es noch einmal.";
    ApiTooMany => "Too many requests. Wait a minute and try again.", "Zu viele Anfragen. Warten Sie eine Minute und versuchen Sie es noch einmal.";
    CrossSite => "This form was sent from another site and was refused.", "Dieses Formular wurde von einer anderen Website gesendet und abgelehnt.";
    FormExpired => "This form has expired or was not sent by this portal. Reload the page and try again.", "Dieses Formular ist abgelaufen oder stammt nicht von diesem Portal. Laden Sie die Seite neu und versuchen Sie es noch einmal.";
    BadOrganisation => "Enter the organisation's portal name (letters, digits and dashes).", "Geben Sie den Portalnamen der Organisation ein (Buchstaben, Ziffern und Bindestriche).";
    // sign-in
    TitleSignIn => "Sign in", "Anmelden";
    SignInIntro => "Sign in to see the personal data {} holds about you, who accessed it, and to correct, download or erase it.", "Melden Sie sich an, um zu sehen, welche personenbezogenen Daten {} über Sie speichert und wer darauf zugegriffen hat, und um sie zu berichtigen, herunterzuladen oder zu löschen.";
    ThisOrganisation => "this organisation", "diese Organisation";
    Organisation => "Organisation", "Organisation";
    OrganisationHint => "The portal name the organisation gave you, for example in its privacy notice.", "Der Portalname, den Ihnen die Organisation genannt hat, etwa in ihrer Datenschutzerklärung.";
    OrganisationHintDemo => "The portal name the organisation gave you. In this demo: default.", "Der Portalname, den Ihnen die Organisation genannt hat. In dieser Demo: default.";
    Identity => "Email address or phone number", "E-Mail-Adresse oder Telefonnummer";
    IdentityHint => "We send a 6-digit code there. No password needed.", "Wir senden Ihnen dorthin einen 6-stelligen Code. Kein Passwort nötig.";
    SendCode => "Send me a code", "Code senden";
    DpoConsoleLink => "Privacy officer console", "Konsole für Datenschutzbeauftragte";
    BadIdentity => "Enter an email address or a phone number.", "Geben Sie eine E-Mail-Adresse oder eine Telefonnummer ein.";
    TooManyCodes => "Too many codes were requested for this email address or phone number. Wait 10 minutes and try again.", "Für diese E-Mail-Adresse oder Telefonnummer wurden zu viele Codes angefordert. Warten Sie 10 Minuten und versuchen Sie es noch einmal.";
    CodeWrongOrExpired => "That code is wrong or has expired.", "Dieser Code ist falsch oder abgelaufen.";
    CodeUnusable => "This code can no longer be used. Start again to get a new one.", "Dieser Code kann nicht mehr verwendet werden. Beginnen Sie neu, um einen neuen zu erhalten.";
    TooManyWrong => "Too many wrong codes were entered for this account. Wait an hour and try again.", "Für dieses Konto wurden zu viele falsche Codes eingegeben. Warten Sie eine Stunde und versuchen Sie es noch einmal.";
    CodeWrongTriesLeft => "That code is wrong. Tries left: {}.", "Dieser Code ist falsch. Verbleibende Versuche: {}.";
    CodeWrongLast => "That code is wrong, and this was the last try. Start again to get a new one.", "Dieser Code ist falsch, und das war der letzte Versuch. Beginnen Sie neu, um einen neuen zu erhalten.";
    TooManyFromNetwork => "Too many sign-in attempts from your network. Wait a minute and try again.", "Zu viele Anmeldeversuche aus Ihrem Netz. Warten Sie eine Minute und versuchen Sie es noch einmal.";
    TitleEnterCode => "Enter your code", "Code eingeben";
    CodeOnItsWay => "If this email address or phone number is known here, a 6-digit code is on its way. It is valid for 10 minutes.", "Wenn diese E-Mail-Adresse oder Telefonnummer hier bekannt ist, ist ein 6-stelliger Code unterwegs. Er gilt 10 Minuten.";
    Code => "Code", "Code";
    StartAgain => "Start again", "Neu beginnen";
    // demo outbox
    TitleOutbox => "Demo outbox", "Demo-Postausgang";
    OutboxNote => "DEMO MODE. A real deployment sends these codes by email or SMS through the notification webhook (STRONGROOM_PORTAL_NOTIFY_URL) and shows them nowhere. This page does not exist outside demo mode.", "DEMO-MODUS. Im echten Betrieb gehen diese Codes per E-Mail oder SMS über den Benachrichtigungs-Webhook (STRONGROOM_PORTAL_NOTIFY_URL) hinaus und werden nirgends angezeigt. Außerhalb des Demo-Modus gibt es diese Seite nicht.";
    OutboxEmpty => "No codes sent yet.", "Noch keine Codes gesendet.";
    OutboxCaption => "Sign-in codes, newest first", "Anmeldecodes, neueste zuerst";
    Sent => "Sent", "Gesendet";
    To => "To", "An";
    BackToSignIn => "Back to sign-in", "Zurück zur Anmeldung";
    // profile
    WhatWeHold => "What we hold about you", "Was wir über Sie speichern";
    ProfileEmpty => "Your profile is empty.", "Ihr Profil ist leer.";
    RecordVersion => "Record version {}. Your reference: ", "Version des Datensatzes: {}. Ihre Referenz: ";
    CorrectDetails => "Correct your details", "Angaben berichtigen";
    CorrectHint => "Depending on this organisation's rules, a change is applied at once or sent to its privacy officer for approval.", "Je nach den Regeln der Organisation wird eine Änderung sofort übernommen oder ihrem Datenschutzbeauftragten zur Freigabe vorgelegt.";
    SaveChanges => "Save changes", "Änderungen speichern";
    YourRequests => "Your requests", "Ihre Anträge";
    NoRequests => "You have no requests.", "Sie haben keine Anträge.";
    Filed => "Filed", "Gestellt";
    Request => "Request", "Antrag";
    Status => "Status", "Status";
    RequestProfile => "Change of profile", "Änderung des Profils";
    RequestForget => "Forget me", "Löschung (Recht auf Vergessenwerden)";
    RequestAppData => "Change of app data", "Änderung von App-Daten";
    RequestConsent => "Withdraw consent", "Widerruf einer Einwilligung";
    RequestOther => "Request", "Antrag";
    StatusPending => "Waiting for a decision", "Wartet auf Entscheidung";
    StatusApproved => "Approved", "Genehmigt";
    StatusCancelled => "Cancelled", "Abgelehnt";
    StatusActive => "Given", "Erteilt";
    StatusWithdrawn => "Withdrawn", "Widerrufen";
    StatusExpired => "Expired", "Abgelaufen";
    StatusOther => "Other", "Sonstiges";
    FiledNote => "Your request was sent to the privacy officer, who will review it. Reference: ", "Ihr Antrag wurde an den Datenschutzbeauftragten gesendet, der ihn prüfen wird. Referenz: ";
    Back => "Back", "Zurück";
    NotANumber => "A field that holds a number got a value that is not one.", "Ein Feld, das eine Zahl enthält, hat einen Wert bekommen, der keine ist.";
    NotABool => "A field that holds yes or no got another value.", "Ein Feld, das Ja oder Nein enthält, hat einen anderen Wert bekommen.";
    TooLong => "A value is too long (at most 4096 characters).", "Ein Wert ist zu lang (höchstens 4096 Zeichen).";
    TitleNothingChanged => "Nothing changed", "Nichts geändert";
    NothingChanged => "You did not change anything.", "Sie haben nichts geändert.";
    TitleChangeRequested => "Change requested", "Änderung beantragt";
    TitleChangesSaved => "Changes saved", "Änderungen gespeichert";
    ChangesSaved => "Your changes are saved.", "Ihre Änderungen sind gespeichert.";
    Yes => "yes", "ja";
    No => "no", "nein";
    // consents
    NoConsents => "You have not given any consent here.", "Sie haben hier keine Einwilligung erteilt.";
    Purpose => "Purpose", "Zweck";
    Action => "Action", "Aktion";
    Withdraw => "Withdraw", "Widerrufen";
    WithdrawLabel => "Withdraw consent: {}", "Einwilligung widerrufen: {}";
    TitleConsentWithdrawn => "Consent withdrawn", "Einwilligung widerrufen";
    ConsentWithdrawn => "Your consent is withdrawn.", "Ihre Einwilligung ist widerrufen.";
    // apps, sessions
    NoApps => "No application keeps data about you here.", "Keine Anwendung speichert hier Daten über Sie.";
    NoSessions => "No sessions are stored for you.", "Für Sie sind keine Sitzungen gespeichert.";
    Session => "Session", "Sitzung";
    LastChanged => "Last changed", "Zuletzt geändert";
    Data => "Data", "Daten";
    // activity
    ActivityIntro => "Every read and change of your data is recorded. Showing the latest {} of {} events.", "Jeder Zugriff auf Ihre Daten und jede Änderung wird protokolliert. Angezeigt werden die letzten {} von {} Einträgen.";
    When => "When", "Wann";
    What => "What", "Was";
    Who => "Who", "Wer";
    Result => "Result", "Ergebnis";
    OutcomeOk => "Done", "Erledigt";
    OutcomeDenied => "Refused", "Abgelehnt";
    OutcomeFailed => "Failed", "Fehlgeschlagen";
    ActorYou => "You", "Sie";
    ActorPortal => "The privacy portal", "Das Datenschutzportal";
    ActorDpo => "The privacy officer", "Der Datenschutzbeauftragte";
    ActorAdmin => "An administrator", "Ein Administrator";
    ActorApp => "An application", "Eine Anwendung";
    ActorAuditor => "An auditor", "Ein Prüfer";
    ActorRole => "Someone with the role {}", "Jemand mit der Rolle {}";
    ActorOrg => "The organisation", "Die Organisation";
    ActorNobody => "Someone not signed in", "Jemand ohne Anmeldung";
    ActorSubject => "The data subject", "Die betroffene Person";
    // export, forget
    ExportIntro => "Download everything this organisation holds about you as one file (JSON, a format any program can read): your profile and its earlier versions, app data, consents, sessions, requests and the access log.", "Laden Sie alles, was diese Organisation über Sie speichert, als eine Datei herunter (JSON, ein Format, das jedes Programm lesen kann): Ihr Profil mit früheren Versionen, App-Daten, Einwilligungen, Sitzungen, Anträge und das Zugriffsprotokoll.";
    ExportButton => "Download my data", "Meine Daten herunterladen";
    ForgetIntro => "You can ask this organisation to erase your record (GDPR art. 17). Once erased, your profile, app data, sessions and consents are gone for good, and the details of the access log about you can no longer be read.", "Sie können diese Organisation bitten, Ihren Datensatz zu löschen (Art. 17 DSGVO). Danach sind Ihr Profil, Ihre App-Daten, Sitzungen und Einwilligungen endgültig gelöscht, und die Einzelheiten des Zugriffsprotokolls über Sie sind nicht mehr lesbar.";
    TitleErasureRequested => "Erasure requested", "Löschung beantragt";
    TitleForgotten => "You are forgotten", "Sie sind vergessen";
    Erased => "Your record is erased.", "Ihr Datensatz ist gelöscht.";
    // DPO console
    TitleConsole => "Privacy officer console", "Konsole für Datenschutzbeauftragte";
    ConsoleIntro => "For the organisation's privacy officer. Sign in with an access token of the dpo, tenant-admin or root role; the console keeps only a short-lived privacy-officer session, never the token.", "Für den Datenschutzbeauftragten der Organisation. Melden Sie sich mit einem Zugangstoken der Rolle dpo, tenant-admin oder root an; die Konsole behält nur eine kurze Sitzung als Datenschutzbeauftragter, nie das Token.";
    AccessToken => "Access token", "Zugangstoken";
    ConsoleRefused => "That organisation and access token do not open the console.", "Mit dieser Organisation und diesem Zugangstoken öffnet sich die Konsole nicht.";
    TitleUserRequests => "User requests", "Anträge betroffener Personen";
    OrganisationNamed => "Organisation {}", "Organisation {}";
    CountPending => "pending requests", "offene Anträge";
    CountAll => "requests in all", "Anträge insgesamt";
    CountUsers => "user records", "Datensätze";
    PendingRequests => "Pending requests", "Offene Anträge";
    NoPending => "No request is waiting for a decision.", "Kein Antrag wartet auf eine Entscheidung.";
    DecidedRequests => "Decided requests", "Entschiedene Anträge";
    Open => "Open", "Öffnen";
    Review => "Review", "Prüfen";
    NoSuchRequest => "There is no such request.", "Diesen Antrag gibt es nicht.";
    RequestGone => "This request, or the user it concerns, no longer exists: an approved erasure removes the user's record and its requests.", "Dieser Antrag oder die betroffene Person existiert nicht mehr: Eine genehmigte Löschung entfernt den Datensatz samt seinen Anträgen.";
    BackToRequests => "Back to the requests", "Zurück zu den Anträgen";
    TitleRequestNotFound => "Request not found", "Antrag nicht gefunden";
    FiledBy => "{} by {}", "{} von {}";
    User => "User", "Person";
    Reason => "Reason", "Begründung";
    Change => "Change", "Änderung";
    Field => "Field", "Feld";
    Current => "Current", "Bisher";
    Proposed => "Proposed", "Neu";
    Unchanged => "(unchanged)", "(unverändert)";
    Removed => "(removed)", "(entfernt)";
    CopiedFrom => "(the value of {})", "(der Wert von {})";
    MustEqual => "(must still be) {}", "(muss noch sein) {}";
    DiffCaption => "The proposed change against the current profile", "Die beantragte Änderung gegenüber dem aktuellen Profil";
    EraseRecord => "Erase this person's record (right to be forgotten): profile, versions, app data, sessions, consents and files; the audit trail stays but its details become unreadable.", "Den Datensatz dieser Person löschen (Recht auf Vergessenwerden): Profil, Versionen, App-Daten, Sitzungen, Einwilligungen und Dateien; das Prüfprotokoll bleibt, seine Einzelheiten werden unlesbar.";
    WithdrawNamed => "Withdraw the consent “{}”.", "Die Einwilligung „{}“ widerrufen.";
    OtherChange => "A change this console cannot show in detail; it is in the request's download.", "Eine Änderung, die diese Konsole nicht im Einzelnen zeigen kann.";
    Decision => "Decision", "Entscheidung";
    Stale => "The record changed after this request was filed (version {}, now {}), so the comparison above is against a newer profile than the person saw. Cancel it; the person can file it again.", "Der Datensatz hat sich geändert, nachdem der Antrag gestellt wurde (Version {}, jetzt {}); der Vergleich oben bezieht sich also auf ein neueres Profil, als die Person sah. Lehnen Sie ihn ab; die Person kann ihn erneut stellen.";
    ReasonRecorded => "Reason (recorded with the decision)", "Begründung (wird mit der Entscheidung gespeichert)";
    Approve => "Approve", "Genehmigen";
    CancelRequest => "Cancel request", "Antrag ablehnen";
    AuditTrail => "The person's access log", "Zugriffsprotokoll der Person";
    ChooseDecision => "Choose approve or cancel.", "Wählen Sie Genehmigen oder Ablehnen.";
    Approved => "Approved: the change is applied.", "Genehmigt: Die Änderung ist übernommen.";
    Cancelled => "Cancelled: nothing was changed.", "Abgelehnt: Es wurde nichts geändert.";
    TitleDecision => "Decision recorded", "Entscheidung gespeichert";
    SeeRequest => "See the request", "Antrag ansehen";
    TitleReview => "Review request", "Antrag prüfen";
    // landing page
    TitleLanding => "Strongroom", "Strongroom";
    LandingIntro => "This is a Strongroom vault for personal data. People whose data it holds can see and control it in the privacy portal.", "Dies ist ein Strongroom-Tresor für personenbezogene Daten. Personen, deren Daten er speichert, können sie im Datenschutzportal einsehen und verwalten.";
    LandingPortal => "Open the privacy portal", "Zum Datenschutzportal";
    LandingHealth => "Service health", "Betriebszustand";
    LandingDocs => "Documentation for developers", "Dokumentation für Entwickler";
}

/// A message in this request's language.
pub fn t(m: Msg) -> &'static str {
    m.text(lang())
}

/// A message with its `{}` filled by `args`, in order.
pub fn tf(m: Msg, args: &[&str]) -> String {
    let mut out = String::new();
    let mut args = args.iter();
    let mut parts = t(m).split("{}").peekable();
    while let Some(p) = parts.next() {
        out.push_str(p);
        if parts.peek().is_some() {
            out.push_str(args.next().copied().unwrap_or_default());
        }
    }
    out
}

const MONTHS: [[&str; 12]; 2] = [
    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"],
    ["Jan.", "Feb.", "März", "Apr.", "Mai", "Juni", "Juli", "Aug.", "Sep.", "Okt.", "Nov.", "Dez."],
];

/// A Unix time as people write it: `2 Dec 2026, 15:08 UTC` / `2. Dez. 2026, 15:08 UTC`.
pub fn when(secs: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64);
    let s = humantime::format_rfc3339_seconds(t).to_string();
    let (y, mo, d, hm) = (&s[..4], s[5..7].parse::<usize>().unwrap_or(1), s[8..10].trim_start_matches('0'), &s[11..16]);
    match lang() {
        Lang::En => format!("{d} {} {y}, {hm} UTC", MONTHS[0][mo - 1]),
        Lang::De => format!("{d}. {} {y}, {hm} UTC", MONTHS[1][mo - 1]),
    }
}

/// An RFC 3339 time (the audit's `timestamp`) as [`when`]; unparseable text is dropped.
pub fn when_rfc3339(s: &str) -> String {
    humantime::parse_rfc3339_weak(s.trim_end_matches('Z'))
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| when(d.as_secs() as i64))
        .unwrap_or_default()
}

/// What an audit event did to the person's data, in words (never the endpoint's name).
pub fn event_label(event: &str) -> &'static str {
    let (en, de) = match event {
        "UserCreate" | "UserCreateBulk" | "UserImport" => ("Your record was created", "Ihr Datensatz wurde angelegt"),
        "UserGet" | "SystemGetUserProfiles" | "SystemSearchUserProfiles" | "BulkListUsers" | "BulkListAllUsers" | "UserSearch" => {
            ("Your profile was read", "Ihr Profil wurde gelesen")
        }
        "UserUpdate" | "UserPatch" => ("Your profile was changed", "Ihr Profil wurde geändert"),
        "UserDelete" | "UserDeleteBulk" | "SystemDeleteUserProfiles" => ("Your record was erased", "Ihr Datensatz wurde gelöscht"),
        "SystemRestoreUserProfile" => ("Your record was restored", "Ihr Datensatz wurde wiederhergestellt"),
        "UserListVersions" => ("The versions of your profile were listed", "Die Versionen Ihres Profils wurden aufgelistet"),
        "UserUpdateRequest" | "UserPatchRequest" => {
            ("A change of your profile was requested", "Eine Änderung Ihres Profils wurde beantragt")
        }
        "UserDeleteRequest" => ("The erasure of your record was requested", "Die Löschung Ihres Datensatzes wurde beantragt"),
        "AppdataUpdateRequest" => ("A change of your app data was requested", "Eine Änderung Ihrer App-Daten wurde beantragt"),
        "AgreementCancelRequest" => ("The withdrawal of a consent was requested", "Der Widerruf einer Einwilligung wurde beantragt"),
        "UserRequestListUserRequests" | "BulkListAllUserRequests" => ("Your requests were listed", "Ihre Anträge wurden aufgelistet"),
        "UserRequestGet" => ("A request of yours was read", "Ein Antrag von Ihnen wurde gelesen"),
        "UserRequestApprove" => ("A request of yours was approved", "Ein Antrag von Ihnen wurde genehmigt"),
        "UserRequestCancel" => ("A request of yours was cancelled", "Ein Antrag von Ihnen wurde abgelehnt"),
        "AgreementAccept" => ("A consent was given", "Eine Einwilligung wurde erteilt"),
        "AgreementCancel" | "AgreementRevokeAll" => ("A consent was withdrawn", "Eine Einwilligung wurde widerrufen"),
        "AgreementGet" | "AgreementListUserAgreements" | "LegalBasisListAgreements" => {
            ("Your consents were read", "Ihre Einwilligungen wurden gelesen")
        }
        "AppdataCreate" | "AppdataUpdate" => ("App data about you was stored", "App-Daten über Sie wurden gespeichert"),
        "AppdataGet" | "AppdataListVersions" => ("App data about you was read", "App-Daten über Sie wurden gelesen"),
        "AppdataListUserAppNames" => ("The apps holding data about you were listed", "Die Apps mit Daten über Sie wurden aufgelistet"),
        "AppdataDelete" => ("App data about you was deleted", "App-Daten über Sie wurden gelöscht"),
        "SessionUpsert" => ("A session of yours was stored", "Eine Sitzung von Ihnen wurde gespeichert"),
        "SessionGet" => ("A session of yours was read", "Eine Sitzung von Ihnen wurde gelesen"),
        "SessionListUserSessions" => ("Your sessions were listed", "Ihre Sitzungen wurden aufgelistet"),
        "SessionDelete" => ("A session of yours was deleted", "Eine Sitzung von Ihnen wurde gelöscht"),
        "AuditListUserEvents" | "AuditGetEvent" | "BulkListAllAuditEvents" => {
            ("Your access log was read", "Ihr Zugriffsprotokoll wurde gelesen")
        }
        "PortalCodeSent" | "UserPrelogin" => ("A sign-in code was sent", "Ein Anmeldecode wurde gesendet"),
        "PortalSignIn" | "UserLogin" => ("Sign-in", "Anmeldung"),
        "FileCreate" => ("A file about you was stored", "Eine Datei über Sie wurde gespeichert"),
        "FileGet" | "FileListUserFiles" | "BulkListFilesByTag" => ("Your files were read", "Ihre Dateien wurden gelesen"),
        "FileDelete" => ("A file about you was deleted", "Eine Datei über Sie wurde gelöscht"),
        "FileReplaceTags" => ("The labels of a file were changed", "Die Schlagwörter einer Datei wurden geändert"),
        "GroupAddUser" => ("You were added to a group", "Sie wurden einer Gruppe hinzugefügt"),
        "GroupDeleteUser" => ("You were removed from a group", "Sie wurden aus einer Gruppe entfernt"),
        "GroupListUserGroups" | "BulkListGroupUsers" => ("Your groups were listed", "Ihre Gruppen wurden aufgelistet"),
        "SharedRecordCreate" => ("A time-limited share of your data was made", "Eine befristete Freigabe Ihrer Daten wurde erstellt"),
        "SharedRecordGet" => ("Shared data of yours was read", "Freigegebene Daten von Ihnen wurden gelesen"),
        "TokenCreate" | "TokenCreateBulk" => ("A token for your data was made", "Ein Token für Ihre Daten wurde erstellt"),
        "TokenGet" => ("Tokenised data of yours was read", "Tokenisierte Daten von Ihnen wurden gelesen"),
        "TokenDelete" | "BulkDeleteTokens" => ("A token for your data was deleted", "Ein Token für Ihre Daten wurde gelöscht"),
        "XTokenCreateForUser" => ("Access to your record was granted", "Zugang zu Ihrem Datensatz wurde gewährt"),
        "UserExpirationStart" => ("A deadline for your record was set", "Eine Frist für Ihren Datensatz wurde gesetzt"),
        "UserExpirationGet" => ("The deadline of your record was read", "Die Frist Ihres Datensatzes wurde gelesen"),
        "UserExpirationCancel" => ("The deadline of your record was cancelled", "Die Frist Ihres Datensatzes wurde aufgehoben"),
        "UserExpirationRetain" => ("You chose to keep your record", "Sie haben entschieden, Ihren Datensatz zu behalten"),
        "UserExpirationDelete" => ("You chose to have your record deleted", "Sie haben die Löschung Ihres Datensatzes gewählt"),
        "SystemGetUserReport" | "SystemGetUserHTMLReport" => {
            ("A report about your record was made", "Ein Bericht über Ihren Datensatz wurde erstellt")
        }
        _ => ("Other use of your data", "Sonstige Verwendung Ihrer Daten"),
    };
    match lang() {
        Lang::En => en,
        Lang::De => de,
    }
}

/// A request's or consent's status in words.
pub fn status_label(status: &str) -> &'static str {
    t(match status {
        "pending" => Msg::StatusPending,
        "approved" => Msg::StatusApproved,
        "cancelled" | "canceled" => Msg::StatusCancelled,
        "active" | "yes" => Msg::StatusActive,
        "withdrawn" | "no" => Msg::StatusWithdrawn,
        "expired" => Msg::StatusExpired,
        _ => Msg::StatusOther,
    })
}

/// An audit outcome in words.
pub fn outcome_label(outcome: &str) -> &'static str {
    use crate::audit::Outcome;
    t(match Outcome::parse(outcome) {
        Some(Outcome::Ok) => Msg::OutcomeOk,
        Some(Outcome::Denied) => Msg::OutcomeDenied,
        _ => Msg::OutcomeFailed,
    })
}

/// A profile field's label: the organisation's own (`fieldlabels` of its UI settings), else
/// ours for the usual keys, else the key in words (`first_name` -> `First name`).
pub fn field_label(key: &str) -> String {
    if let Some(label) = org().and_then(|o| o.labels.get(key).cloned()) {
        return label;
    }
    let known = match (key.to_ascii_lowercase().as_str(), lang()) {
        ("name" | "fullname" | "full_name", Lang::En) => "Name",
        ("name" | "fullname" | "full_name", Lang::De) => "Name",
        ("first_name" | "firstname" | "fname", Lang::En) => "First name",
        ("first_name" | "firstname" | "fname", Lang::De) => "Vorname",
        ("last_name" | "lastname" | "lname" | "surname", Lang::En) => "Last name",
        ("last_name" | "lastname" | "lname" | "surname", Lang::De) => "Nachname",
        ("email", Lang::En) => "Email address",
        ("email", Lang::De) => "E-Mail-Adresse",
        ("phone" | "mobile", Lang::En) => "Phone number",
        ("phone" | "mobile", Lang::De) => "Telefonnummer",
        ("login" | "username", Lang::En) => "User name",
        ("login" | "username", Lang::De) => "Benutzername",
        ("address" | "street", Lang::En) => "Address",
        ("address" | "street", Lang::De) => "Anschrift",
        ("city", Lang::En) => "City",
        ("city", Lang::De) => "Ort",
        ("country", Lang::En) => "Country",
        ("country", Lang::De) => "Land",
        ("zip" | "postcode" | "postal_code", Lang::En) => "Postcode",
        ("zip" | "postcode" | "postal_code", Lang::De) => "Postleitzahl",
        ("birthday" | "dob" | "birthdate" | "date_of_birth", Lang::En) => "Date of birth",
        ("birthday" | "dob" | "birthdate" | "date_of_birth", Lang::De) => "Geburtsdatum",
        _ => "",
    };
    if !known.is_empty() {
        return known.to_string();
    }
    let words = key.replace(['_', '-', '.'], " ");
    let mut c = words.trim().chars();
    c.next().map_or_else(|| key.to_string(), |f| f.to_uppercase().chain(c).collect())
}

/// A stored value in words: strings bare, yes/no for booleans, nested values as `key: value`
/// lines (never JSON syntax).
pub fn value_text(v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Bool(true) => t(Msg::Yes).into(),
        Value::Bool(false) => t(Msg::No).into(),
        Value::Number(n) => n.to_string(),
        Value::Array(items) => items.iter().map(value_text).collect::<Vec<_>>().join(", "),
        Value::Object(m) => m.iter().map(|(k, v)| format!("{}: {}", field_label(k), value_text(v))).collect::<Vec<_>>().join("\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_translation_takes_the_same_arguments() {
        for m in Msg::ALL {
            assert_eq!(m.text(Lang::En).matches("{}").count(), m.text(Lang::De).matches("{}").count(), "{m:?}");
            assert!(!m.text(Lang::De).is_empty());
        }
    }

    #[test]
    fn accept_language_picks_the_best_we_speak() {
        assert_eq!(Lang::from_accept("de-DE,de;q=0.9,en;q=0.8"), Lang::De);
        assert_eq!(Lang::from_accept("en-GB,en;q=0.9,de;q=0.8"), Lang::En);
        assert_eq!(Lang::from_accept("fr-FR,fr;q=0.9,de;q=0.5"), Lang::De);
        assert_eq!(Lang::from_accept("fr"), Lang::En);
        assert_eq!(Lang::from_accept("en;q=0.2, de;q=0.7"), Lang::De);
        assert_eq!(Lang::from_accept(""), Lang::En);
    }

    #[test]
    fn times_and_fields_read_as_words() {
        assert_eq!(when(1_796_224_080), "2 Dec 2026, 15:08 UTC");
        assert_eq!(when_rfc3339("2026-12-02T15:08:00Z"), "2 Dec 2026, 15:08 UTC");
        assert_eq!(field_label("first_name"), "First name");
        assert_eq!(field_label("favourite-colour"), "Favourite colour");
        assert_eq!(event_label("SessionListUserSessions"), "Your sessions were listed");
        assert_eq!(value_text(&serde_json::json!({"city": "Berlin", "vip": true})), "City: Berlin\nVip: yes");
        assert_eq!(tf(Msg::FiledBy, &["a", "b"]), "a by b");
    }
}
