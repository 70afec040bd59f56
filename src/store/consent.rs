//! Consent: legal bases, users' agreements to them (personal fields sealed by the caller),
//! processing activities and their links to legal bases.

use sqlx::Row;

use super::{now_secs, TenantTx};
use crate::error::{on_constraint, Result};

const BRIEF_TAKEN: &[(&str, &str)] = &[("legal_bases_brief_key", "legal basis brief already exists")];
const ACTIVITY_TAKEN: &[(&str, &str)] = &[("processing_activities_activity_key", "processing activity already exists")];

/// The descriptive fields of a legal basis, as stored.
#[derive(Debug, Clone, Default)]
pub struct BasisFields {
    pub brief: String,
    pub status: String,
    pub module: String,
    pub fulldesc: String,
    pub shortdesc: String,
    pub basistype: String,
    pub requiredmsg: String,
    pub requiredflag: bool,
}

#[derive(Debug, Clone)]
pub struct BasisRow {
    pub id: i64,
    pub fields: BasisFields,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A stored agreement; `personal` is sealed under the user's key.
#[derive(Debug, Clone)]
pub struct AgreementRow {
    pub basis_id: i64,
    pub brief: String,
    pub status: String,
    pub starttime: i64,
    pub finaltime: i64,
    pub withdrawn_at: Option<i64>,
    pub personal: Vec<u8>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What an acceptance stores.
pub struct NewAgreement<'a> {
    pub user_id: i64,
    pub basis_id: i64,
    pub status: &'a str,
    pub starttime: i64,
    pub finaltime: i64,
    pub personal: &'a [u8],
}

#[derive(Debug, Clone, Default)]
pub struct ActivityFields {
    pub activity: String,
    pub title: String,
    pub script: String,
    pub fulldesc: String,
    pub applicableto: String,
}

#[derive(Debug, Clone)]
pub struct ActivityRow {
    pub id: i64,
    pub fields: ActivityFields,
    pub created_at: i64,
    pub updated_at: i64,
    /// Briefs of the linked legal bases, sorted.
    pub briefs: Vec<String>,
}

const BASIS_COLUMNS: &str = "id, brief, status, module, fulldesc, shortdesc, basistype, requiredmsg, requiredflag, created_at, updated_at";

fn basis_from_row(r: &sqlx::postgres::PgRow) -> BasisRow {
    BasisRow {
        id: r.get(0),
        fields: BasisFields {
            brief: r.get(1),
            status: r.get(2),
            module: r.get(3),
            fulldesc: r.get(4),
            shortdesc: r.get(5),
            basistype: r.get(6),
            requiredmsg: r.get(7),
            requiredflag: r.get(8),
        },
        created_at: r.get(9),
        updated_at: r.get(10),
    }
}

const AGREEMENT_COLUMNS: &str =
    "a.basis_id, b.brief, a.status, a.starttime, a.finaltime, a.withdrawn_at, a.personal, a.created_at, a.updated_at";

fn agreement_from_row(r: &sqlx::postgres::PgRow) -> AgreementRow {
    AgreementRow {
        basis_id: r.get(0),
        brief: r.get(1),
        status: r.get(2),
        starttime: r.get(3),
        finaltime: r.get(4),
        withdrawn_at: r.get(5),
        personal: r.get(6),
        created_at: r.get(7),
        updated_at: r.get(8),
    }
}

impl TenantTx {
    // ------------------------------------------------------------ legal bases

    pub async fn insert_legal_basis(&mut self, f: &BasisFields) -> Result<i64> {
        let tenant = self.tenant_id();
        sqlx::query_scalar(
            "INSERT INTO legal_bases (tenant_id, brief, status, module, fulldesc, shortdesc, basistype, requiredmsg, requiredflag,
                                      created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) RETURNING id",
        )
        .bind(tenant)
        .bind(&f.brief)
        .bind(&f.status)
        .bind(&f.module)
        .bind(&f.fulldesc)
        .bind(&f.shortdesc)
        .bind(&f.basistype)
        .bind(&f.requiredmsg)
        .bind(f.requiredflag)
        .bind(now_secs())
        .fetch_one(self.conn())
        .await
        .map_err(|e| on_constraint(e, BRIEF_TAKEN))
    }

    pub async fn legal_basis(&mut self, brief: &str) -> Result<Option<BasisRow>> {
        let row = sqlx::query(&format!("SELECT {BASIS_COLUMNS} FROM legal_bases WHERE brief = $1"))
            .bind(brief)
            .fetch_optional(self.conn())
            .await?;
        Ok(row.as_ref().map(basis_from_row))
    }

    /// A legal basis, its row locked for the rest of the transaction: shared (accepting,
    /// linking) or exclusive (changing, deleting, revoking all), so an acceptance never lands on
    /// a basis being deleted.
    pub async fn lock_legal_basis(&mut self, brief: &str, exclusive: bool) -> Result<Option<BasisRow>> {
        let lock = if exclusive { "FOR UPDATE" } else { "FOR SHARE" };
        let row = sqlx::query(&format!("SELECT {BASIS_COLUMNS} FROM legal_bases WHERE brief = $1 {lock}"))
            .bind(brief)
            .fetch_optional(self.conn())
            .await?;
        Ok(row.as_ref().map(basis_from_row))
    }

