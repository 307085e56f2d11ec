//! The fields of a provider's form: how each is entered and checked, the values a form holds,
//! and the fields several providers share (continent, zones, the networks of hypervisors).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use crate::web::form::FieldErrors;

/// How a field is entered and checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    Text,
    Url,
    Number {
        min: i64,
        max: i64,
    },
    Select(&'static [&'static str]),
    Checkbox,
    /// Several lines (a pasted JSON key, a kubeconfig).
    TextArea,
    /// One entry per line.
    List,
    Ipv4,
    Date,
}

/// One form field of a provider.
#[derive(Clone, Copy, Debug)]
pub struct Field {
    pub key: &'static str,
    pub label: &'static str,
    pub help: &'static str,
    pub input: Input,
    pub secret: bool,
    pub required: bool,
    /// Required only under a condition its help names (a provider's rule checks it): the
    /// form says neither "(optional)" nor nothing, but the condition.
    pub conditional: bool,
    pub editable: bool,
    pub default: &'static str,
    /// When required only under a condition: the checkbox whose tick makes the field unused
    /// (the form hides and disables it with JavaScript; the provider's rule checks it).
    pub unless: &'static str,
    /// The labels this field has in a block of credentials people paste (Storj shows "Access
    /// Key ID: …"), lower case; see `credentials::paste`.
    pub pasted_as: &'static [&'static str],
}

/// A required field, fixed after creation.
pub const fn field(key: &'static str, label: &'static str, input: Input) -> Field {
    Field {
        key,
        label,
        help: "",
        input,
        secret: false,
        required: true,
        conditional: false,
        editable: false,
        default: "",
        unless: "",
        pasted_as: &[],
    }
}

pub const fn text(key: &'static str, label: &'static str) -> Field {
    field(key, label, Input::Text)
}

pub const fn url(key: &'static str, label: &'static str) -> Field {
    field(key, label, Input::Url).help("An http:// or https:// address.")
}

/// A write-only field, sealed before it is stored.
pub const fn secret(key: &'static str, label: &'static str) -> Field {
    let mut field = field(key, label, Input::Text);
    field.secret = true;
    field
}

impl Field {
    pub const fn help(mut self, help: &'static str) -> Field {
        self.help = help;
        self
    }
    pub const fn optional(mut self) -> Field {
        self.required = false;
        self
    }
    /// Required unless the checkbox `flag` is ticked, and unused then (the help says so; the
    /// provider's rule checks it).
    pub const fn required_unless(mut self, flag: &'static str, condition: &'static str) -> Field {
        self.required = false;
        self.conditional = true;
        self.unless = flag;
        self.help = condition;
        self
    }
    /// The labels this field has in a pasted block of credentials (lower case).
    pub const fn pasted_as(mut self, labels: &'static [&'static str]) -> Field {
        self.pasted_as = labels;
        self
    }
    pub const fn editable(mut self) -> Field {
        self.editable = true;
        self
    }
    pub const fn default(mut self, default: &'static str) -> Field {
        self.default = default;
        self
    }
    pub const fn area(mut self) -> Field {
        self.input = Input::TextArea;
        self
    }

    /// The value shown in a form: secrets never, otherwise the submitted or stored value.
    pub fn shown<'a>(&self, values: &'a Values) -> &'a str {
        if self.secret {
            ""
        } else {
            values.get(self.key)
        }
    }

    /// The options of a select field.
    pub fn options(&self) -> &'static [&'static str] {
        match self.input {
            Input::Select(options) => options,
            _ => &[],
        }
    }

    pub fn is_checkbox(&self) -> bool {
        self.input == Input::Checkbox
    }

    pub fn is_textarea(&self) -> bool {
        matches!(self.input, Input::TextArea | Input::List)
    }

    /// Secret text that usually comes as a file (a JSON key, a kubeconfig).
    pub fn accepts_file(&self) -> bool {
        self.secret && self.input == Input::TextArea
    }

    pub fn is_select(&self) -> bool {
        matches!(self.input, Input::Select(_))
    }

    /// The `type` of an `<input>` for this field.
    pub fn html_type(&self) -> &'static str {
        match self.input {
            _ if self.secret => "password",
            Input::Url => "url",
            Input::Number { .. } => "number",
            Input::Date => "date",
            _ => "text",
        }
    }
}

