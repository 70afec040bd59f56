//! Ready to scale out: past one primary, Citus can distribute every tenant table by
//! `tenant_id` (docs/operations.md, "Scaling out") only while every primary key and unique
//! constraint of a tenant table includes `tenant_id` and every foreign key between tenant
//! tables carries it. Checked over the catalog, so a new table or index cannot break it unseen.

use sqlx::{Connection, PgConnection};

use crate::helpers::*;

/// Tables with a `tenant_id` column.
const TENANT_TABLES: &str = "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
      AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tenant_table_is_keyed_and_linked_by_tenant_id() {
    let url = fresh_database().await;
    let mut db = PgConnection::connect(&url).await.unwrap();
    let tables: Vec<String> = sqlx::query_scalar(&format!("SELECT oid::regclass::text FROM pg_class WHERE oid IN ({TENANT_TABLES})"))
        .fetch_all(&mut db)
        .await
        .unwrap();
    assert!(tables.len() >= 20 && tables.iter().any(|t| t == "users"), "tenant tables found: {tables:?}");

    let tenant_attnum = "(SELECT a.attnum FROM pg_attribute a WHERE a.attrelid = {rel} AND a.attname = 'tenant_id')";
    // Primary keys and unique indexes (constraints or not) without tenant_id.
    let unique: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT i.indexrelid::regclass::text FROM pg_index i
          WHERE i.indisunique AND i.indrelid IN ({TENANT_TABLES})
            AND NOT ({} = ANY (i.indkey::int2[]))",
        tenant_attnum.replace("{rel}", "i.indrelid")
    ))
    .fetch_all(&mut db)
    .await
    .unwrap();
    assert!(unique.is_empty(), "unique keys of tenant tables without tenant_id: {unique:?}");

    // Foreign keys between tenant tables that do not carry tenant_id on both sides.
    let links: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT f.conname::text FROM pg_constraint f
          WHERE f.contype = 'f' AND f.conrelid IN ({TENANT_TABLES}) AND f.confrelid IN ({TENANT_TABLES})
            AND NOT ({} = ANY (f.conkey) AND {} = ANY (f.confkey))",
        tenant_attnum.replace("{rel}", "f.conrelid"),
        tenant_attnum.replace("{rel}", "f.confrelid")
    ))
    .fetch_all(&mut db)
    .await
    .unwrap();
    assert!(links.is_empty(), "foreign keys between tenant tables without tenant_id: {links:?}");

    // Every tenant table has a primary key (Citus needs one to distribute it by tenant_id).
    let keyless: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT c.oid::regclass::text FROM pg_class c WHERE c.oid IN ({TENANT_TABLES})
            AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)"
    ))
    .fetch_all(&mut db)
    .await
    .unwrap();
    assert!(keyless.is_empty(), "tenant tables without a primary key: {keyless:?}");
}
