//! Channel history over HTTP (docs/http-api.md): a page of a channel's retained events with cursors
//! ([`page`]). The streams themselves are kept by the cluster state
//! ([`crate::api::cluster::history`]), in memory or in Redis.

pub mod page;
