//! GroupCreate, GroupGet, GroupListAllGroups, GroupUpdate, GroupDelete, GroupAddUser,
//! GroupDeleteUser, GroupListUserGroups. A group is a named set of users of one tenant; a
//! membership may carry one tenant role (see RoleCreate), reported in UserGet's `grouproles`.
//! Deleting a group or a user removes its memberships. BulkListGroupUsers is not served here.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::body::{int_or_string, Body, Metadata};
use super::body::{NoArgs as TenantReq, UserLookup as UserReq};
use super::users::find_user;
use super::{fields, Call};
use crate::app::AppState;
use crate::auth::Claimed;
use crate::error::{Error, Result};
use crate::store::groups::GroupRow;
use crate::store::roles::RoleRow;
use crate::store::users::UserRow;
use crate::store::TenantTx;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v2/GroupCreate", post(group_create))
        .route("/v2/GroupGet", post(group_get))
        .route("/v2/GroupListAllGroups", post(group_list_all))
        .route("/v2/GroupUpdate", post(group_update))
        .route("/v2/GroupDelete", post(group_delete))
        .route("/v2/GroupAddUser", post(group_add_user))
        .route("/v2/GroupDeleteUser", post(group_delete_user))
        .route("/v2/GroupListUserGroups", post(group_list_user_groups))
}

/// Longest `groupdesc` and `grouptype` accepted.
const MAX_DESC: usize = 1024;
const MAX_TYPE: usize = 64;

/// Checks a group name: 1 to 64 characters of `[A-Za-z0-9_.-]`.
pub fn check_groupname(name: &str) -> Result<&str> {
    let ok = (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(name)
    } else {
        Err(Error::bad("groupname must be 1 to 64 characters of A-Z a-z 0-9 _ . -"))
    }
}

fn check_len<'a>(field: &str, v: Option<&'a str>, max: usize) -> Result<Option<&'a str>> {
    match v {
        Some(s) if s.chars().count() > max => Err(Error::bad(format!("{field} must be at most {max} characters"))),
        other => Ok(other),
    }
}

/// A group or role named in a request (by id, or by name when no id is given), not yet looked up.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Named {
    pub id: Option<i64>,
    pub name: Option<String>,
}

/// A membership a request asks for: a group and, optionally, a tenant role in it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Membership {
    pub group: Named,
    pub role: Option<Named>,
}

fn id_value(field: &str, v: &Option<Value>) -> Result<Option<i64>> {
    let bad = || Error::bad(format!("{field} must be an integer"));
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| bad()),
        Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(bad),
        Some(_) => Err(bad()),
    }
}

fn name_value(field: &str, v: &Option<Value>) -> Result<Option<String>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
        Some(_) => Err(Error::bad(format!("{field} must be a string"))),
    }
}

fn named(id: Option<i64>, name: Option<String>) -> Option<Named> {
    (id.is_some() || name.is_some()).then_some(Named { id, name })
}

/// The membership named by request fields (as sent: integers or strings), `None` when no group
/// is named. A role without a group is a 400.
pub fn requested(
    groupid: &Option<Value>,
    groupname: &Option<Value>,
    roleid: &Option<Value>,
    rolename: &Option<Value>,
) -> Result<Option<Membership>> {
    let group = named(id_value("groupid", groupid)?, name_value("groupname", groupname)?);
    let role = named(id_value("roleid", roleid)?, name_value("rolename", rolename)?);
    match (group, role) {
        (Some(group), role) => Ok(Some(Membership { group, role })),
        (None, Some(_)) => Err(Error::bad("roleid/rolename need a groupid or groupname")),
        (None, None) => Ok(None),
    }
}

async fn find_group(tx: &mut TenantTx, g: &Named) -> Result<GroupRow> {
    tx.find_group(g.id, g.name.as_deref()).await?.ok_or_else(|| Error::not_found("group"))
}

/// Looks up the group and role of a membership in the transaction's tenant; 404 for either.
pub async fn resolve(tx: &mut TenantTx, m: &Membership) -> Result<(GroupRow, Option<RoleRow>)> {
    let group = find_group(tx, &m.group).await?;
    let role = match &m.role {
        Some(r) => Some(tx.find_role(r.id, r.name.as_deref()).await?.ok_or_else(|| Error::not_found("role"))?),
        None => None,
    };
    Ok((group, role))
}

