//! Sending one event to one channel: a signed JSON webhook, a Slack-compatible text message,
//! or a mail over SMTP (`lettre`). Every destination goes through the outbound rules (no
//! link-local or metadata addresses, no redirects, a timeout); an SMTP server is connected at
//! the address that was checked, its certificate checked against its name.

use hmac::{Hmac, Mac};
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use sha2::Sha256;

use crate::notifications::EventKind;
use crate::notifications::model::{Channel, ChannelKind, Opened, SmtpTls};
use crate::outbound::Outbound;

/// What the destination answered: its HTTP status (webhooks), and why it failed, if it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: Option<i32>,
    pub error: Option<String>,
}

impl Answer {
    fn failed(error: impl Into<String>) -> Answer {
        Answer {
            status: None,
            error: Some(error.into()),
        }
    }

    pub fn delivered(&self) -> bool {
        self.error.is_none()
    }
}

/// `sha256=<hex HMAC-SHA256 of body keyed with secret>` (the `X-Keyhold-Signature` header).
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any size");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// One event as a channel receives it.
pub struct Outgoing<'a> {
    pub kind: EventKind,
    pub delivery_key: &'a str,
    pub message: &'a str,
    pub body: &'a serde_json::Value,
}

/// Sends `event` to `channel` (its secrets `opened`).
pub async fn send(
    outbound: &Outbound,
    channel: &Channel,
    opened: &Opened,
    event: &Outgoing<'_>,
) -> Answer {
    match channel.kind {
        ChannelKind::Webhook => {
            // The delivery id inside the signed body too: a receiver that keeps the ids it
            // took (and refuses an `at` older than the retry hour) cannot be replayed to,
            // whereas the header alone could be changed by whoever replays.
            let mut body = event.body.clone();
            if let Some(fields) = body.as_object_mut() {
                fields.insert("delivery".into(), event.delivery_key.into());
            }
            let Ok(body) = serde_json::to_vec(&body) else {
                return Answer::failed("the event could not be written as JSON");
            };
            let mut request = vec![
                ("x-keyhold-event", event.kind.key().to_string()),
                ("x-keyhold-delivery", event.delivery_key.to_string()),
            ];
            if let Some(secret) = &opened.secret {
                request.push(("x-keyhold-signature", signature(secret, &body)));
            }
            post(outbound, opened.url.as_deref(), body, &request).await
        }
        ChannelKind::Slack => {
            // Slack reads `<…>` as links and mentions (`<!channel>`): names and reasons are
            // escaped as its documentation asks.
            let text = format!(
                "*keyhold* ({}): {}",
                event.kind.key(),
                slack_escaped(event.message)
            );
            let body = serde_json::json!({ "text": text }).to_string().into_bytes();
            post(outbound, opened.url.as_deref(), body, &[]).await
        }
        ChannelKind::Email => mail(outbound, channel, opened, event).await,
    }
}

