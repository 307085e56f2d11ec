//! AWS Signature Version 4 for the one call keyhold makes to AWS: STS `GetCallerIdentity`,
//! which any valid key may call and which changes nothing.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// A signed request: headers to add and the form body.
pub struct Signed {
    pub headers: Vec<(String, String)>,
    pub body: String,
}

const BODY: &str = "Action=GetCallerIdentity&Version=2011-06-15";
const CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// The `Host` header value for `url` (port only when not the scheme's default).
fn host(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    }
}

/// Signs `POST /` of `GetCallerIdentity` to `url` (region us-east-1, service sts).
pub fn get_caller_identity(
    url: &url::Url,
    access_key: &str,
    secret_key: &str,
    now: DateTime<Utc>,
) -> Signed {
    let signature = signature(url, secret_key, now, BODY);
    let amz_date = now.format("%Y%m%dT%H%M%SZ").to_string();
    let scope = format!("{}/us-east-1/sts/aws4_request", now.format("%Y%m%d"));
    Signed {
        headers: vec![
            ("content-type".into(), CONTENT_TYPE.into()),
            ("x-amz-date".into(), amz_date),
            (
                "authorization".into(),
                format!(
                    "AWS4-HMAC-SHA256 Credential={access_key}/{scope}, \
                     SignedHeaders=content-type;host;x-amz-date, Signature={signature}"
                ),
            ),
        ],
        body: BODY.into(),
    }
}

/// The hex signature of a `POST /` with `body` to `url` at `now`.
pub fn signature(url: &url::Url, secret_key: &str, now: DateTime<Utc>, body: &str) -> String {
    let amz_date = now.format("%Y%m%dT%H%M%SZ").to_string();
    let date = now.format("%Y%m%d").to_string();
    let path = if url.path().is_empty() {
        "/"
    } else {
        url.path()
    };
    let canonical = format!(
        "POST\n{path}\n\ncontent-type:{CONTENT_TYPE}\nhost:{}\nx-amz-date:{amz_date}\n\n\
         content-type;host;x-amz-date\n{}",
        host(url),
        hex::encode(Sha256::digest(body.as_bytes()))
    );
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{date}/us-east-1/sts/aws4_request\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let mut key = hmac(format!("AWS4{secret_key}").as_bytes(), &date);
    for part in ["us-east-1", "sts", "aws4_request"] {
        key = hmac(&key, part);
    }
    hex::encode(hmac(&key, &to_sign))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_is_deterministic_and_depends_on_the_secret() {
        let url = url::Url::parse("https://sts.amazonaws.com/").unwrap();
        let now = DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
            .unwrap()
            .with_timezone(&Utc);
        let a = signature(&url, "secret-a", now, BODY);
        assert_eq!(a, signature(&url, "secret-a", now, BODY));
        assert_ne!(a, signature(&url, "secret-b", now, BODY));
        assert_eq!(a.len(), 64);
        let signed = get_caller_identity(&url, "AKIDEXAMPLE", "secret-a", now);
        assert!(
            signed.headers[2]
                .1
                .contains("Credential=AKIDEXAMPLE/20260102/us-east-1/sts/aws4_request")
        );
        assert!(
            !signed
                .headers
                .iter()
                .any(|(_, value)| value.contains("secret-a"))
        );
    }
}