/// UserGet's `grouproles`: `[{groupid, groupname, roleid, rolename}]`, null role fields for a
/// membership without a role. Read with the user when its lookup did.
pub async fn grouproles(tx: &mut TenantTx, user: &UserRow) -> Result<Value> {
    let rows = match &user.memberships {
        Some(rows) => rows.clone(),
        None => tx.user_groups(user.id).await?,
    };
    Ok(rows
        .into_iter()
        .map(|m| json!({"groupid": m.group.id, "groupname": m.group.name, "roleid": m.role_id, "rolename": m.role_name}))
        .collect())
}

#[derive(Deserialize)]
struct CreateReq {
    groupname: String,
    #[serde(default)]
    groupdesc: Option<String>,
    #[serde(default)]
    grouptype: Option<String>,
    #[serde(default)]
    request_metadata: Metadata,
}

#[derive(Deserialize)]
struct GroupReq {
    #[serde(default, deserialize_with = "int_or_string")]
    groupid: Option<i64>,
    #[serde(default)]
    groupname: Option<String>,
    #[serde(default)]
    request_metadata: Metadata,
}

#[derive(Deserialize)]
struct UpdateReq {
    #[serde(default, deserialize_with = "int_or_string")]
    groupid: Option<i64>,
    #[serde(default)]
    groupname: Option<String>,
    #[serde(default)]
    groupdesc: Option<String>,
    #[serde(default)]
    grouptype: Option<String>,
    #[serde(default)]
    request_metadata: Metadata,
}

#[derive(Deserialize)]
struct MemberReq {
    mode: String,
    identity: String,
    #[serde(default)]
    groupid: Option<Value>,
    #[serde(default)]
    groupname: Option<Value>,
    #[serde(default)]
    roleid: Option<Value>,
    #[serde(default)]
    rolename: Option<Value>,
    #[serde(default)]
    request_metadata: Metadata,
}

/// The group a GroupGet/GroupDelete names, or 400 when it names none.
fn named_group(id: Option<i64>, name: Option<String>) -> Result<Named> {
    named(id, name.filter(|n| !n.trim().is_empty())).ok_or_else(|| Error::bad("groupid or groupname is required"))
}

fn no_self_user(call: &Call) -> Result<()> {
    // A user login token reaches its own record only, never the tenant's groups.
    if call.who.self_user.is_some() {
        return Err(Error::denied());
    }
    Ok(())
}

async fn group_create(State(st): State<AppState>, claimed: Claimed, Body(req): Body<CreateReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "GroupCreate", req.request_metadata).await?;
    let result = async {
        let name = check_groupname(req.groupname.trim())?;
        let desc = check_len("groupdesc", req.groupdesc.as_deref(), MAX_DESC)?.unwrap_or("");
        let gtype = check_len("grouptype", req.grouptype.as_deref(), MAX_TYPE)?.unwrap_or("");
        call.note("groupname", name);
        let id = call.tx.insert_group(name, desc, gtype).await?;
        call.note("groupid", id);
        Ok(fields([("groupid", id.into())]))
    }
    .await;
    call.finish(result).await
}

async fn group_get(State(st): State<AppState>, claimed: Claimed, Body(req): Body<GroupReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "GroupGet", req.request_metadata).await?;
    let result = async {
        no_self_user(&call)?;
        let g = find_group(&mut call.tx, &named_group(req.groupid, req.groupname)?).await?;
        call.note("groupid", g.id);
        Ok(fields([
            ("groupid", g.id.into()),
            ("groupname", g.name.into()),
            ("groupdesc", g.description.into()),
            ("grouptype", g.grouptype.into()),
        ]))
    }
    .await;
    call.finish(result).await
}

async fn group_list_all(State(st): State<AppState>, claimed: Claimed, Body(req): Body<TenantReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "GroupListAllGroups", req.request_metadata).await?;
    let result = async {
        no_self_user(&call)?;
        let rows: Vec<Value> = call
            .tx
            .list_groups()
            .await?
            .into_iter()
            .map(|g| json!({"groupid": g.id, "groupname": g.name, "groupdesc": g.description, "grouptype": g.grouptype}))
            .collect();
        call.note("count", rows.len());
        Ok(fields([("rows", Value::Array(rows))]))
    }
    .await;
    call.finish(result).await
}