async fn post(
    outbound: &Outbound,
    url: Option<&str>,
    body: Vec<u8>,
    headers: &[(&str, String)],
) -> Answer {
    let Some(url) = url.and_then(|url| url::Url::parse(url).ok()) else {
        return Answer::failed("the channel has no usable URL");
    };
    if let Err(reason) = outbound.check_target(&url).await {
        return Answer::failed(reason);
    }
    let mut request = outbound
        .client
        .post(url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    match request.send().await {
        Ok(response) => {
            let status = response.status();
            let code = Some(i32::from(status.as_u16()));
            if status.is_success() {
                Answer {
                    status: code,
                    error: None,
                }
            } else {
                let reason = status.canonical_reason().unwrap_or("refused");
                Answer {
                    status: code,
                    error: Some(format!(
                        "{} answered {reason}",
                        crate::outbound::origin(&url)
                    )),
                }
            }
        }
        Err(error) if error.is_timeout() => Answer::failed(format!(
            "{} did not answer within {} s",
            crate::outbound::origin(&url),
            outbound.timeout.as_secs()
        )),
        Err(error) => Answer::failed(format!(
            "could not reach {}: {}",
            crate::outbound::origin(&url),
            root_cause(&error)
        )),
    }
}

/// Text for Slack: `&`, `<` and `>` escaped.
fn slack_escaped(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The innermost cause of an error, which says what actually happened.
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

async fn mail(
    outbound: &Outbound,
    channel: &Channel,
    opened: &Opened,
    event: &Outgoing<'_>,
) -> Answer {
    let host = channel.smtp_host.clone().unwrap_or_default();
    let port = channel.smtp_port.unwrap_or(587) as u16;
    let Ok(target) = url::Url::parse(&format!("smtp://{host}:{port}")) else {
        return Answer::failed(format!("{host} is not a host name"));
    };
    let label = format!("SMTP server {host}:{port}");
    let address = match outbound.resolve(&target, port, &label).await {
        Ok(addresses) => match addresses.first() {
            Some(address) => *address,
            None => return Answer::failed(format!("{label} has no address")),
        },
        Err(reason) => return Answer::failed(reason),
    };
    let tls_for = |host: &str| TlsParameters::new(host.to_string());
    let tls = match channel.smtp_tls.unwrap_or(SmtpTls::StartTls) {
        SmtpTls::None => Ok(Tls::None),
        SmtpTls::StartTls => tls_for(&host).map(Tls::Required),
        SmtpTls::Tls => tls_for(&host).map(Tls::Wrapper),
    };
    let tls = match tls {
        Ok(tls) => tls,
        Err(error) => return Answer::failed(format!("TLS for {host}: {error}")),
    };
    let mut transport =
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(address.to_string())
            .port(port)
            .tls(tls)
            .timeout(Some(outbound.timeout));
    if let Some(user) = channel
        .smtp_username
        .clone()
        .filter(|user| !user.is_empty())
    {
        transport = transport.credentials(Credentials::new(
            user,
            opened.smtp_password.clone().unwrap_or_default(),
        ));
    }
    let transport = transport.build();
    let message = match letter(channel, event) {
        Ok(message) => message,
        Err(reason) => return Answer::failed(reason),
    };
    match transport.send(message).await {
        Ok(_) => Answer {
            status: None,
            error: None,
        },
        Err(error) => Answer::failed(format!("{label}: {error}")),
    }
}

/// The mail of an event: its kind in the subject, its message and details in the text.
fn letter(channel: &Channel, event: &Outgoing<'_>) -> Result<Message, String> {
    let from: Mailbox = channel
        .email_from
        .as_deref()
        .unwrap_or_default()
        .parse()
        .map_err(|_| "the From address is not an email address".to_string())?;
    let mut builder = Message::builder()
        .from(from)
        .subject(format!(
            "[keyhold] {}: {}",
            event.kind.key(),
            subject(event.message)
        ))
        .header(ContentType::TEXT_PLAIN);
    for to in channel.email_to.as_deref().unwrap_or_default().split(',') {
        let to: Mailbox = to
            .trim()
            .parse()
            .map_err(|_| format!("{} is not an email address", to.trim()))?;
        builder = builder.to(to);
    }
    let details = serde_json::to_string_pretty(event.body).unwrap_or_default();
    builder
        .body(format!(
            "{}\n\nDelivery {}\n\n{details}\n",
            event.message, event.delivery_key
        ))
        .map_err(|error| format!("the mail could not be written: {error}"))
}

/// The first line of a message, shortened for a subject.
fn subject(message: &str) -> String {
    let line = message.lines().next().unwrap_or_default();
    if line.chars().count() > 120 {
        format!("{}…", line.chars().take(119).collect::<String>())
    } else {
        line.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_hmac_of_the_raw_body() {
        // RFC 4231 test case 2.
        let signed = signature("Jefe", b"what do ya want for nothing?");
        assert_eq!(
            signed,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn slack_text_cannot_mention_or_link() {
        assert_eq!(
            slack_escaped("<!channel> & <https://evil|here>"),
            "&lt;!channel&gt; &amp; &lt;https://evil|here&gt;"
        );
    }

    #[test]
    fn long_messages_make_short_subjects() {
        assert_eq!(subject("one\ntwo"), "one");
        assert_eq!(subject(&"x".repeat(200)).chars().count(), 120);
    }
}
