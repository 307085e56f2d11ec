//! Credentials of every kind: the provider registry, the model (with sealed secrets), the
//! verification of each protocol, and the pages of the five tabs.

pub mod error;
pub mod field;
pub mod model;
pub mod provider;
pub mod routes;
pub mod search_index;
pub mod service;
pub mod verify;
