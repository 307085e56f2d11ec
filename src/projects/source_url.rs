//! A data source URL as the project's edit form shows and takes it. The password is a secret:
//! the form shows the URL without it (nor a `password` query parameter), and a separate field
//! replaces it; left blank, the stored one is kept, but only for the same host, port and user:
//! a kept password is never sent to another server unless typed again.

use percent_encoding::percent_decode_str;
use url::Url;

/// The URL's parts that are secret: the password of its user, and any `password` parameter.
struct Secrets {
    password: Option<String>,
    parameters: Vec<String>,
}

impl Secrets {
    fn is_empty(&self) -> bool {
        self.password.is_none() && self.parameters.is_empty()
    }
}

/// Splits the secrets off a URL.
fn split(mut url: Url) -> (Url, Secrets) {
    let password = url
        .password()
        .map(|encoded| percent_decode_str(encoded).decode_utf8_lossy().into_owned());
    let _ = url.set_password(None);
    let (mut kept, mut parameters) = (Vec::new(), Vec::new());
    for (key, value) in url.query_pairs() {
        if key == "password" {
            parameters.push(value.into_owned());
        } else {
            kept.push((key.into_owned(), value.into_owned()));
        }
    }
    if kept.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut().clear().extend_pairs(kept);
    }
    (
        url,
        Secrets {
            password,
            parameters,
        },
    )
}

/// Puts secrets back into a URL without any.
fn join(mut url: Url, secrets: &Secrets) -> Url {
    let _ = url.set_password(secrets.password.as_deref());
    if !secrets.parameters.is_empty() {
        let mut pairs = url.query_pairs_mut();
        for value in &secrets.parameters {
            pairs.append_pair("password", value);
        }
    }
    url
}

fn parse(text: &str) -> Result<Url, String> {
    Url::parse(text.trim()).map_err(|_| {
        "Enter a URL like postgres://user@host:5432/database (the password has its own field)."
            .to_string()
    })
}

/// The same server and user: a kept password may go there.
fn same_server(a: &Url, b: &Url) -> bool {
    a.host_str() == b.host_str()
        && a.port().unwrap_or(5432) == b.port().unwrap_or(5432)
        && a.username() == b.username()
}

/// The stored URL as the form shows it: without its password; and whether it has one.
pub fn shown(stored: &str) -> (String, bool) {
    match Url::parse(stored) {
        Ok(url) => {
            let (url, secrets) = split(url);
            (url.to_string(), !secrets.is_empty())
        }
        Err(_) => (String::new(), true),
    }
}

/// The URL a new project's form asks for: the typed URL, with `password` (when typed) as its
/// user's password in place of any in the URL. A URL that does not parse is answered as typed,
/// for the data source's own check to refuse in its words.
pub fn with_password(typed: &str, password: &str) -> String {
    if password.is_empty() {
        return typed.to_string();
    }
    match parse(typed) {
        Ok(url) => {
            let (url, _) = split(url);
            join(
                url,
                &Secrets {
                    password: Some(password.to_string()),
                    parameters: Vec::new(),
                },
            )
            .to_string()
        }
        Err(_) => typed.to_string(),
    }
}

/// The URL an edit asks for, from the stored one, the typed URL and the typed password:
/// `None` when it is the stored one. A password typed in the URL itself is taken as typed.
pub fn edited(stored: &str, typed: &str, password: &str) -> Result<Option<String>, String> {
    let typed = parse(typed)?;
    let result = if !password.is_empty() {
        let (url, _) = split(typed);
        join(
            url,
            &Secrets {
                password: Some(password.to_string()),
                parameters: Vec::new(),
            },
        )
    } else if typed.password().is_some() || typed.query_pairs().any(|(key, _)| key == "password") {
        typed
    } else {
        match Url::parse(stored) {
            Ok(stored) => {
                let (stored_bare, secrets) = split(stored);
                if secrets.is_empty() {
                    typed
                } else if same_server(&typed, &stored_bare) {
                    join(typed, &secrets)
                } else {
                    return Err(
                        "Enter the password again: the host, port or user changed, and \
                                keyhold sends a kept password only where it was given for."
                            .into(),
                    );
                }
            }
            Err(_) => typed,
        }
    };
    let unchanged = Url::parse(stored).is_ok_and(|stored| same_url(&stored, &result));
    Ok((!unchanged).then(|| result.to_string()))
}

