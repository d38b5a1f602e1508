//! Cluster-wide state the API core owns: what must be consistent across shards (and, later,
//! across nodes). Each concept sits behind a trait so a multi-node backend (e.g. Redis) can
//! replace today's in-memory implementation without touching the API core.

pub mod presence;
pub mod subscriptions;
pub mod users;

pub use presence::{JoinError, Joined, Left, LocalPresence, Presence};
pub use subscriptions::{LocalSubscriptions, Subscriptions};
pub use users::{LocalUsers, Users, Watcher};
