//! A block of credentials pasted whole, as storage services show them (Storj's S3 gateway
//! credentials: "Access Key ID: …", "Secret Key   : …", "Endpoint     : https://…"; an AWS
//! credentials file: "aws_access_key_id = …"), read into the fields that carry its labels
//! (`Field::pasted_as`). The form's `paste` field; with JavaScript `static/app.js` fills the
//! fields in the page from the same labels, which the form gives it as data attributes.

use crate::credentials::field::{Field, Values};

/// The form field that holds a pasted block.
pub const PASTE: &str = "paste";

/// The (field key, value) pairs `text` gives `fields`: each line is a label, `:` or `=`, and
/// a value; labels are compared without case and extra spaces; lines of no field (headings,
/// rules of `=====`, unknown labels) are skipped; the first value of a field wins. A value is
/// one word (keys, secrets and endpoints hold no spaces), so a block whose line breaks were
/// lost ("Access Key ID: A Secret Key: S") still gives each label its own value.
pub fn read(fields: &[Field], text: &str) -> Vec<(&'static str, String)> {
    let mut found: Vec<(&'static str, String)> = Vec::new();
    for line in text.lines() {
        let mut rest = line.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
        while let Some(at) = rest.find([':', '=']) {
            let label = rest[..at].split_whitespace().collect::<Vec<_>>().join(" ");
            let after = rest[at + 1..].trim_start_matches([':', '=']).trim_start();
            let end = after.find(char::is_whitespace).unwrap_or(after.len());
            let (value, next) = after.split_at(end);
            rest = next.trim_start();
            let label = label
                .trim_matches(|c| c == '"' || c == '-' || c == '*')
                .to_lowercase();
            let value = value.trim_matches(|c| c == '"' || c == '\'' || c == '`');
            if label.is_empty() || value.is_empty() {
                continue;
            }
            let field = fields
                .iter()
                .find(|field| field.pasted_as.contains(&label.as_str()));
            if let Some(field) = field
                && !found.iter().any(|(key, _)| *key == field.key)
            {
                found.push((field.key, value.to_string()));
            }
        }
    }
    found
}

/// Takes the pasted block out of `values` and fills the fields it names that were left
/// empty (a typed value wins over a pasted one).
pub fn fill_blanks(fields: &[Field], values: &mut Values) {
    let text = values.get(PASTE).to_string();
    values.remove(PASTE);
    for (key, value) in read(fields, &text) {
        if values.get(key).is_empty() {
            values.set(key, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{PASTE, fill_blanks, read};
    use crate::credentials::field::Values;
    use crate::credentials::provider::{self, Kind, Provider};

    fn s3() -> &'static Provider {
        provider::find(Kind::Backup, Some("s3")).unwrap()
    }

    const KEY: &str = "jw7xvb3yn4xdpoq2ryvmtyyajnla";
    const SECRET: &str = "jzpzxwtkypvk3ewgoz5yyh3rlf3bbaw4wcspfd3otbx2rnyxfgdyk";

    #[test]
    fn a_storj_block_fills_key_secret_and_endpoint() {
        // As `uplink share --register` prints it, with Windows line endings and a heading.
        let pasted = format!(
            "========== GATEWAY CREDENTIALS ===========================\r\n\
             Access Key ID: {KEY}\r\n\
             Secret Key   : {SECRET}\r\n\
             Endpoint     : https://gateway.storjshare.io\r\n"
        );
        assert_eq!(
            read(s3().fields, &pasted),
            vec![
                ("access_key_id", KEY.to_string()),
                ("secret_access_key", SECRET.to_string()),
                ("endpoint", "https://gateway.storjshare.io".to_string()),
            ]
        );
        // As the web console shows it: other words, extra spaces, a tab, blank lines.
        let pasted = format!(
            "  Access Key  :   {KEY}  \n\n\tSecret key:\t{SECRET}\nendpoint:https://gateway.storjshare.io \n"
        );
        let found = read(s3().fields, &pasted);
        assert_eq!(found.len(), 3, "{found:?}");
        assert_eq!(found[1], ("secret_access_key", SECRET.to_string()));
    }

    #[test]
    fn an_aws_credentials_file_and_unknown_lines_are_read_too() {
        let pasted = format!(
            "[default]\naws_access_key_id = {KEY}\naws_secret_access_key = {SECRET}==\n\
             region = eu-central-1\nsomething: else\nno separator here\n"
        );
        assert_eq!(
            read(s3().fields, &pasted),
            vec![
                ("access_key_id", KEY.to_string()),
                ("secret_access_key", format!("{SECRET}==")),
                ("region", "eu-central-1".to_string()),
            ]
        );
        assert!(read(s3().fields, "").is_empty());
        assert!(read(s3().fields, "Endpoint:\nSecret Key:   \n").is_empty());
    }

    #[test]
    fn a_block_whose_line_breaks_were_lost_gives_each_label_its_value() {
        let pasted = format!(
            "Access Key ID: {KEY} Secret Key: {SECRET} Endpoint: https://gateway.storjshare.io"
        );
        assert_eq!(
            read(s3().fields, &pasted),
            vec![
                ("access_key_id", KEY.to_string()),
                ("secret_access_key", SECRET.to_string()),
                ("endpoint", "https://gateway.storjshare.io".to_string()),
            ]
        );
    }

    #[test]
    fn a_paste_fills_only_the_fields_left_empty_and_is_not_kept() {
        let mut values = Values::default();
        values.set("access_key_id", "typed-key");
        values.set("endpoint", "");
        values.set(
            PASTE,
            format!("Access Key ID: {KEY}\r\nSecret Key: {SECRET}\r\nEndpoint: https://gateway.storjshare.io"),
        );
        fill_blanks(s3().fields, &mut values);
        assert_eq!(values.get("access_key_id"), "typed-key");
        assert_eq!(values.get("secret_access_key"), SECRET);
        assert_eq!(values.get("endpoint"), "https://gateway.storjshare.io");
        assert_eq!(values.get(PASTE), "", "the block itself is dropped");
    }
}
