//! Pure, synchronous key handling: no I/O, no axum, no sqlx. Everything secret here is wiped
//! from memory on drop and has no `Debug` output.

pub mod blind;
pub mod envelope;
pub mod keyring;
pub mod labels;
pub mod shamir;
pub mod unseal;
