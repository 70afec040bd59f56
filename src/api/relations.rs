//! Group-relative access (Databunker Pro's `${target_group_members:role/<role>}` resources and
//! conditions on groups and the target): a user token also carries the tenant roles its record
//! holds in groups, and a rule that needs the target is decided when the target is known.
//!
//! Invariants: a call that only a group-relative rule let through must have its target checked
//! before it commits (`Call::finish` refuses it otherwise); a data subject's token reaches a
//! record other than its own only through an allow that holds for that record; a matching deny
//! wins, and a deny whose facts are unknown applies; what such an allow grants of the record
//! (`.profile.<field>`, `.profile.*`, `.*`, `.group`) is all the caller reads of it.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::Call;
use crate::auth::conditions::{Facts, Holds, Key};
use crate::auth::policy::{RelativeGrant, View};
use crate::error::{Error, Result};
use crate::store::relations::Membership;
use crate::store::TenantTx;

/// What a call knows and has decided about group-relative rules.
#[derive(Debug, Default)]
pub struct Relative {
    /// The caller's own record and its memberships (for a user token).
    pub caller: Option<(i64, Vec<Membership>)>,
    /// The group-relative rules for the caller's subjects and this endpoint.
    pub grants: Vec<RelativeGrant>,
    /// The static rules did not allow the call: only a group-relative allow can.
    pub required: bool,
    /// A target (record or group) was checked against `grants`.
    pub checked: bool,
    /// What the allow that let the caller reach the target grants of it (`None`: the target
    /// was reached by the static rules, or is the caller's own record).
    pub views: Option<Vec<View>>,
}

impl Relative {
    /// The tenant roles the caller's record holds in its groups (casbin subjects `role:<name>`).
    pub fn group_subjects(&self) -> Vec<String> {
        let mut out: BTreeSet<String> = BTreeSet::new();
        if let Some((_, memberships)) = &self.caller {
            out.extend(memberships.iter().filter_map(|m| m.role.as_ref()).map(|r| crate::auth::Role::tenant(r).subject()));
        }
        out.into_iter().collect()
    }
}

/// The facts group-relative conditions read, gathered for one target.
struct Gathered<'a> {
    meta: &'a Value,
    caller_groups: Vec<i64>,
    target_groups: Vec<i64>,
    values: BTreeMap<String, Vec<String>>,
}

impl Facts for Gathered<'_> {
    fn values(&self, key: &Key) -> Option<Vec<String>> {
        match key {
            Key::Meta(path) => Some(crate::auth::conditions::meta_values(self.meta, path)),
            Key::UserGroupId => Some(self.caller_groups.iter().map(i64::to_string).collect()),
            Key::TargetGroupId => Some(self.target_groups.iter().map(i64::to_string).collect()),
            other => self.values.get(&format!("{other:?}")).cloned(),
        }
    }
}

/// The target of a group-relative decision.
pub enum Target<'a> {
    /// A user record: its id, token and (when a condition reads its fields) its profile.
    Record { id: i64, profile: Option<&'a Value> },
    /// A group being listed (BulkListGroupUsers).
    Group(i64),
}

/// The keys the grants' conditions read.
fn keys(grants: &[RelativeGrant]) -> Vec<Key> {
    let mut out = Vec::new();
    for g in grants {
        for t in &g.condition.tests {
            out.push(t.key.clone());
            if let crate::auth::conditions::Operand::Key(k) = &t.operand {
                out.push(k.clone());
            }
        }
    }
    out
}

/// Whether any grant's condition reads a profile field of the target.
pub fn reads_target_fields(grants: &[RelativeGrant]) -> bool {
    keys(grants).iter().any(|k| matches!(k, Key::TargetField(_)))
}

async fn gather<'a>(
    tx: &mut TenantTx,
    meta: &'a Value,
    caller: Option<&(i64, Vec<Membership>)>,
    target: &Target<'_>,
    target_memberships: &[Membership],
    grants: &[RelativeGrant],
) -> Result<Gathered<'a>> {
    let caller_groups: Vec<i64> = caller.map(|(_, m)| m.iter().map(|m| m.group_id).collect()).unwrap_or_default();
    let target_groups: Vec<i64> = match target {
        Target::Record { .. } => target_memberships.iter().map(|m| m.group_id).collect(),
        Target::Group(g) => vec![*g],
    };
    let mut values = BTreeMap::new();
    for key in keys(grants) {
        let name = format!("{key:?}");
        if values.contains_key(&name) {
            continue;
        }
        let v = match &key {
            Key::UserGroupMembers(role) => tx.members_with_role(&caller_groups, role).await?,
            Key::TargetGroupMembers(role) => tx.members_with_role(&target_groups, role).await?,
            Key::TargetField(field) => match target {
                Target::Record { profile: Some(p), .. } => crate::auth::conditions::meta_values(p, std::slice::from_ref(field)),
                _ => continue,
            },
            Key::Agreement(brief) => match target {
                Target::Record { id, .. } => vec![tx.agreement_in_force(*id, brief).await?.to_string()],
                Target::Group(_) => continue,
            },
            Key::Meta(_) | Key::UserGroupId | Key::TargetGroupId => continue,
        };
        values.insert(name, v);
    }
    Ok(Gathered { meta, caller_groups, target_groups, values })
}

