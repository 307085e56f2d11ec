//! The guarded outbound HTTP client that credential checks, S3 storage and data-source checks
//! share: short timeouts, no redirects, and no connections to link-local or cloud metadata
//! addresses (checked on the URL's literal address and again on every address DNS returns, so
//! a name cannot rebind to a forbidden address). `Outbound::new` takes the values of
//! `KEYHOLD_OUTBOUND_TIMEOUT_SECONDS` and `KEYHOLD_OUTBOUND_ALLOW_PRIVATE`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// The shared client and the rules it connects by.
#[derive(Clone)]
pub struct Outbound {
    pub client: reqwest::Client,
    pub allow_private: bool,
    pub timeout: Duration,
}

impl Outbound {
    pub fn new(timeout: Duration, allow_private: bool) -> Outbound {
        Outbound {
            client: builder(timeout, allow_private)
                .build()
                .expect("an HTTP client with default TLS builds"),
            allow_private,
            timeout,
        }
    }

    /// A client that also trusts `root` (PEM) or, when `insecure`, any certificate (for a
    /// kubeconfig that asks for it).
    pub fn client_with_tls(
        &self,
        root: Option<&[u8]>,
        insecure: bool,
    ) -> Result<reqwest::Client, String> {
        let mut builder = builder(self.timeout, self.allow_private);
        if let Some(pem) = root {
            let certificate = reqwest::Certificate::from_pem(pem)
                .map_err(|_| "certificate-authority-data is not a PEM certificate".to_string())?;
            builder = builder.add_root_certificate(certificate);
        }
        if insecure {
            builder = builder.danger_accept_invalid_certs(true);
        }
        builder
            .build()
            .map_err(|error| format!("cannot build an HTTP client: {error}"))
    }

    /// Refuses URLs that are not http(s), and hosts that are (or resolve to) forbidden addresses.
    pub async fn check_target(&self, url: &url::Url) -> Result<(), String> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("{url} is not an http or https address"));
        }
        let port = url.port_or_known_default().unwrap_or(443);
        self.check_host(url, port, &origin(url)).await
    }

    /// Refuses a URL of any scheme (a database URL, say) whose host is, or resolves to, a
    /// forbidden address; `label` names it in messages.
    pub async fn check_host(&self, url: &url::Url, port: u16, label: &str) -> Result<(), String> {
        self.resolve(url, port, label).await.map(|_| ())
    }

    /// The addresses of a URL's host, refused if any of them is forbidden.
    pub async fn resolve(
        &self,
        url: &url::Url,
        port: u16,
        label: &str,
    ) -> Result<Vec<IpAddr>, String> {
        let host = url.host().ok_or_else(|| format!("{label} has no host"))?;
        let addresses: Vec<IpAddr> = match host {
            url::Host::Ipv4(ip) => vec![IpAddr::V4(ip)],
            url::Host::Ipv6(ip) => vec![IpAddr::V6(ip)],
            url::Host::Domain(name) => {
                let name = name.trim_start_matches('[').trim_end_matches(']');
                match name.parse::<IpAddr>() {
                    Ok(ip) => vec![ip],
                    Err(_) => {
                        tokio::time::timeout(self.timeout, tokio::net::lookup_host((name, port)))
                            .await
                            .map_err(|_| format!("could not reach {label}: name lookup timed out"))?
                            .map_err(|error| format!("could not reach {label}: {error}"))?
                            .map(|address| address.ip())
                            .collect()
                    }
                }
            }
        };
        match addresses
            .iter()
            .find(|ip| forbidden(**ip, self.allow_private))
        {
            Some(ip) => Err(format!(
                "{label} resolves to {ip}, an address keyhold does not connect to"
            )),
            None => Ok(addresses),
        }
    }
}

fn builder(timeout: Duration, allow_private: bool) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(Arc::new(GuardedResolver { allow_private }))
        .user_agent(concat!("keyhold/", env!("CARGO_PKG_VERSION")))
}

/// `scheme://host:port` of a URL, for messages.
pub fn origin(url: &url::Url) -> String {
    url.origin().ascii_serialization()
}

