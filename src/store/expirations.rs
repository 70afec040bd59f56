//! SQL of the expiration flow (`user_expirations`, migration 0019).

use sqlx::Row;

use super::users::Retention;
use super::TenantTx;
use crate::error::Result;

/// Where a user's expiration flow stands.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ExpStatus {
    /// Started: deleted at `endtime` unless the person answers.
    Wait,
    /// The person chose to keep the record.
    Retain,
    /// The person chose to delete it now.
    Expired,
}

impl ExpStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ExpStatus::Wait => "wait",
            ExpStatus::Retain => "retain",
            ExpStatus::Expired => "expired",
        }
    }

    fn parse(s: &str) -> ExpStatus {
        match s {
            "retain" => ExpStatus::Retain,
            "expired" => ExpStatus::Expired,
            _ => ExpStatus::Wait,
        }
    }
}

pub struct ExpirationRow {
    pub user_id: i64,
    pub exptoken: Option<String>,
    pub status: ExpStatus,
    pub endtime: i64,
    /// The retention the flow replaced, put back when it is retained or cancelled.
    pub prior: Retention,
}

const COLUMNS: &str = "user_id, exptoken, status, endtime, prior_sliding_secs, prior_final_at";

fn from_row(r: &sqlx::postgres::PgRow, now: i64) -> ExpirationRow {
    let status: String = r.get(2);
    ExpirationRow {
        user_id: r.get(0),
        exptoken: r.get(1),
        status: ExpStatus::parse(&status),
        endtime: r.get(3),
        prior: Retention::new(r.get(4), r.get(5), now),
    }
}

impl TenantTx {
    /// The flow of user `user_id`, locked.
    pub async fn expiration(&mut self, user_id: i64, now: i64) -> Result<Option<ExpirationRow>> {
        let sql = format!("SELECT {COLUMNS} FROM user_expirations WHERE user_id = $1 FOR UPDATE");
        let row = sqlx::query(&sql).bind(user_id).fetch_optional(self.conn()).await?;
        Ok(row.map(|r| from_row(&r, now)))
    }

    /// The flow an exptoken link names, locked.
    pub async fn expiration_by_token(&mut self, exptoken: &str, now: i64) -> Result<Option<ExpirationRow>> {
        let sql = format!("SELECT {COLUMNS} FROM user_expirations WHERE exptoken = $1 FOR UPDATE");
        let row = sqlx::query(&sql).bind(exptoken).fetch_optional(self.conn()).await?;
        Ok(row.map(|r| from_row(&r, now)))
    }

    /// Starts (or restarts) the flow of `user_id`, remembering `prior`.
    pub async fn start_expiration(&mut self, user_id: i64, exptoken: &str, endtime: i64, prior: &Retention, now: i64) -> Result<()> {
        let tenant = self.tenant_id();
        sqlx::query(
            "INSERT INTO user_expirations (tenant_id, user_id, exptoken, status, endtime, prior_sliding_secs, prior_final_at, updated_at)
             VALUES ($1, $2, $3, 'wait', $4, $5, $6, $7)
             ON CONFLICT (tenant_id, user_id) DO UPDATE SET exptoken = $3, status = 'wait', endtime = $4,
                 prior_sliding_secs = $5, prior_final_at = $6, updated_at = $7",
        )
        .bind(tenant)
        .bind(user_id)
        .bind(exptoken)
        .bind(endtime)
        .bind(prior.sliding_secs)
        .bind(prior.final_at)
        .bind(now)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Moves the flow of `user_id` to `status`; retaining also ends the links and the deadline.
    pub async fn set_expiration_status(&mut self, user_id: i64, status: ExpStatus, now: i64) -> Result<()> {
        let sql = match status {
            ExpStatus::Retain => {
                "UPDATE user_expirations SET status = 'retain', exptoken = NULL, endtime = 0, updated_at = $2 WHERE user_id = $1"
            }
            ExpStatus::Expired => "UPDATE user_expirations SET status = 'expired', updated_at = $2 WHERE user_id = $1",
            ExpStatus::Wait => "UPDATE user_expirations SET status = 'wait', updated_at = $2 WHERE user_id = $1",
        };
        sqlx::query(sql).bind(user_id).bind(now).execute(self.conn()).await?;
        Ok(())
    }

    pub async fn delete_expiration(&mut self, user_id: i64) -> Result<bool> {
        Ok(sqlx::query("DELETE FROM user_expirations WHERE user_id = $1").bind(user_id).execute(self.conn()).await?.rows_affected() > 0)
    }

    /// Sets a user's retention (what the sweeper and every lookup go by).
    pub async fn set_retention(&mut self, user_id: i64, r: &Retention) -> Result<()> {
        sqlx::query("UPDATE users SET sliding_secs = $2, final_at = $3, expires_at = $4 WHERE id = $1")
            .bind(user_id)
            .bind(r.sliding_secs)
            .bind(r.final_at)
            .bind(r.expires_at)
            .execute(self.conn())
            .await?;
        Ok(())
    }
}
