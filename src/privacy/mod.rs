//! Privacy machinery that runs behind the API: the retention sweeper, which deletes whatever
//! has expired (users, sessions, tokens, shared records, bulk unlocks, old leases).

pub mod sweeper;