    pub async fn legal_bases(&mut self) -> Result<Vec<BasisRow>> {
        let rows = sqlx::query(&format!("SELECT {BASIS_COLUMNS} FROM legal_bases ORDER BY brief")).fetch_all(self.conn()).await?;
        Ok(rows.iter().map(basis_from_row).collect())
    }

    /// Replaces every field of basis `id` (including its brief); a brief taken by another is 409.
    pub async fn update_legal_basis(&mut self, id: i64, f: &BasisFields) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE legal_bases SET brief = $2, status = $3, module = $4, fulldesc = $5, shortdesc = $6, basistype = $7,
                                    requiredmsg = $8, requiredflag = $9, updated_at = $10
             WHERE id = $1",
        )
        .bind(id)
        .bind(&f.brief)
        .bind(&f.status)
        .bind(&f.module)
        .bind(&f.fulldesc)
        .bind(&f.shortdesc)
        .bind(&f.basistype)
        .bind(&f.requiredmsg)
        .bind(f.requiredflag)
        .bind(now_secs())
        .execute(self.conn())
        .await
        .map_err(|e| on_constraint(e, BRIEF_TAKEN))?
        .rows_affected();
        Ok(n == 1)
    }

    /// Deletes basis `id`, its activity links and (by cascade) its remaining agreements.
    pub async fn delete_legal_basis(&mut self, id: i64) -> Result<bool> {
        let n = sqlx::query("DELETE FROM legal_bases WHERE id = $1").bind(id).execute(self.conn()).await?.rows_affected();
        Ok(n == 1)
    }

    /// Agreements on basis `id` that are still in force at `now` (pending or active, not past
    /// their finaltime).
    pub async fn live_agreements(&mut self, basis_id: i64, now: i64) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT count(*) FROM agreements WHERE basis_id = $1 AND status IN ('pending', 'active') AND (finaltime = 0 OR finaltime > $2)",
        )
        .bind(basis_id)
        .bind(now)
        .fetch_one(self.conn())
        .await?)
    }

    // ------------------------------------------------------------ agreements

    /// Records an acceptance: inserts, or replaces an earlier agreement of the same user and
    /// basis (keeping its creation time, clearing any withdrawal).
    pub async fn upsert_agreement(&mut self, a: &NewAgreement<'_>) -> Result<()> {
        let tenant = self.tenant_id();
        sqlx::query(
            "INSERT INTO agreements (tenant_id, user_id, basis_id, status, starttime, finaltime, withdrawn_at, personal, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, NULL, $7, $8, $8)
             ON CONFLICT (tenant_id, user_id, basis_id) DO UPDATE
             SET status = EXCLUDED.status, starttime = EXCLUDED.starttime, finaltime = EXCLUDED.finaltime,
                 withdrawn_at = NULL, personal = EXCLUDED.personal, updated_at = EXCLUDED.updated_at",
        )
        .bind(tenant)
        .bind(a.user_id)
        .bind(a.basis_id)
        .bind(a.status)
        .bind(a.starttime)
        .bind(a.finaltime)
        .bind(a.personal)
        .bind(now_secs())
        .execute(self.conn())
        .await?;
        Ok(())
    }

    pub async fn agreement(&mut self, user_id: i64, basis_id: i64) -> Result<Option<AgreementRow>> {
        let row = sqlx::query(&format!(
            "SELECT {AGREEMENT_COLUMNS} FROM agreements a JOIN legal_bases b ON b.tenant_id = a.tenant_id AND b.id = a.basis_id
             WHERE a.user_id = $1 AND a.basis_id = $2"
        ))
        .bind(user_id)
        .bind(basis_id)
        .fetch_optional(self.conn())
        .await?;
        Ok(row.as_ref().map(agreement_from_row))
    }

    pub async fn user_agreements(&mut self, user_id: i64) -> Result<Vec<AgreementRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {AGREEMENT_COLUMNS} FROM agreements a JOIN legal_bases b ON b.tenant_id = a.tenant_id AND b.id = a.basis_id
             WHERE a.user_id = $1 ORDER BY b.brief"
        ))
        .bind(user_id)
        .fetch_all(self.conn())
        .await?;
        Ok(rows.iter().map(agreement_from_row).collect())
    }

    /// Marks one agreement withdrawn at `now` (an already withdrawn one keeps its time).
    pub async fn withdraw_agreement(&mut self, user_id: i64, basis_id: i64, now: i64) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE agreements SET status = 'withdrawn', withdrawn_at = COALESCE(withdrawn_at, $3), updated_at = $3
             WHERE user_id = $1 AND basis_id = $2",
        )
        .bind(user_id)
        .bind(basis_id)
        .bind(now)
        .execute(self.conn())
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Withdraws every not yet withdrawn agreement on basis `id`; returns how many.
    pub async fn withdraw_all(&mut self, basis_id: i64, now: i64) -> Result<u64> {
        Ok(sqlx::query(
            "UPDATE agreements SET status = 'withdrawn', withdrawn_at = $2, updated_at = $2 WHERE basis_id = $1 AND status <> 'withdrawn'",
        )
        .bind(basis_id)
        .bind(now)
        .execute(self.conn())
        .await?
        .rows_affected())
    }

    // ------------------------------------------------------------ processing activities

    pub async fn insert_activity(&mut self, f: &ActivityFields) -> Result<i64> {
        let tenant = self.tenant_id();
        sqlx::query_scalar(
            "INSERT INTO processing_activities (tenant_id, activity, title, script, fulldesc, applicableto, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING id",
        )
        .bind(tenant)
        .bind(&f.activity)
        .bind(&f.title)
        .bind(&f.script)
        .bind(&f.fulldesc)
        .bind(&f.applicableto)
        .bind(now_secs())
        .fetch_one(self.conn())
        .await
        .map_err(|e| on_constraint(e, ACTIVITY_TAKEN))
    }

    /// An activity by name (without its links).
    pub async fn activity(&mut self, activity: &str) -> Result<Option<ActivityRow>> {
        let row = sqlx::query(
            "SELECT id, activity, title, script, fulldesc, applicableto, created_at, updated_at FROM processing_activities WHERE activity = $1",
        )
        .bind(activity)
        .fetch_optional(self.conn())
        .await?;
        Ok(row.map(|r| ActivityRow {
            id: r.get(0),
            fields: ActivityFields { activity: r.get(1), title: r.get(2), script: r.get(3), fulldesc: r.get(4), applicableto: r.get(5) },
            created_at: r.get(6),
            updated_at: r.get(7),
            briefs: Vec::new(),
        }))
    }

    /// Every activity with the briefs of its linked legal bases.
    pub async fn activities(&mut self) -> Result<Vec<ActivityRow>> {
        let rows = sqlx::query(
            "SELECT p.id, p.activity, p.title, p.script, p.fulldesc, p.applicableto, p.created_at, p.updated_at,
                    COALESCE(array_agg(b.brief ORDER BY b.brief) FILTER (WHERE b.brief IS NOT NULL), '{}') AS briefs
             FROM processing_activities p
             LEFT JOIN activity_legal_bases l ON l.tenant_id = p.tenant_id AND l.activity_id = p.id
             LEFT JOIN legal_bases b ON b.tenant_id = l.tenant_id AND b.id = l.basis_id
             GROUP BY p.id, p.activity, p.title, p.script, p.fulldesc, p.applicableto, p.created_at, p.updated_at
             ORDER BY p.activity",
        )
        .fetch_all(self.conn())
        .await?;
        Ok(rows
            .iter()
            .map(|r| ActivityRow {
                id: r.get(0),
                fields: ActivityFields {
                    activity: r.get(1),
                    title: r.get(2),
                    script: r.get(3),
                    fulldesc: r.get(4),
                    applicableto: r.get(5),
                },
                created_at: r.get(6),
                updated_at: r.get(7),
                briefs: r.get(8),
            })
            .collect())
    }

    /// Replaces every field of activity `id` (including its name); a name taken by another is 409.
    pub async fn update_activity(&mut self, id: i64, f: &ActivityFields) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE processing_activities SET activity = $2, title = $3, script = $4, fulldesc = $5, applicableto = $6, updated_at = $7
             WHERE id = $1",
        )
        .bind(id)
        .bind(&f.activity)
        .bind(&f.title)
        .bind(&f.script)
        .bind(&f.fulldesc)
        .bind(&f.applicableto)
        .bind(now_secs())
        .execute(self.conn())
        .await
        .map_err(|e| on_constraint(e, ACTIVITY_TAKEN))?
        .rows_affected();
        Ok(n == 1)
    }

    /// Deletes activity `id` and its links.
    pub async fn delete_activity(&mut self, id: i64) -> Result<bool> {
        let n = sqlx::query("DELETE FROM processing_activities WHERE id = $1").bind(id).execute(self.conn()).await?.rows_affected();
        Ok(n == 1)
    }

    /// Links an activity to a legal basis; linking twice is a no-op. Returns whether it was new.
    pub async fn link_activity(&mut self, activity_id: i64, basis_id: i64) -> Result<bool> {
        let tenant = self.tenant_id();
        let n =
            sqlx::query("INSERT INTO activity_legal_bases (tenant_id, activity_id, basis_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                .bind(tenant)
                .bind(activity_id)
                .bind(basis_id)
                .execute(self.conn())
                .await?
                .rows_affected();
        Ok(n == 1)
    }

    /// Removes a link; returns whether there was one.
    pub async fn unlink_activity(&mut self, activity_id: i64, basis_id: i64) -> Result<bool> {
        let n = sqlx::query("DELETE FROM activity_legal_bases WHERE activity_id = $1 AND basis_id = $2")
            .bind(activity_id)
            .bind(basis_id)
            .execute(self.conn())
            .await?
            .rows_affected();
        Ok(n == 1)
    }
}
