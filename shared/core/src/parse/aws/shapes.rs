//! Serde helpers for the shapes CloudTrail really logs.
//!
//! EC2 logs lists as `{"items": […]}` (or `{}` when empty), some APIs log an XML-derived form
//! (`{"item": {…}}` for one element, `{"item": […]}` for several), ports sometimes arrive as
//! strings, and any section may be `null`. These helpers accept all of that so the typed
//! request/response structs stay simple.

use crate::parse::ParseError;
use serde::de::{
    self, DeserializeOwned, Deserializer, IgnoredAny, IntoDeserializer, MapAccess, SeqAccess,
    Visitor,
};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

/// A string borrowed from the input when it has no escapes (the common case), so skipping an
/// irrelevant record allocates nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Text<'a>(pub(super) Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(TextVisitor)
    }
}

/// The trimmed value of an optional field, `None` when absent or blank.
pub(super) fn text<'r>(value: &'r Option<Text<'_>>) -> Option<&'r str> {
    value.as_ref().map(|t| t.0.trim()).filter(|v| !v.is_empty())
}

/// The trimmed value of an optional owned field, `None` when absent or blank.
pub(super) fn present(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// Deserializes one section of the record (`requestParameters`, `responseElements`…) into its
/// typed form. An absent or `null` section is the type's default (every field missing).
pub(super) fn section<T: DeserializeOwned + Default>(
    raw: Option<&RawValue>,
    field: &'static str,
) -> Result<T, ParseError> {
    match raw {
        None => Ok(T::default()),
        Some(raw) => serde_json::from_str(raw.get()).map_err(|e| ParseError::InvalidField {
            field,
            reason: e.to_string(),
        }),
    }
}

/// An EC2 list: `[…]`, `{"items": …}`, `{"item": …}` (one element or many), `{}`, `null`,
/// or a bare scalar standing for a one-element list.
pub(super) fn list<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    deserializer.deserialize_any(ListVisitor(PhantomData))
}

/// An XML-derived repeated element: one object, an array of them, a scalar, or `null`.
pub(super) fn one_or_many<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    OneOrMany::<T>::deserialize(deserializer).map(|found| found.0)
}

struct ListVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for ListVisitor<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list, {\"items\": […]} or null")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        collect_seq(seq)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = Vec::new();
        while let Some(key) = map.next_key::<Text<'de>>()? {
            if key.0 == "items" || key.0 == "item" {
                found.extend(map.next_value::<OneOrMany<T>>()?.0);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        T::deserialize(v.into_deserializer()).map(|one| vec![one])
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        T::deserialize(v.to_owned().into_deserializer()).map(|one| vec![one])
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        T::deserialize(v.into_deserializer()).map(|one| vec![one])
    }
}

struct OneOrMany<T>(Vec<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OneOrManyVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for OneOrManyVisitor<T> {
            type Value = Vec<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("one element, a list of them, or null")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Vec::new())
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Vec::new())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                collect_seq(seq)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(|one| vec![one])
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                T::deserialize(v.into_deserializer()).map(|one| vec![one])
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                T::deserialize(v.to_owned().into_deserializer()).map(|one| vec![one])
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                T::deserialize(v.into_deserializer()).map(|one| vec![one])
            }
        }
        deserializer
            .deserialize_any(OneOrManyVisitor(PhantomData))
            .map(OneOrMany)
    }
}

fn collect_seq<'de, A: SeqAccess<'de>, T: Deserialize<'de>>(
    mut seq: A,
) -> Result<Vec<T>, A::Error> {
    let mut found = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
    while let Some(element) = seq.next_element()? {
        found.push(element);
    }
    Ok(found)
}

/// One entry of a loosely shaped permission list (the legacy `ModifySnapshotAttribute` /
/// `ModifyImageAttribute` form): a bare string, an account id logged as a number, or an object
/// holding the value under one of the names EC2 uses for it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct LooseEntry(pub(super) Option<String>);

impl<'de> Deserialize<'de> for LooseEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LooseVisitor;
        impl<'de> Visitor<'de> for LooseVisitor {
            type Value = LooseEntry;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an account id, group or principal")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(LooseEntry(Some(v.to_owned())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                // Account ids are 12 digits; a JSON number has lost the leading zeros.
                Ok(LooseEntry(Some(format!("{v:012}"))))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(LooseEntry(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut value = None;
                while let Some(key) = map.next_key::<Text<'de>>()? {
                    let known = matches!(
                        key.0.as_ref(),
                        "userId"
                            | "group"
                            | "userGroup"
                            | "groupName"
                            | "organizationArn"
                            | "organizationalUnitArn"
                            | "value"
                    );
                    if known && value.is_none() {
                        value = map.next_value::<Option<String>>()?;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(LooseEntry(value))
            }
        }
        deserializer.deserialize_any(LooseVisitor)
    }
}

/// A number that may be logged as a JSON number or as a string (`"fromPort": "443"`).
pub(super) fn lenient_int<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<i64>, D::Error> {
    struct IntVisitor;
    impl Visitor<'_> for IntVisitor {
        type Value = Option<i64>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an integer, a string holding one, or null")
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            i64::try_from(v)
                .map(Some)
                .map_err(|_| E::custom(format!("integer {v} out of range")))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            if v.fract() == 0.0 && v.abs() <= 1e15 {
                // Exact: the value is integral and far inside i64's range.
                Ok(Some(v as i64))
            } else {
                Err(E::custom(format!("{v} is not an integer")))
            }
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            let v = v.trim();
            if v.is_empty() {
                return Ok(None);
            }
            v.parse()
                .map(Some)
                .map_err(|_| E::custom(format!("{v:?} is not an integer")))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    deserializer.deserialize_any(IntVisitor)
}