/// `head` then `tail` as one list of `N` fields, for a provider's static fields (`N` must be
/// the sum of their lengths: a wrong one fails the build).
pub const fn joined<const A: usize, const B: usize, const N: usize>(
    head: [Field; A],
    tail: [Field; B],
) -> [Field; N] {
    assert!(A > 0 && A + B == N, "N is the length of both lists");
    let mut all = [head[0]; N];
    let mut i = 0;
    while i < N {
        all[i] = if i < A { head[i] } else { tail[i - A] };
        i += 1;
    }
    all
}

/// Submitted or stored values by field key (trimmed).
#[derive(Clone, Debug, Default)]
pub struct Values(BTreeMap<String, String>);

impl Values {
    pub fn new(map: BTreeMap<String, String>) -> Values {
        Values(map)
    }

    pub fn get(&self, key: &str) -> &str {
        self.0.get(key).map_or("", |value| value.trim())
    }

    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        self.0.insert(key.to_string(), value.into());
    }

    pub fn remove(&mut self, key: &str) {
        self.0.remove(key);
    }

    /// A checkbox's value.
    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), "on" | "true" | "1" | "yes")
    }

    /// The entries of a one-per-line field.
    pub fn list(&self, key: &str) -> Vec<String> {
        self.get(key)
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .map(str::to_string)
            .collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter()
    }
}

/// Checks one field's value by its input kind; `editing` skips blank secrets (unchanged).
pub fn check_field(field: &Field, values: &Values, editing: bool) -> Result<(), String> {
    let value = values.get(field.key);
    if value.is_empty() {
        if field.required && !(editing && field.secret) && field.input != Input::Checkbox {
            return Err("Required.".into());
        }
        return Ok(());
    }
    if value.len() > 65_536 {
        return Err("Too long.".into());
    }
    match field.input {
        Input::Url => check_url(value),
        Input::Number { min, max } => match value.parse::<i64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(()),
            _ => Err(format!("Enter a number from {min} to {max}.")),
        },
        Input::Select(options) => {
            if options.contains(&value) {
                Ok(())
            } else {
                Err("Choose one of the options.".into())
            }
        }
        Input::Ipv4 => value
            .parse::<Ipv4Addr>()
            .map(|_| ())
            .map_err(|_| "Enter an IPv4 address like 192.168.10.1.".into()),
        Input::Date => chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d")
            .map(|_| ())
            .map_err(|_| "Enter a date as YYYY-MM-DD.".into()),
        Input::Text if !field.secret && value.contains(['\n', '\r']) => {
            Err("Use a single line.".into())
        }
        Input::Text | Input::TextArea | Input::List | Input::Checkbox => Ok(()),
    }
}

/// An http(s) URL with a host.
pub fn check_url(value: &str) -> Result<(), String> {
    match url::Url::parse(value) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => Ok(()),
        _ => Err("Enter an http:// or https:// URL.".into()),
    }
}

/// The continents a cloud credential can be placed on.
pub const CONTINENTS: &[&str] = &[
    "Africa",
    "Asia",
    "Europe",
    "North America",
    "Oceania",
    "South America",
];

pub const fn continent() -> Field {
    field("continent", "Continent", Input::Select(CONTINENTS)).default("Europe")
}

pub const fn az_count() -> Field {
    field(
        "az_count",
        "Availability zones",
        Input::Number { min: 1, max: 3 },
    )
    .help("How many zones to spread over, 1 to 3.")
    .default("1")
}

