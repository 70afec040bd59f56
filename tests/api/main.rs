//! Integration tests against a real PostgreSQL (one binary, so it links once).

mod audit;
mod custody;
mod demo;
mod helpers;
mod isolation;
mod leases;
mod roles;
mod rotation;
mod official_client;
mod policies;
mod ops;
mod seal;
mod tenants;
mod unseal_script;
mod users;
mod vault_standin;