/// A string that may be logged as a number (`"ipProtocol": 6`).
pub(super) fn lenient_string<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    struct StringVisitor;
    impl Visitor<'_> for StringVisitor {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string, a number, or null")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(v.to_owned()))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    deserializer.deserialize_any(StringVisitor)
}

/// A flag that may be logged as a JSON boolean or as a string (`"publiclyAccessible": "true"`).
/// Anything else reads as absent: a flag we cannot read states nothing.
pub(super) fn lenient_bool<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<bool>, D::Error> {
    let value = serde_json::Value::deserialize(deserializer)?;
    Ok(match value {
        serde_json::Value::Bool(flag) => Some(flag),
        serde_json::Value::String(text) => match text.trim().to_ascii_lowercase().as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        },
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, Default)]
    #[serde(default)]
    struct Holder {
        #[serde(deserialize_with = "list")]
        groups: Vec<Group>,
        #[serde(deserialize_with = "one_or_many")]
        tag: Vec<Group>,
        #[serde(deserialize_with = "list")]
        loose: Vec<LooseEntry>,
        #[serde(deserialize_with = "lenient_int")]
        port: Option<i64>,
        #[serde(deserialize_with = "lenient_string")]
        protocol: Option<String>,
    }

    #[derive(Debug, Deserialize, Default, PartialEq)]
    #[serde(default)]
    struct Group {
        #[serde(rename = "groupId")]
        group_id: Option<String>,
    }

    fn holder(json: &str) -> Holder {
        serde_json::from_str(json).unwrap()
    }

    fn ids(groups: &[Group]) -> Vec<&str> {
        groups
            .iter()
            .filter_map(|g| g.group_id.as_deref())
            .collect()
    }

    #[test]
    fn lists_accept_every_logged_shape() {
        let items = r#"{"groups": {"items": [{"groupId": "sg-1"}, {"groupId": "sg-2"}]}}"#;
        assert_eq!(ids(&holder(items).groups), ["sg-1", "sg-2"]);
        let one = r#"{"groups": {"xmlns": "x", "item": {"groupId": "sg-1"}}}"#;
        assert_eq!(ids(&holder(one).groups), ["sg-1"]);
        let many = r#"{"groups": {"item": [{"groupId": "sg-1"}, {"groupId": "sg-3"}]}}"#;
        assert_eq!(ids(&holder(many).groups), ["sg-1", "sg-3"]);
        let plain = r#"{"groups": [{"groupId": "sg-4"}]}"#;
        assert_eq!(ids(&holder(plain).groups), ["sg-4"]);
        for empty in [r#"{"groups": {}}"#, r#"{"groups": null}"#, "{}"] {
            assert!(holder(empty).groups.is_empty(), "{empty}");
        }
        let single = r#"{"tag": {"groupId": "sg-5"}}"#;
        assert_eq!(ids(&holder(single).tag), ["sg-5"]);
        let repeated = r#"{"tag": [{"groupId": "sg-5"}, {"groupId": "sg-6"}]}"#;
        assert_eq!(ids(&holder(repeated).tag), ["sg-5", "sg-6"]);
    }

    #[test]
    fn loose_entries_take_strings_numbers_and_objects() {
        let got =
            holder(r#"{"loose": {"items": [{"userId": "111"}, {"group": "all"}, {"other": 1}]}}"#);
        assert_eq!(
            got.loose,
            [
                LooseEntry(Some("111".into())),
                LooseEntry(Some("all".into())),
                LooseEntry(None)
            ]
        );
        assert_eq!(
            holder(r#"{"loose": "all"}"#).loose,
            [LooseEntry(Some("all".into()))]
        );
        assert_eq!(
            holder(r#"{"loose": [12345678901]}"#).loose,
            [LooseEntry(Some("012345678901".into()))]
        );
    }

    #[test]
    fn ports_and_protocols_may_be_strings_or_numbers() {
        assert_eq!(holder(r#"{"port": 22}"#).port, Some(22));
        assert_eq!(holder(r#"{"port": "443"}"#).port, Some(443));
        assert_eq!(holder(r#"{"port": -1}"#).port, Some(-1));
        assert_eq!(holder(r#"{"port": null}"#).port, None);
        assert!(serde_json::from_str::<Holder>(r#"{"port": "ssh"}"#).is_err());
        assert!(serde_json::from_str::<Holder>(r#"{"port": 1.5}"#).is_err());
        assert_eq!(holder(r#"{"protocol": 6}"#).protocol.as_deref(), Some("6"));
        assert_eq!(
            holder(r#"{"protocol": "tcp"}"#).protocol.as_deref(),
            Some("tcp")
        );
    }

    #[test]
    fn text_borrows_unless_escaped() {
        #[derive(Deserialize)]
        struct Named<'a> {
            #[serde(borrow)]
            name: Option<Text<'a>>,
        }
        let plain: Named = serde_json::from_str(r#"{"name": "CreateSnapshot"}"#).unwrap();
        assert!(matches!(
            plain.name,
            Some(Text(Cow::Borrowed("CreateSnapshot")))
        ));
        let escaped: Named = serde_json::from_str(r#"{"name": "Create\u0053napshot"}"#).unwrap();
        assert_eq!(text(&escaped.name), Some("CreateSnapshot"));
        let blank: Named = serde_json::from_str(r#"{"name": "  "}"#).unwrap();
        assert_eq!(text(&blank.name), None);
    }
}
