//! Bucket names: S3's rules, and the default name keyhold gives a project's bucket.

/// The default bucket of a project: `keyhold-<organization>-<project>`, valid for S3.
pub fn default_bucket(organization: &str, project: &str) -> String {
    let slug = |text: &str| {
        text.to_lowercase()
            .chars()
            .map(|c| match latin_letter(c) {
                Some(plain) => plain,
                None if c.is_ascii_alphanumeric() => c.to_string(),
                None => "-".to_string(),
            })
            .collect::<String>()
            .split('-')
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join("-")
    };
    let mut name = format!("keyhold-{}-{}", slug(organization), slug(project));
    name.truncate(63);
    name.trim_end_matches('-').to_string()
}

/// A lower-case Latin letter with a diacritic as plain letters (`ü` → `ue`, `é` → `e`), so
/// `Grün Örg` makes `gruen-oerg`, not `gr-n-rg`.
fn latin_letter(c: char) -> Option<String> {
    let plain = match c {
        'ä' | 'æ' => "ae",
        'ö' | 'ø' | 'œ' => "oe",
        'ü' => "ue",
        'ß' => "ss",
        'à' | 'á' | 'â' | 'ã' | 'å' | 'ā' | 'ą' | 'ă' => "a",
        'ç' | 'ć' | 'č' => "c",
        'ď' | 'đ' | 'ð' => "d",
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ę' | 'ě' => "e",
        'ğ' => "g",
        'ì' | 'í' | 'î' | 'ï' | 'ī' | 'ı' => "i",
        'ł' | 'ľ' | 'ĺ' => "l",
        'ñ' | 'ń' | 'ň' => "n",
        'ò' | 'ó' | 'ô' | 'õ' | 'ō' | 'ő' => "o",
        'ř' | 'ŕ' => "r",
        'ś' | 'š' | 'ş' | 'ș' => "s",
        'ť' | 'ţ' | 'ț' => "t",
        'ù' | 'ú' | 'û' | 'ū' | 'ů' | 'ű' => "u",
        'ý' | 'ÿ' => "y",
        'ź' | 'ż' | 'ž' => "z",
        'þ' => "th",
        _ => return None,
    };
    Some(plain.to_string())
}

/// S3 bucket naming rules: 3–63 lower-case letters, digits, `-` and `.`, starting and ending
/// with a letter or digit.
pub fn check_bucket_name(name: &str) -> Result<(), String> {
    let valid = (3..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if valid {
        Ok(())
    } else {
        Err("Use 3 to 63 lower-case letters, digits, - and ., starting and ending with a letter or digit.".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_buckets_are_valid_s3_names() {
        let name = default_bucket("Blue Org (EU)", "Shop-Prod");
        assert_eq!(name, "keyhold-blue-org-eu-shop-prod");
        assert!(check_bucket_name(&name).is_ok());
        assert!(check_bucket_name(&default_bucket(&"x".repeat(80), "p")).is_ok());
        assert!(check_bucket_name("Upper").is_err());
        assert!(check_bucket_name("-dash").is_err());
    }

    #[test]
    fn letters_with_diacritics_are_spelled_plainly_in_default_buckets() {
        assert_eq!(
            default_bucket("Grün Örg", "Café-Straße"),
            "keyhold-gruen-oerg-cafe-strasse"
        );
        assert_eq!(default_bucket("Łódź Śląsk", "x1"), "keyhold-lodz-slask-x1");
    }
}
