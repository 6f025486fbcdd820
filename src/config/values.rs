//! Validated scalar values of the configuration files.
//!
//! Each type validates while it is deserialized, so a bad value is reported by the YAML
//! deserializer with the file, line and column of the value itself (no second pass that has lost
//! the positions). Each also describes itself to the JSON Schema with a pattern, so editors flag
//! the same mistakes before deployer runs.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// Defines a string newtype whose constructor validates, with serde and schemars glue.
macro_rules! validated_string {
    ($(#[$doc:meta])* $name:ident, $pattern:expr, $check:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Validates `value`; the error is a lowercase sentence naming what was expected.
            pub fn parse(value: &str) -> Result<Self, String> {
                let check: fn(&str) -> Result<(), String> = $check;
                check(value).map(|()| Self(value.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                Self::parse(&raw).map_err(de::Error::custom)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl JsonSchema for $name {
            fn schema_name() -> Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({ "type": "string", "pattern": $pattern })
            }
        }
    };
}

validated_string!(
    /// A 12-digit AWS account id. The deserializer keeps a plain scalar's text, so an unquoted
    /// `012345678901` keeps its leading zero; the schema still asks for a string.
    AccountId,
    "^[0-9]{12}$",
    |v| {
        if v.len() == 12 && v.bytes().all(|b| b.is_ascii_digit()) {
            Ok(())
        } else {
            Err(format!("invalid AWS account id `{v}`: expected 12 digits, quoted (e.g. \"123456789012\")"))
        }
    }
);

validated_string!(
    /// An AWS region such as `eu-west-1` or `us-gov-west-1`.
    Region,
    "^[a-z]{2}(-[a-z]+)+-[0-9]+$",
    |v| {
        let mut parts = v.split('-');
        let geo_ok = parts.next().is_some_and(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_lowercase()));
        let rest: Vec<&str> = parts.collect();
        let ok = geo_ok
            && rest.len() >= 2
            && rest.last().is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            && rest[..rest.len() - 1].iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()));
        if ok {
            Ok(())
        } else {
            Err(format!("invalid AWS region `{v}`: expected a region code such as `eu-west-1`"))
        }
    }
);

validated_string!(
    /// An IAM role ARN: `arn:<partition>:iam::<12 digits>:role/<path/name>`.
    RoleArn,
    "^arn:aws[a-z-]*:iam::[0-9]{12}:role/[\\w+=,.@/-]+$",
    |v| {
        let hint = "expected `arn:aws:iam::<12-digit account>:role/<name>`";
        let parts: Vec<&str> = v.splitn(6, ':').collect();
        let ok = parts.len() == 6
            && parts[0] == "arn"
            && parts[1].starts_with("aws")
            && parts[2] == "iam"
            && parts[3].is_empty()
            && AccountId::parse(parts[4]).is_ok()
            && parts[5].strip_prefix("role/").is_some_and(|name| {
                !name.is_empty()
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@_/-".contains(c))
            });
        if ok { Ok(()) } else { Err(format!("invalid IAM role ARN `{v}`: {hint}")) }
    }
);

impl RoleArn {
    /// The account id embedded in the ARN (validated at parse time).
    pub fn account_id(&self) -> &str {
        self.0.split(':').nth(4).unwrap_or_default()
    }
}

validated_string!(
    /// A DNS-1123 label: service names become Kubernetes object names and ECS service names.
    ServiceName,
    "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$",
    |v| {
        let ok = !v.is_empty()
            && v.len() <= 63
            && v.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !v.starts_with('-')
            && !v.ends_with('-');
        if ok {
            Ok(())
        } else {
            Err(format!(
                "invalid service name `{v}`: use lowercase letters, digits and `-` (at most 63, as Kubernetes names)"
            ))
        }
    }
);

validated_string!(
    /// An ECR repository name such as `shop/user`.
    RepositoryName,
    "^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$",
    |v| {
        let ok = !v.is_empty()
            && v.len() <= 256
            && v.split('/').all(|part| {
                !part.is_empty()
                    && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
                    && part.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
                    && part.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
            });
        if ok {
            Ok(())
        } else {
            Err(format!("invalid repository name `{v}`: use lowercase path segments such as `shop/user`"))
        }
    }
);

