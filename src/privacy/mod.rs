//! Privacy machinery that runs behind the API: the retention sweeper, which deletes whatever
//! has expired (users, sessions, tokens, shared records, bulk unlocks, old leases), and the
//! callback dispatcher, which tells a configured URL about consent withdrawals, forget-me and
//! profile changes.

pub mod callbacks;
pub mod sweeper;
pub mod webhook;
