//! Integration tests against a real PostgreSQL (one binary, so it links once).

mod appdata;
mod audit;
mod bulk;
mod consent;
mod custody;
mod demo;
mod groups;
mod helpers;
mod isolation;
mod leases;
mod official_client;
mod ops;
mod policies;
mod ratelimit;
mod requests;
mod roles;
mod rotation;
mod seal;
mod sessions;
mod shared;
mod tenants;
mod tokens;
mod unseal_script;
mod users;
mod vault_standin;