/// The public and private network of on-premises hypervisors (Proxmox, vSphere); checked
/// together by `network_rules`.
pub const NETWORKS: [Field; 12] = [
    field("public_network", "Public network address", Input::Ipv4)
        .help("IPv4 network address, e.g. 192.168.10.0."),
    field(
        "public_netmask",
        "Public network mask",
        Input::Number { min: 1, max: 32 },
    ),
    field("public_gateway", "Public gateway", Input::Ipv4),
    field("public_range_begin", "Public range begin", Input::Ipv4)
        .help("First address keyhold may allocate; inside the network."),
    field("public_range_end", "Public range end", Input::Ipv4),
    text("public_bridge", "Public bridge").default("vmbr0"),
    field("private_network", "Private network address", Input::Ipv4),
    field(
        "private_netmask",
        "Private network mask",
        Input::Number { min: 1, max: 32 },
    ),
    field("private_gateway", "Private gateway", Input::Ipv4),
    field("private_range_begin", "Private range begin", Input::Ipv4),
    field("private_range_end", "Private range end", Input::Ipv4),
    text("private_bridge", "Private bridge").default("vmbr1"),
];

/// Gateway and allocation range must lie inside each of the `NETWORKS`, and the range run
/// forwards.
pub fn network_rules(values: &Values, errors: &mut FieldErrors) {
    for side in ["public", "private"] {
        let address = values.get(&format!("{side}_network")).parse::<Ipv4Addr>();
        let mask = values.get(&format!("{side}_netmask")).parse::<u32>();
        let (Ok(address), Ok(mask @ 1..=32)) = (address, mask) else {
            continue;
        };
        let bits = u32::MAX.checked_shl(32 - mask).unwrap_or(0);
        let network = u32::from(address) & bits;
        let inside = |ip: Ipv4Addr| u32::from(ip) & bits == network;
        let mut addresses = Vec::new();
        for part in ["gateway", "range_begin", "range_end"] {
            let key = format!("{side}_{part}");
            if let Ok(ip) = values.get(&key).parse::<Ipv4Addr>() {
                if !inside(ip) {
                    errors.add(
                        network_key(&key),
                        format!("Must be inside {}/{mask}.", Ipv4Addr::from(network)),
                    );
                }
                addresses.push(Some(ip));
            } else {
                addresses.push(None);
            }
        }
        if let (Some(begin), Some(end)) = (addresses[1], addresses[2])
            && u32::from(begin) > u32::from(end)
        {
            errors.add(
                network_key(&format!("{side}_range_end")),
                "Must not come before the range begin.",
            );
        }
    }
}

/// The `&'static str` of a network field's key built at run time.
fn network_key(key: &str) -> &'static str {
    NETWORKS
        .iter()
        .map(|field| field.key)
        .find(|known| *known == key)
        .unwrap_or("form")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&str, &str)]) -> Values {
        Values::new(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn gateways_and_ranges_must_lie_inside_the_network() {
        let mut errors = FieldErrors::default();
        network_rules(
            &values(&[
                ("public_network", "10.0.0.0"),
                ("public_netmask", "24"),
                ("public_gateway", "10.0.1.1"),
                ("public_range_begin", "10.0.0.50"),
                ("public_range_end", "10.0.0.10"),
            ]),
            &mut errors,
        );
        assert_eq!(
            errors.get("public_gateway"),
            Some("Must be inside 10.0.0.0/24.")
        );
        assert!(errors.get("public_range_end").is_some());
        assert!(errors.get("public_range_begin").is_none());
    }

    #[test]
    fn field_checks_follow_the_input_kind() {
        let az = az_count();
        assert!(check_field(&az, &values(&[("az_count", "4")]), false).is_err());
        assert!(check_field(&az, &values(&[("az_count", "3")]), false).is_ok());
        let endpoint = url("endpoint", "Endpoint");
        assert!(check_field(&endpoint, &values(&[("endpoint", "ftp://x")]), false).is_err());
        let key = secret("secret_access_key", "Secret");
        assert!(
            check_field(&key, &values(&[]), true).is_ok(),
            "blank secret = unchanged"
        );
        assert!(check_field(&key, &values(&[]), false).is_err());
    }

    #[test]
    fn joined_lists_keep_their_order() {
        let all: [Field; 14] = joined([text("a", "A"), text("b", "B")], NETWORKS);
        let keys: Vec<_> = all.iter().map(|field| field.key).collect();
        assert_eq!(keys[..3], ["a", "b", "public_network"]);
        assert_eq!(keys[13], "private_bridge");
    }
}