/// A human duration such as `90s`, `10m` or `1h30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    pub fn parse(v: &str) -> Result<Self, String> {
        humantime::parse_duration(v).map(Self).map_err(|_| {
            format!("invalid duration `{v}`: expected a number with a unit, e.g. `90s`, `10m`, `1h30m`")
        })
    }

    pub const fn from_secs(secs: u64) -> Self {
        Self(Duration::from_secs(secs))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A bare number is refused: `timeout: 600` is ambiguous (seconds? minutes?).
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(de::Error::custom)
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl JsonSchema for HumanDuration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^([0-9]+ ?(ms|s|sec|m|min|h|hr|d)\\s*)+$",
            "examples": ["90s", "10m", "1h30m"]
        })
    }
}

/// A calendar date `YYYY-MM-DD` (scan-ignore expiry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Date(pub time::Date);

impl Date {
    pub fn parse(v: &str) -> Result<Self, String> {
        let fmt = time::macros::format_description!("[year]-[month]-[day]");
        time::Date::parse(v, &fmt)
            .map(Self)
            .map_err(|_| format!("invalid date `{v}`: expected YYYY-MM-DD, e.g. `2027-01-31`"))
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = (self.0.year(), u8::from(self.0.month()), self.0.day());
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

impl<'de> Deserialize<'de> for Date {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(de::Error::custom)
    }
}

impl Serialize for Date {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl JsonSchema for Date {
    fn schema_name() -> Cow<'static, str> {
        "Date".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "format": "date" })
    }
}

/// A value with the position it was read from, for errors found after parsing
/// (duplicate names, missing paths) that must still point at the line.
#[derive(Debug, Clone)]
pub struct Loc<T> {
    pub value: T,
    pub line: u64,
    pub column: u64,
}

impl<T> Loc<T> {
    /// A value made in code (defaults, tests): it has no position.
    pub const fn synthetic(value: T) -> Self {
        Self { value, line: 0, column: 0 }
    }
}

impl<T: PartialEq> PartialEq for Loc<T> {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl<T> std::ops::Deref for Loc<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Loc<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let spanned = serde_saphyr::Spanned::<T>::deserialize(d)?;
        Ok(Self {
            value: spanned.value,
            line: spanned.referenced.line(),
            column: spanned.referenced.column(),
        })
    }
}

impl<T: Serialize> Serialize for Loc<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(s)
    }
}

impl<T: JsonSchema> JsonSchema for Loc<T> {
    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        T::json_schema(generator)
    }
    fn inline_schema() -> bool {
        T::inline_schema()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_rejects_values() {
        assert!(AccountId::parse("012345678901").is_ok());
        assert!(AccountId::parse("12345").is_err());
        assert!(Region::parse("eu-west-1").is_ok());
        assert!(Region::parse("us-gov-west-1").is_ok());
        assert!(Region::parse("euwest1").is_err());
        assert!(Region::parse("eu-west").is_err());
        let arn = RoleArn::parse("arn:aws:iam::123456789012:role/deploy/dev").unwrap();
        assert_eq!(arn.account_id(), "123456789012");
        assert!(RoleArn::parse("arn:aws:iam::123:role/x").is_err());
        assert!(RoleArn::parse("arn:aws:iam::123456789012:user/x").is_err());
        assert!(ServiceName::parse("order-api").is_ok());
        assert!(ServiceName::parse("Order").is_err());
        assert!(RepositoryName::parse("shop/user").is_ok());
        assert!(RepositoryName::parse("shop//user").is_err());
        assert_eq!(HumanDuration::parse("1h30m").unwrap().0.as_secs(), 5400);
        assert!(HumanDuration::parse("10x").is_err());
        assert!(Date::parse("2027-01-31").is_ok());
        assert!(Date::parse("2027-13-01").is_err());
    }
}
