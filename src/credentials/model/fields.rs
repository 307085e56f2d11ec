//! A credential's public fields as read from its `public` jsonb column.

use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::pg::{Pg, PgValue};
use diesel::sql_types::Jsonb;
use serde::Deserialize;

/// A credential's public fields (its `public` object) as text by key, decoded from the row
/// without a `serde_json::Value` tree for each (a page decodes fifty). A value that is not
/// text reads as empty, as it always did.
#[derive(FromSqlRow, Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields(Vec<(String, String)>);

impl Fields {
    /// The value of `key`, if the object has it.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(field, _)| field == key)
            .map(|(_, value)| value.as_str())
    }

    /// Every field and its value, in the order stored.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0
            .iter()
            .map(|(key, value)| (key.as_str(), value.as_str()))
    }
}

impl FromSql<Jsonb, Pg> for Fields {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        // jsonb's binary form: a version byte (1), then the JSON text.
        // A value that is not an object has no fields (nothing stores one; a page must not
        // fail on it).
        match value.as_bytes().split_first() {
            Some((1, json)) => Ok(serde_json::from_slice(json).unwrap_or_default()),
            _ => Err("unsupported jsonb format".into()),
        }
    }
}

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Object;
        impl<'de> serde::de::Visitor<'de> for Object {
            type Value = Fields;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of public fields")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut map: M,
            ) -> Result<Fields, M::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some((key, JsonText(value))) = map.next_entry::<String, JsonText>()? {
                    fields.push((key, value));
                }
                Ok(Fields(fields))
            }
        }
        deserializer.deserialize_map(Object)
    }
}

/// A JSON value as text: a string's own text, anything else empty.
struct JsonText(String);

impl<'de> Deserialize<'de> for JsonText {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::String(text) => Ok(JsonText(text)),
            _ => Ok(JsonText(String::new())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_fields_read_as_text() {
        let fields: Fields =
            serde_json::from_str(r#"{"region":"eu-1","port":5,"tags":["a"],"empty":null}"#)
                .unwrap();
        assert_eq!(fields.get("region"), Some("eu-1"));
        assert_eq!(fields.get("port"), Some(""), "not text reads as empty");
        assert_eq!(fields.get("tags"), Some(""));
        assert_eq!(fields.get("empty"), Some(""));
        assert_eq!(fields.get("missing"), None);
        assert_eq!(fields.iter().count(), 4);
        assert!(serde_json::from_str::<Fields>("[]").is_err());
    }
}