/// Two URLs that name the same thing: the same parts with the user and password decoded, and
/// the query's pairs in any order (putting a kept password back may reorder or re-encode them).
fn same_url(a: &Url, b: &Url) -> bool {
    let decoded = |text: &str| percent_decode_str(text).decode_utf8_lossy().into_owned();
    let parts = |url: &Url| {
        let mut pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(key, value)| (key.into_owned(), value.into_owned()))
            .collect();
        pairs.sort();
        (
            url.scheme().to_string(),
            decoded(url.username()),
            url.password().map(decoded),
            url.host_str().map(str::to_string),
            url.port(),
            url.path().to_string(),
            pairs,
            url.fragment().map(str::to_string),
        )
    };
    parts(a) == parts(b)
}

#[cfg(test)]
mod tests {
    use super::{edited, shown, with_password};

    #[test]
    fn a_new_form_puts_its_password_into_the_url() {
        assert_eq!(
            with_password("postgres://app@db.example:5432/shop", "s3cr@t"),
            "postgres://app:s3cr%40t@db.example:5432/shop"
        );
        assert_eq!(
            with_password("postgres://app:old@db.example/shop?password=x", "new"),
            "postgres://app:new@db.example/shop"
        );
        assert_eq!(
            with_password("postgres://app:kept@db.example/shop", ""),
            "postgres://app:kept@db.example/shop"
        );
        assert_eq!(with_password("not a url", "pw"), "not a url");
    }

    const STORED: &str = "postgres://app:s3cr%40t@db.example:5432/shop?sslmode=require";

    #[test]
    fn the_form_shows_no_password() {
        assert_eq!(
            shown(STORED),
            (
                "postgres://app@db.example:5432/shop?sslmode=require".to_string(),
                true
            )
        );
        let (url, has) = shown("postgres://db.example/shop?password=x&sslmode=require");
        assert_eq!(
            (url.as_str(), has),
            ("postgres://db.example/shop?sslmode=require", true)
        );
    }

    #[test]
    fn a_blank_password_keeps_the_stored_one_for_the_same_server_only() {
        let (url, _) = shown(STORED);
        assert_eq!(edited(STORED, &url, ""), Ok(None));
        assert_eq!(
            edited(
                STORED,
                "postgres://app@db.example/other?sslmode=require",
                ""
            ),
            Ok(Some(
                "postgres://app:s3cr%40t@db.example/other?sslmode=require".to_string()
            ))
        );
        for elsewhere in [
            "postgres://app@evil.example:5432/shop",
            "postgres://app@db.example:6432/shop",
            "postgres://root@db.example:5432/shop",
        ] {
            assert!(edited(STORED, elsewhere, "").is_err(), "{elsewhere}");
        }
    }

    #[test]
    fn a_stored_url_kept_as_it_was_is_not_a_change_whatever_its_order_or_encoding() {
        for stored in [
            "postgres://app@db.example:5432/shop?password=s3cret&sslmode=require",
            "postgres://app:p%2Ass@db.example/shop?sslmode=require",
            "postgres://app:p%2Ass@db.example/shop?application_name=a%20b&password=x%26y",
        ] {
            let (url, _) = shown(stored);
            assert_eq!(edited(stored, &url, ""), Ok(None), "{stored}");
        }
        // A real change is still one.
        assert!(
            edited(
                "postgres://app:pw@db.example/shop?sslmode=require",
                "postgres://app@db.example/shop?sslmode=disable",
                ""
            )
            .unwrap()
            .is_some()
        );
    }

    #[test]
    fn a_typed_password_replaces_the_stored_one() {
        assert_eq!(
            edited(STORED, "postgres://app@evil.example/shop", "n3w"),
            Ok(Some("postgres://app:n3w@evil.example/shop".to_string()))
        );
        assert_eq!(
            edited(STORED, "postgres://app:inline@db.example/shop", ""),
            Ok(Some("postgres://app:inline@db.example/shop".to_string()))
        );
        assert!(edited(STORED, "not a url", "").is_err());
    }
}
