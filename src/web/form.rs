//! Field errors of a submitted form, shown next to their fields, and the checks forms share.

/// Messages by field name, in the order found.
#[derive(Debug, Default, Clone)]
pub struct FieldErrors(Vec<(&'static str, String)>);

impl FieldErrors {
    /// Records `message` for `field` (the first message per field wins).
    pub fn add(&mut self, field: &'static str, message: impl Into<String>) {
        if self.get(field).is_none() {
            self.0.push((field, message.into()));
        }
    }

    /// Records the error of a check, if it failed.
    pub fn check(&mut self, field: &'static str, result: Result<(), String>) {
        if let Err(message) = result {
            self.add(field, message);
        }
    }

    /// The message for `field`, if any.
    pub fn get(&self, field: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(name, _)| *name == field)
            .map(|(_, message)| message.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A name of `min`–`max` characters (after trimming).
pub fn check_length(value: &str, min: usize, max: usize) -> Result<(), String> {
    let length = value.trim().chars().count();
    if length < min || length > max {
        Err(format!("Use {min} to {max} characters."))
    } else {
        Ok(())
    }
}

/// A plausible email address: one `@`, something on both sides, no spaces.
pub fn check_email(value: &str) -> Result<(), String> {
    let value = value.trim();
    let plausible = value.len() <= 254
        && !value.chars().any(char::is_whitespace)
        && value.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !domain.contains('@')
        });
    if plausible {
        Ok(())
    } else {
        Err("Enter an email address like name@example.com.".to_string())
    }
}

/// Where to go after signing in: only paths on this site.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.contains('\\')
                && !path.chars().any(char::is_control) =>
        {
            path.to_string()
        }
        _ => "/".to_string(),
    }
}

/// One page of a list: `page` counts from 1.
#[derive(Debug, Clone, Copy)]
pub struct Pagination {
    pub page: i64,
    pub per_page: i64,
}

impl Pagination {
    /// Page numbers past this are treated as this (no absurd offsets reach the database).
    const MAX_PAGE: i64 = 100_000;

    pub fn new(page: Option<i64>, per_page: i64) -> Pagination {
        Pagination {
            page: page.unwrap_or(1).clamp(1, Pagination::MAX_PAGE),
            per_page,
        }
    }

    pub fn offset(&self) -> i64 {
        (self.page - 1) * self.per_page
    }

    /// Rows to ask for: one more than a page, to know whether a next page exists.
    pub fn fetch(&self) -> i64 {
        self.per_page + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next(Some("/audit?page=2")), "/audit?page=2");
        assert_eq!(safe_next(Some("//evil.example")), "/");
        assert_eq!(safe_next(Some("https://evil.example")), "/");
        assert_eq!(safe_next(Some("/\\evil.example")), "/");
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn emails_are_checked_loosely() {
        assert!(check_email("a@b.example").is_ok());
        assert!(check_email("a b@c").is_err());
        assert!(check_email("nobody").is_err());
        assert!(check_email("a@b@c").is_err());
    }
}