/// A short reason for a failed connection, without the request's URL (it may hold a key).
pub fn reason(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return "timed out".into();
    }
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(error);
    let mut deepest = None;
    while let Some(cause) = source {
        deepest = Some(cause.to_string());
        source = cause.source();
    }
    deepest.unwrap_or_else(|| "connection failed".into())
}

/// Addresses no verification may reach: link-local (cloud metadata lives there), the known
/// metadata addresses, "this network", broadcast and multicast; private and loopback ranges too
/// unless allowed (on-premises S3 is common, so they are allowed by default).
pub fn forbidden(ip: IpAddr, allow_private: bool) -> bool {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4, allow_private),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return forbidden_v4(v4, allow_private);
            }
            let segments = v6.segments();
            // IPv4 inside IPv6: IPv4-compatible (::a.b.c.d), NAT64 (64:ff9b::/96) and 6to4
            // (2002::/16) reach the IPv4 address they carry.
            let embedded = |high: u16, low: u16| {
                Ipv4Addr::new((high >> 8) as u8, high as u8, (low >> 8) as u8, low as u8)
            };
            let compatible = segments[..6] == [0; 6] && !v6.is_loopback() && !v6.is_unspecified();
            let nat64 = segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0];
            if compatible || nat64 {
                return forbidden_v4(embedded(segments[6], segments[7]), allow_private);
            }
            if segments[0] == 0x2002
                && forbidden_v4(embedded(segments[1], segments[2]), allow_private)
            {
                return true;
            }
            let link_local = segments[0] & 0xffc0 == 0xfe80;
            let metadata = v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);
            let private = segments[0] & 0xfe00 == 0xfc00 || v6.is_loopback();
            link_local
                || metadata
                || v6.is_unspecified()
                || v6.is_multicast()
                || (!allow_private && private)
        }
    }
}

fn forbidden_v4(ip: Ipv4Addr, allow_private: bool) -> bool {
    let [a, b, ..] = ip.octets();
    let this_network = a == 0;
    let alibaba_metadata = ip == Ipv4Addr::new(100, 100, 100, 200);
    let private = ip.is_private() || ip.is_loopback() || (a == 100 && (64..128).contains(&b));
    ip.is_link_local()
        || this_network
        || alibaba_metadata
        || ip.is_broadcast()
        || ip.is_multicast()
        || (!allow_private && private)
}

/// DNS resolution that drops forbidden addresses (and fails when none is left).
struct GuardedResolver {
    allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let found = tokio::net::lookup_host((name.as_str(), 0)).await?;
            let allowed: Vec<SocketAddr> = found
                .filter(|address| !forbidden(address.ip(), allow_private))
                .collect();
            if allowed.is_empty() {
                return Err(format!(
                    "{} resolves only to addresses keyhold does not connect to",
                    name.as_str()
                )
                .into());
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(url: &str) -> bool {
        let outbound = Outbound::new(Duration::from_secs(1), true);
        let url = url::Url::parse(url).unwrap();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(outbound.check_target(&url))
            .is_err()
    }

    #[test]
    fn metadata_and_link_local_addresses_are_refused_in_every_spelling() {
        for url in [
            "http://169.254.169.254/latest/meta-data/",
            "http://2852039166/",
            "http://0xA9FEA9FE/",
            "http://0251.0376.0251.0376/",
            "http://[::ffff:169.254.169.254]/",
            "http://[fd00:ec2::254]/",
            "http://[fe80::1]/",
            "http://100.100.100.200/",
            "http://0.0.0.0/",
            "http://[::a9fe:a9fe]/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[2002:a9fe:a9fe::1]/",
        ] {
            assert!(refused(url), "{url} must be refused");
        }
    }

    #[test]
    fn loopback_and_private_addresses_are_allowed_by_default() {
        assert!(!refused("http://127.0.0.1:9000/"));
        assert!(!refused("http://10.1.2.3/"));
        assert!(forbidden("10.1.2.3".parse().unwrap(), false));
        assert!(refused("ftp://127.0.0.1/"), "only http and https");
    }
}
