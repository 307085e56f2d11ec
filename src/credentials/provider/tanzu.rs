//! Tanzu (added by Partners only): a user and password, checked by opening a session
//! (`POST /api/session`) on the configured port. The port has one source: a URL that names
//! a port other than the Port field's is refused beside Port, never silently overridden
//! (SPEC §3 keeps both fields, so neither can simply go).

use crate::credentials::field::{Input, Values, continent, field, secret, text, url};
use crate::credentials::provider::{Kind, Provider};
use crate::credentials::verify::{self, Network, Verification};
use crate::web::form::FieldErrors;

pub static PROVIDER: Provider = Provider {
    kind: Kind::Cloud,
    key: "tanzu",
    label: "Tanzu",
    partner_only_add: true,
    name_editable: true,
    fields: &[
        url("url", "Tanzu URL"),
        field("port", "Port", Input::Number { min: 1, max: 65535 }).default("443"),
        text("username", "Username"),
        secret("password", "Password").editable(),
        text("namespace", "Namespace"),
        text("volume_type", "Volume type"),
        continent(),
    ],
    columns: &[("URL", "url"), ("Namespace", "namespace")],
    derived: &[],
    rules,
    verify: check,
};

/// The port written in `url` (`https://host:8443/…`), if one is; the `url` crate forgets a
/// scheme's default port, so the text is read.
fn written_port(url: &str) -> Option<u16> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit('@').next()?;
    let (host, port) = host_port.rsplit_once(':')?;
    if host.starts_with('[') && !host.ends_with(']') {
        return None;
    }
    port.parse().ok()
}

fn rules(values: &Values, errors: &mut FieldErrors) {
    let (Some(written), Ok(port)) = (
        written_port(values.get("url")),
        values.get("port").parse::<u16>(),
    ) else {
        return;
    };
    if written != port {
        errors.add(
            "port",
            format!(
                "The URL says port {written} and Port says {port}: make them the same, or take \
                 the port out of the URL."
            ),
        );
    }
}

fn check<'a>(network: Network<'a>, values: &'a Values) -> Verification<'a> {
    Box::pin(async move {
        let Ok(mut base) = url::Url::parse(values.get("url")) else {
            return verify::invalid_url();
        };
        if let Ok(port) = values.get("port").parse::<u16>() {
            let _ = base.set_port(Some(port));
        }
        let Some(url) = verify::join(base.as_str(), "api/session") else {
            return verify::invalid_url();
        };
        verify::http(network.outbound, &url, "Tanzu", |client| {
            client
                .post(url.clone())
                .basic_auth(values.get("username"), Some(values.get("password")))
        })
        .await
    })
}

#[cfg(test)]
mod tests {
    use super::{rules, written_port};
    use crate::credentials::field::Values;
    use crate::web::form::FieldErrors;

    #[test]
    fn the_port_has_one_source() {
        assert_eq!(written_port("https://tanzu.example:8443/x"), Some(8443));
        assert_eq!(written_port("https://tanzu.example:443"), Some(443));
        assert_eq!(written_port("https://admin:pw@tanzu.example/"), None);
        assert_eq!(written_port("https://[::1]/"), None);
        assert_eq!(written_port("https://[::1]:9443/"), Some(9443));
        for (url, port, refused) in [
            ("https://tanzu.example:8443", "443", true),
            ("https://tanzu.example:8443", "8443", false),
            ("https://tanzu.example", "8443", false),
        ] {
            let mut values = Values::default();
            values.set("url", url);
            values.set("port", port);
            let mut errors = FieldErrors::default();
            rules(&values, &mut errors);
            assert_eq!(errors.get("port").is_some(), refused, "{url} {port}");
        }
    }
}