/// The grants that decide on a target holding `roles` (its roles in the relevant groups): a
/// deny that applies, or the views of the allows that hold.
fn decide(grants: &[RelativeGrant], roles: &BTreeSet<String>, facts: &dyn Facts) -> (bool, Vec<View>) {
    let mut views = Vec::new();
    for g in grants {
        if g.target_role.as_ref().is_some_and(|r| !roles.contains(r)) {
            continue;
        }
        match (g.allow, g.condition.eval(facts)) {
            (false, Holds::Yes | Holds::Unknown) => return (true, Vec::new()),
            (true, Holds::Yes) => views.push(g.view.clone()),
            _ => {}
        }
    }
    (false, views)
}

/// The roles the target holds that group-relative resources match: for a data subject's token,
/// only those held in groups the caller belongs to (a parent reaches the children of its own
/// family group, not every record holding `child` in the tenant); for a credential, any.
fn target_roles(caller: Option<&(i64, Vec<Membership>)>, target: &[Membership]) -> BTreeSet<String> {
    target
        .iter()
        .filter(|m| caller.is_none_or(|(_, own)| own.iter().any(|o| o.group_id == m.group_id)))
        .filter_map(|m| m.role.clone())
        .collect()
}

/// Checks the record `id` (token `token`) that the call found, as the group-relative rules say;
/// 404 when they keep the caller from it.
pub async fn check_record(call: &mut Call, id: i64, token: &str, profile: Option<&Value>) -> Result<()> {
    let own = call.who.self_user.as_deref() == Some(token);
    let need_allow = call.relative.required || (call.who.self_user.is_some() && !own);
    if call.relative.grants.is_empty() {
        if need_allow {
            return Err(Error::not_found("user record"));
        }
        call.relative.checked = true;
        return Ok(());
    }
    let memberships = call.tx.memberships_of(id).await?;
    let roles = target_roles(call.relative.caller.as_ref(), &memberships);
    let meta = call.metadata();
    let grants = call.relative.grants.clone();
    let facts = gather(&mut call.tx, &meta, call.relative.caller.as_ref(), &Target::Record { id, profile }, &memberships, &grants).await?;
    let (denied, views) = decide(&grants, &roles, &facts);
    let writes = !is_read(call.endpoint());
    let usable: Vec<View> = views.into_iter().filter(|v| !writes || matches!(v, View::Record | View::Profile)).collect();
    if denied || (need_allow && usable.is_empty()) {
        return Err(Error::not_found("user record"));
    }
    if need_allow {
        call.relative.views = Some(usable);
    }
    call.relative.checked = true;
    Ok(())
}

/// For a listing of group `group_id` (BulkListGroupUsers): `None` when the static rules allowed
/// it (no filter), else which members the caller may see, by the role they hold in the group,
/// with what of each; 404 when the group-relative rules allow nothing of it.
pub async fn check_group(call: &mut Call, group_id: i64) -> Result<Option<BTreeMap<String, Vec<View>>>> {
    if !call.relative.required {
        call.relative.checked = true;
        return Ok(None);
    }
    // A data subject lists only a group it belongs to.
    if call.relative.caller.as_ref().is_some_and(|(_, own)| !own.iter().any(|m| m.group_id == group_id)) {
        return Err(Error::not_found("group"));
    }
    let meta = call.metadata();
    let grants = call.relative.grants.clone();
    let facts = gather(&mut call.tx, &meta, call.relative.caller.as_ref(), &Target::Group(group_id), &[], &grants).await?;
    let mut seen: BTreeMap<String, Vec<View>> = BTreeMap::new();
    for role in grants.iter().filter_map(|g| g.target_role.clone()).collect::<BTreeSet<_>>() {
        let (denied, views) = decide(&grants, &BTreeSet::from([role.clone()]), &facts);
        if !denied && views.iter().any(|v| matches!(v, View::Group | View::Record)) {
            seen.insert(role, views);
        }
    }
    if seen.is_empty() {
        return Err(Error::not_found("group"));
    }
    call.relative.checked = true;
    Ok(Some(seen))
}

/// Keeps of `profile` only what `views` grant: all of it for a record or profile view, else the
/// named fields (others become "***" for strings and disappear otherwise, as field masking does).
pub fn apply_views(profile: &mut Value, views: &[View]) {
    if views.iter().any(|v| matches!(v, View::Record | View::Profile)) {
        return;
    }
    let allowed: BTreeSet<&str> = views.iter().filter_map(|v| if let View::Field(f) = v { Some(f.as_str()) } else { None }).collect();
    let Value::Object(fields) = profile else { return };
    fields.retain(|name, value| {
        if allowed.contains(name.as_str()) {
            return true;
        }
        if value.is_string() {
            *value = Value::String("***".into());
            true
        } else {
            false
        }
    });
}

/// Endpoints that only read what they reach.
fn is_read(endpoint: &str) -> bool {
    endpoint.contains("Get") || endpoint.contains("List")
}
