//! Realistic user profiles for the benchmark: a small one (email, login, name, phone) and a
//! 120-field one shaped like Databunker Pro's published benchmark (mixed strings, numbers and
//! booleans). Invariant: every record has a unique email, login and phone: each is built from
//! the record's sequence number, so generators given disjoint `start` ranges never collide.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value};

const FIRST: &[&str] = &[
    "Ada",
    "Alan",
    "Grace",
    "Linus",
    "Margaret",
    "Dennis",
    "Barbara",
    "Ken",
    "Radia",
    "Edsger",
    "Frances",
    "Donald",
    "Hedy",
    "John",
    "Katherine",
    "Tim",
    "Shafi",
    "Niklaus",
    "Sophie",
    "Guido",
    "Yukihiro",
    "Anita",
    "Bjarne",
    "Lucia",
    "Mateo",
    "Aisha",
    "Chen",
    "Olga",
];
const LAST: &[&str] = &[
    "Lovelace",
    "Turing",
    "Hopper",
    "Torvalds",
    "Hamilton",
    "Ritchie",
    "Liskov",
    "Thompson",
    "Perlman",
    "Dijkstra",
    "Allen",
    "Knuth",
    "Lamarr",
    "McCarthy",
    "Johnson",
    "Berners-Lee",
    "Goldwasser",
    "Wirth",
    "Wilson",
    "Rossum",
    "Matsumoto",
    "Borg",
    "Stroustrup",
    "Garcia",
    "Silva",
    "Khan",
    "Wei",
    "Petrova",
];
const CITIES: &[&str] =
    &["London", "Berlin", "Lisbon", "Austin", "Toronto", "Tel Aviv", "Warsaw", "Osaka", "Nairobi", "Sydney", "Madrid", "Chicago"];
const STREETS: &[&str] = &["High Street", "Main Street", "Station Road", "Church Lane", "Park Avenue", "Mill Road", "Elm Street"];
const COUNTRIES: &[&str] = &["GB", "DE", "PT", "US", "CA", "IL", "PL", "JP", "KE", "AU", "ES", "FR"];
const COMPANIES: &[&str] = &["Acme Ltd", "Globex", "Initech", "Umbrella plc", "Hooli", "Stark Industries", "Wayne Enterprises"];
const TITLES: &[&str] = &["Engineer", "Accountant", "Nurse", "Teacher", "Designer", "Analyst", "Pharmacist", "Architect"];
const WORDS: &[&str] =
    &["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo", "lima", "mike", "november"];
const DOMAINS: &[&str] = &["example.com", "example.org", "mail.example.net", "corp.example.io"];

/// What one field of the large profile holds.
#[derive(Clone, Copy)]
enum Kind {
    First,
    Last,
    City,
    Street,
    Zip,
    Country,
    Company,
    Title,
    Word,
    Sentence,
    Date,
    Iban,
    Ip,
    Int(i64, i64),
    Money,
    Bool,
}

