//! Credentials of every kind: the registry of kinds and providers (`provider`, one file per
//! provider), their form fields (`field`), the model (with sealed secrets), the search index,
//! verification, the use cases (`service`) and the pages of the five tabs (`routes`).

pub mod error;
pub mod field;
pub mod model;
pub mod paste;
pub mod provider;
pub mod routes;
pub mod search_index;
pub mod service;
pub mod verify;