async fn group_update(State(st): State<AppState>, claimed: Claimed, Body(req): Body<UpdateReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "GroupUpdate", req.request_metadata).await?;
    let result = async {
        let id = req.groupid.ok_or_else(|| Error::bad("groupid is required"))?;
        let name = match req.groupname.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(n) => Some(check_groupname(n)?),
        };
        let desc = check_len("groupdesc", req.groupdesc.as_deref(), MAX_DESC)?;
        let gtype = check_len("grouptype", req.grouptype.as_deref(), MAX_TYPE)?;
        call.note("groupid", id);
        if !call.tx.update_group(id, name, desc, gtype).await? {
            return Err(Error::not_found("group"));
        }
        Ok(Map::new())
    }
    .await;
    call.finish(result).await
}

async fn group_delete(State(st): State<AppState>, claimed: Claimed, Body(req): Body<GroupReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "GroupDelete", req.request_metadata).await?;
    let result = async {
        let g = find_group(&mut call.tx, &named_group(req.groupid, req.groupname)?).await?;
        call.note("groupid", g.id);
        if !call.tx.delete_group(g.id).await? {
            return Err(Error::not_found("group"));
        }
        Ok(Map::new())
    }
    .await;
    call.finish(result).await
}

async fn group_add_user(State(st): State<AppState>, claimed: Claimed, Body(req): Body<MemberReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "GroupAddUser", req.request_metadata).await?;
    let result = async {
        let m = requested(&req.groupid, &req.groupname, &req.roleid, &req.rolename)?
            .ok_or_else(|| Error::bad("groupid or groupname is required"))?;
        let (user, _) = find_user(&mut call, &req.mode, &req.identity).await?;
        let (group, role) = resolve(&mut call.tx, &m).await?;
        call.note("groupid", group.id);
        if let Some(r) = &role {
            call.note("roleid", r.id);
        }
        call.tx.add_group_members(&[(group.id, user.id, role.map(|r| r.id))]).await?;
        Ok(Map::new())
    }
    .await;
    call.finish(result).await
}

async fn group_delete_user(State(st): State<AppState>, claimed: Claimed, Body(req): Body<MemberReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "GroupDeleteUser", req.request_metadata).await?;
    let result = async {
        let group = named(id_value("groupid", &req.groupid)?, name_value("groupname", &req.groupname)?)
            .ok_or_else(|| Error::bad("groupid or groupname is required"))?;
        let (user, _) = find_user(&mut call, &req.mode, &req.identity).await?;
        let group = find_group(&mut call.tx, &group).await?;
        call.note("groupid", group.id);
        if !call.tx.remove_group_member(group.id, user.id).await? {
            return Err(Error::not_found("group membership"));
        }
        Ok(Map::new())
    }
    .await;
    call.finish(result).await
}

async fn group_list_user_groups(State(st): State<AppState>, claimed: Claimed, Body(req): Body<UserReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "GroupListUserGroups", req.request_metadata).await?;
    let result = async {
        let (user, _) = find_user(&mut call, &req.mode, &req.identity).await?;
        let rows: Vec<Value> = call
            .tx
            .user_groups(user.id)
            .await?
            .into_iter()
            .map(|m| {
                json!({"groupid": m.group.id, "groupname": m.group.name, "groupdesc": m.group.description,
                       "roleid": m.role_id, "rolename": m.role_name})
            })
            .collect();
        call.note("count", rows.len());
        Ok(fields([("rows", Value::Array(rows))]))
    }
    .await;
    call.finish(result).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groupnames_are_short_and_plain() {
        for ok in ["staff", "a", "team-1_x.y", &"g".repeat(64)] {
            assert!(check_groupname(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "a/b", "ä", &"g".repeat(65)] {
            assert!(check_groupname(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn memberships_are_named_by_ids_or_names() {
        let none = requested(&None, &None, &None, &None).unwrap();
        assert_eq!(none, None);
        let m = requested(&Some(json!("7")), &None, &None, &Some(json!("clerk"))).unwrap().unwrap();
        assert_eq!(m.group, Named { id: Some(7), name: None });
        assert_eq!(m.role, Some(Named { id: None, name: Some("clerk".into()) }));
        assert!(requested(&None, &None, &Some(json!(1)), &None).is_err());
        assert!(requested(&Some(json!("x")), &None, &None, &None).is_err());
        assert!(requested(&None, &Some(json!(5)), &None, &None).is_err());
        assert_eq!(requested(&Some(json!("")), &Some(Value::Null), &None, &None).unwrap(), None);
    }
}
