//! A browser session against a test app (`Client`), and what tests read from its pages.

use reqwest::StatusCode;
use scraper::{Html, Selector};

use super::app::{Account, TestApp};

/// One browser session against the app.
pub struct Client {
    pub base: String,
    pub http: reqwest::Client,
}

impl Client {
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("request")
    }

    /// The body of the page at `path`.
    pub async fn page(&self, path: &str) -> String {
        self.get(path).await.text().await.unwrap()
    }

    /// The body of the htmx fragment at `path`.
    pub async fn fragment(&self, path: &str) -> String {
        self.get_htmx(path).await.text().await.unwrap()
    }

    /// GET with htmx's request header.
    pub async fn get_htmx(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .header("HX-Request", "true")
            .send()
            .await
            .expect("request")
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .form(form)
            .send()
            .await
            .expect("request")
    }

    /// Posts a form with the session's CSRF token, read from `page`.
    pub async fn post_from(
        &self,
        page: &str,
        path: &str,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        let token = self.token(page).await;
        let mut fields = vec![("csrf_token", token.as_str())];
        fields.extend_from_slice(form);
        self.post(path, &fields).await
    }

    /// The CSRF token shown on `page` (hidden field or the body's hx-headers).
    pub async fn token(&self, page: &str) -> String {
        let body = self.get(page).await.text().await.expect("body");
        csrf_token(&body).unwrap_or_else(|| panic!("no CSRF token on {page}"))
    }

    /// Signs in; returns the response to the sign-in post.
    pub async fn login(&self, email: &str, password: &str) -> reqwest::Response {
        self.post_from(
            "/login",
            "/login",
            &[("email", email), ("password", password)],
        )
        .await
    }

    /// Creates an organization (as a Partner) and returns its id.
    pub async fn create_organization(&self, app: &TestApp, name: &str) -> i64 {
        let response = self
            .post_from("/organizations", "/organizations", &[("name", name)])
            .await;
        assert_eq!(
            response.status(),
            StatusCode::SEE_OTHER,
            "organization created"
        );
        app.organization_id(name)
    }

    /// Creates a person (as a Partner).
    pub async fn create_user(&self, email: &str, role: &str, organization: Option<i64>) -> Account {
        let organization = organization.map(|id| id.to_string()).unwrap_or_default();
        let password = format!("{role}-password-123");
        let response = self
            .post_from(
                "/users",
                "/users",
                &[
                    ("email", email),
                    ("display_name", email),
                    ("role", role),
                    ("organization_id", &organization),
                    ("password", &password),
                ],
            )
            .await;
        assert_eq!(
            response.status(),
            StatusCode::SEE_OTHER,
            "user {email} created"
        );
        Account {
            email: email.to_string(),
            password,
        }
    }

    /// The session cookie as sent by the browser.
    pub async fn session_cookie(&self, response: &reqwest::Response) -> Option<String> {
        response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .find(|value| value.starts_with("keyhold_session="))
            .map(|value| value.split(';').next().unwrap_or("").to_string())
    }
}

/// The CSRF token in a page, if it has one.
pub fn csrf_token(body: &str) -> Option<String> {
    let html = Html::parse_document(body);
    let field = Selector::parse("input[name=csrf_token]").expect("selector");
    if let Some(value) = html
        .select(&field)
        .next()
        .and_then(|input| input.value().attr("value"))
    {
        return Some(value.to_string());
    }
    let body_selector = Selector::parse("body").expect("selector");
    let headers = html
        .select(&body_selector)
        .next()?
        .value()
        .attr("hx-headers")?;
    let parsed: serde_json::Value = serde_json::from_str(headers).ok()?;
    parsed["X-CSRF-Token"]
        .as_str()
        .filter(|token| !token.is_empty())
        .map(str::to_string)
}

/// The text of the elements matching `selector`.
pub fn texts(body: &str, selector: &str) -> Vec<String> {
    let html = Html::parse_document(body);
    let selector = Selector::parse(selector).expect("selector");
    html.select(&selector)
        .map(|element| element.text().collect::<String>().trim().to_string())
        .collect()
}

/// The RFC 6238 code of `secret` (base32) for the time step `offset` steps from now, computed
/// by Python's own HMAC (not keyhold's TOTP library).
pub fn totp_code(secret: &str, offset: i64) -> String {
    let script = "import base64,hmac,hashlib,struct,sys,time\n\
        s=sys.argv[1]; key=base64.b32decode(s+'='*(-len(s)%8))\n\
        step=int(time.time())//30+int(sys.argv[2])\n\
        h=hmac.new(key,struct.pack('>Q',step),hashlib.sha1).digest(); o=h[-1]&15\n\
        print('%06d'%((struct.unpack('>I',h[o:o+4])[0]&0x7fffffff)%1000000))";
    let output = std::process::Command::new("python3")
        .args(["-c", script, secret, &offset.to_string()])
        .output()
        .expect("python3 runs");
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}
