//! API tokens (SPEC §11): a person's bearer tokens for `/api/v1`, each with scopes, an expiry
//! date and an optional allowlist of addresses. Only a SHA-256 of a token is stored (it carries
//! 256 random bits, so a fast hash is enough), with its first characters to recognise it by. A
//! token acts as its person: the API checks the person's role and organizations as the pages
//! do, and the token's scope on top; a disabled person's tokens answer nothing.

pub mod model;
pub mod routes;
pub mod service;

use std::net::IpAddr;

use ipnet::IpNet;

/// What a token may be used for: one area, reading or changing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiScope {
    CredentialsRead,
    CredentialsWrite,
    ProjectsRead,
    ProjectsWrite,
    BackupsRead,
    BackupsWrite,
    AuditRead,
}

impl ApiScope {
    /// Every scope, in the order forms offer them.
    pub const ALL: [ApiScope; 7] = [
        ApiScope::CredentialsRead,
        ApiScope::CredentialsWrite,
        ApiScope::ProjectsRead,
        ApiScope::ProjectsWrite,
        ApiScope::BackupsRead,
        ApiScope::BackupsWrite,
        ApiScope::AuditRead,
    ];

    /// The stored and submitted form, e.g. `credentials:read`.
    pub fn key(self) -> &'static str {
        match self {
            ApiScope::CredentialsRead => "credentials:read",
            ApiScope::CredentialsWrite => "credentials:write",
            ApiScope::ProjectsRead => "projects:read",
            ApiScope::ProjectsWrite => "projects:write",
            ApiScope::BackupsRead => "backups:read",
            ApiScope::BackupsWrite => "backups:write",
            ApiScope::AuditRead => "audit:read",
        }
    }

    /// What it allows, in words.
    pub fn description(self) -> &'static str {
        match self {
            ApiScope::CredentialsRead => "list and show credentials (never their secrets)",
            ApiScope::CredentialsWrite => "add, edit, verify, lock, unlock and delete credentials",
            ApiScope::ProjectsRead => "list and show projects",
            ApiScope::ProjectsWrite => "create projects, switch their backup on and off",
            ApiScope::BackupsRead => "list policies, backups and restores",
            ApiScope::BackupsWrite => "policies, backup now, restore, drills, delete backups",
            ApiScope::AuditRead => "read the audit log",
        }
    }

    /// Whether it only reads (the only scopes a User's token may carry).
    pub fn reads_only(self) -> bool {
        self.key().ends_with(":read")
    }

    pub fn parse(text: &str) -> Option<ApiScope> {
        ApiScope::ALL.into_iter().find(|scope| scope.key() == text)
    }
}

/// A new token: `kh_` and 32 random bytes (URL-safe base64), shown once.
pub fn generate() -> String {
    format!("kh_{}", crate::crypto::random_token())
}

/// The part of a token lists show: `kh_` and its first 8 random characters.
pub fn prefix_of(token: &str) -> String {
    token.chars().take(11).collect()
}

/// An allowlist entry: an address (a network of one) or a CIDR network, normalised.
pub fn parse_network(text: &str) -> Option<IpNet> {
    let text = text.trim();
    text.parse::<IpNet>()
        .map(|net| net.trunc())
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .ok()
}

/// Whether `client` may use a token with this allowlist (an empty list allows every address).
pub fn address_allowed(allowed: &[String], client: &str) -> bool {
    if allowed.is_empty() {
        return true;
    }
    let Ok(client) = client.parse::<IpAddr>() else {
        return false;
    };
    let client = match client {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(client, IpAddr::V4),
        v4 => v4,
    };
    allowed
        .iter()
        .filter_map(|entry| parse_network(entry))
        .any(|net| net.contains(&client))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_carries_32_random_bytes_and_shows_only_its_prefix() {
        let token = generate();
        assert!(token.starts_with("kh_"));
        assert_eq!(token.len(), 3 + 43);
        assert_ne!(token, generate());
        assert_eq!(prefix_of(&token).len(), 11);
        assert!(token.starts_with(&prefix_of(&token)));
    }

    #[test]
    fn the_allowlist_takes_addresses_and_networks() {
        let allowed = vec!["192.0.2.7".to_string(), "10.1.0.0/16".to_string()];
        assert!(address_allowed(&allowed, "192.0.2.7"));
        assert!(address_allowed(&allowed, "10.1.200.3"));
        assert!(address_allowed(&allowed, "::ffff:10.1.0.9"));
        assert!(!address_allowed(&allowed, "192.0.2.8"));
        assert!(!address_allowed(&allowed, "unknown"));
        assert!(address_allowed(&[], "203.0.113.1"));
        assert_eq!(
            parse_network("10.1.2.3/16").unwrap().to_string(),
            "10.1.0.0/16"
        );
        assert!(parse_network("10.1.2.300").is_none());
    }
}