/// Fields of the 120-field profile besides email, login and phone: (name, kind).
fn large_fields() -> Vec<(String, Kind)> {
    use Kind::*;
    let mut f: Vec<(String, Kind)> = [
        ("first_name", First),
        ("last_name", Last),
        ("middle_name", First),
        ("maiden_name", Last),
        ("name", First),
        ("gender", Word),
        ("birth_date", Date),
        ("birth_city", City),
        ("nationality", Country),
        ("language", Word),
        ("timezone", Word),
        ("title", Title),
        ("company", Company),
        ("department", Word),
        ("job_title", Title),
        ("employee_id", Int(100_000, 999_999)),
        ("manager_name", Last),
        ("iban", Iban),
        ("card_last4", Int(1000, 9999)),
        ("currency", Country),
        ("tax_id", Int(100_000_000, 999_999_999)),
        ("passport_number", Int(10_000_000, 99_999_999)),
        ("drivers_license", Int(1_000_000, 9_999_999)),
        ("last_ip", Ip),
        ("signup_ip", Ip),
        ("device_os", Word),
        ("browser", Word),
        ("referral_code", Word),
        ("favorite_color", Word),
        ("notes", Sentence),
        ("bio", Sentence),
        ("signup_date", Date),
        ("last_login_date", Date),
        ("emergency_contact", First),
        ("emergency_contact_last", Last),
    ]
    .into_iter()
    .map(|(n, k)| (n.to_string(), k))
    .collect();
    for prefix in ["home", "billing", "shipping"] {
        for (n, k) in [("street", Street), ("house_number", Int(1, 400)), ("city", City), ("zip", Zip), ("country", Country)] {
            f.push((format!("{prefix}_{n}"), k));
        }
    }
    for n in [
        "newsletter",
        "sms_opt_in",
        "email_verified",
        "phone_verified",
        "two_factor",
        "marketing_consent",
        "terms_accepted",
        "profiling_consent",
        "is_vip",
        "is_employee",
        "has_children",
        "kyc_passed",
        "pep_flag",
        "sanctions_hit",
        "dark_mode",
        "beta_tester",
    ] {
        f.push((n.to_string(), Bool));
    }
    for n in [
        "age",
        "login_count",
        "orders_count",
        "loyalty_points",
        "risk_score",
        "credit_score",
        "support_tickets",
        "household_size",
        "children_count",
        "days_since_order",
        "sessions_30d",
        "page_views_30d",
        "cart_items",
        "returns_count",
        "referrals",
    ] {
        f.push((n.to_string(), Int(0, 900)));
    }
    for n in ["annual_income", "account_balance", "lifetime_value", "avg_order_value", "credit_limit", "last_payment"] {
        f.push((n.to_string(), Money));
    }
    // Custom attributes, as SaaS tenants tend to add: `attr_01` .. up to 117 fields in all.
    let mut i = 1;
    while f.len() < 117 {
        let k = [Word, Int(0, 100_000), Bool, Sentence, City][i % 5];
        f.push((format!("attr_{i:02}"), k));
        i += 1;
    }
    f
}

/// Makes unique profiles; deterministic for a seed and start.
pub struct ProfileGen {
    rng: StdRng,
    next: u64,
    fields: Vec<(String, Kind)>,
}

impl ProfileGen {
    /// `start` is the first sequence number; give each generator of a run its own range.
    pub fn new(seed: u64, start: u64) -> ProfileGen {
        ProfileGen { rng: StdRng::seed_from_u64(seed), next: start, fields: large_fields() }
    }

