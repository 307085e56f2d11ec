//! What the app tests and the browser tests share (each suite includes this module by
//! `#[path]`): `app` starts keyhold as production does, `client` drives it over HTTP like a
//! browser, `fixtures` builds the worlds tests start from (an organization, a credential, a
//! project with a data source) and reads the database, and `fakes` answers for the providers
//! and S3. Each suite uses part of it.
#![allow(dead_code)]

pub mod app;
pub mod client;
pub mod fakes;
pub mod fixtures;

pub use app::*;
pub use client::*;
pub use fixtures::*;