    fn pick<'a>(&mut self, list: &[&'a str]) -> &'a str {
        list[self.rng.gen_range(0..list.len())]
    }

    /// The unique identities of the next record: (first, last, email, login, phone).
    fn identity(&mut self) -> (String, String, String, String, String) {
        let seq = self.next;
        self.next += 1;
        let (first, last) = (self.pick(FIRST).to_string(), self.pick(LAST).to_string());
        let domain = self.pick(DOMAINS);
        let email = format!("{}.{}.{seq}@{domain}", first.to_lowercase(), last.to_lowercase());
        let login = format!("{}{}{seq}", first.to_lowercase(), &last[..1].to_lowercase());
        // Digits are what the phone index keeps: `1` then 10 digits, unique per seq (< 8e9).
        let n = 2_000_000_000u64 + seq;
        let phone = format!("+1 ({:03}) {:03}-{:04}", n / 10_000_000, (n / 10_000) % 1000, n % 10_000);
        (first, last, email, login, phone)
    }

    /// email, login, name, phone.
    pub fn small(&mut self) -> Value {
        let (first, last, email, login, phone) = self.identity();
        let mut m = Map::new();
        m.insert("email".into(), email.into());
        m.insert("login".into(), login.into());
        m.insert("name".into(), format!("{first} {last}").into());
        m.insert("phone".into(), phone.into());
        Value::Object(m)
    }

    /// 120 fields: email, login, phone and 117 others of mixed types.
    pub fn large(&mut self) -> Value {
        let (first, last, email, login, phone) = self.identity();
        let mut m = Map::new();
        m.insert("email".into(), email.into());
        m.insert("login".into(), login.into());
        m.insert("phone".into(), phone.into());
        let fields = std::mem::take(&mut self.fields);
        for (name, kind) in &fields {
            let v = match name.as_str() {
                "first_name" | "name" => Value::from(first.clone()),
                "last_name" => Value::from(last.clone()),
                _ => self.value(*kind),
            };
            m.insert(name.clone(), v);
        }
        self.fields = fields;
        Value::Object(m)
    }

    fn value(&mut self, kind: Kind) -> Value {
        let r = &mut self.rng;
        match kind {
            Kind::First => self.pick(FIRST).into(),
            Kind::Last => self.pick(LAST).into(),
            Kind::City => self.pick(CITIES).into(),
            Kind::Street => self.pick(STREETS).into(),
            Kind::Zip => format!("{:05}", r.gen_range(1000..99_999)).into(),
            Kind::Country => self.pick(COUNTRIES).into(),
            Kind::Company => self.pick(COMPANIES).into(),
            Kind::Title => self.pick(TITLES).into(),
            Kind::Word => self.pick(WORDS).into(),
            Kind::Sentence => {
                let n = self.rng.gen_range(3..7);
                (0..n).map(|_| self.pick(WORDS)).collect::<Vec<_>>().join(" ").into()
            }
            Kind::Date => format!("{}-{:02}-{:02}", r.gen_range(1940..2007), r.gen_range(1..13), r.gen_range(1..29)).into(),
            Kind::Iban => format!("GB{:02}EXMP{:014}", r.gen_range(10..99), r.gen_range(0..99_999_999_999_999u64)).into(),
            Kind::Ip => format!("10.{}.{}.{}", r.gen_range(0..256), r.gen_range(0..256), r.gen_range(1..255)).into(),
            Kind::Int(lo, hi) => r.gen_range(lo..=hi).into(),
            Kind::Money => ((r.gen_range(0..10_000_000) as f64) / 100.0).into(),
            Kind::Bool => r.gen_bool(0.5).into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use strongroom::keys::blind::IndexMode;

    #[test]
    fn large_profiles_have_120_mixed_fields_of_a_few_kilobytes() {
        let mut g = ProfileGen::new(1, 0);
        let p = g.large();
        let o = p.as_object().unwrap();
        assert_eq!(o.len(), 120);
        assert!(o.values().any(Value::is_boolean) && o.values().any(Value::is_number) && o.values().any(Value::is_string));
        let size = serde_json::to_vec(&p).unwrap().len();
        assert!((2_000..5_000).contains(&size), "{size} bytes");
        assert_eq!(g.small().as_object().unwrap().len(), 4);
    }

    #[test]
    fn identities_are_unique_after_index_normalization() {
        let mut g = ProfileGen::new(7, 0);
        let (mut emails, mut logins, mut phones) = (HashSet::new(), HashSet::new(), HashSet::new());
        for i in 0..20_000 {
            let p = if i % 2 == 0 { g.small() } else { g.large() };
            assert!(emails.insert(IndexMode::Email.normalize(p["email"].as_str().unwrap()).unwrap()));
            assert!(logins.insert(IndexMode::Login.normalize(p["login"].as_str().unwrap()).unwrap()));
            assert!(phones.insert(IndexMode::Phone.normalize(p["phone"].as_str().unwrap()).unwrap()));
        }
        // Another generator on a disjoint range (same seed, so same names) never collides.
        let mut h = ProfileGen::new(7, 20_000);
        for _ in 0..1000 {
            let p = h.small();
            assert!(emails.insert(IndexMode::Email.normalize(p["email"].as_str().unwrap()).unwrap()));
            assert!(phones.insert(IndexMode::Phone.normalize(p["phone"].as_str().unwrap()).unwrap()));
        }
    }
}
