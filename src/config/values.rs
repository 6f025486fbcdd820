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
        if !ok {
            return Err(format!("invalid AWS region `{v}`: expected a region code such as `eu-west-1`"));
        }
        match region_typo(v) {
            Some(known) => Err(format!(
                "unknown AWS region `{v}`: expected a region deployer knows; did you mean `{known}`?"
            )),
            None => Ok(()),
        }
    }
);

validated_string!(
    /// The name of a release hook: a DNS-1123 label of at most 30 characters (it becomes part
    /// of a Kubernetes Job's name, `<service>-<hook>-<n>`, which must fit in 63).
    HookName,
    "^[a-z0-9]([-a-z0-9]{0,28}[a-z0-9])?$",
    |v| {
        if dns1123_label(v).is_err() || v.len() > 30 {
            return Err(format!(
                "invalid hook name `{v}`: expected at most 30 lowercase letters, digits and `-`, starting and ending with a letter or digit (it becomes part of a Job name)"
            ));
        }
        Ok(())
    }
);

/// The regions deployer knows (AWS adds regions: an unknown well-formed one is only a warning,
/// see [`Region::is_known`]).
pub const KNOWN_REGIONS: &[&str] = &[
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "cn-north-1",
    "cn-northwest-1",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-gov-east-1",
    "us-gov-west-1",
    "us-west-1",
    "us-west-2",
];

/// A well-formed region that looks like a typo of a known one: its name part (`eu-wset` of
/// `eu-wset-1`) is no known region's, but is close to one. A new number of a known name part
/// (`ap-southeast-9`) or a name far from every known one is not a typo: AWS may have added it.
fn region_typo(v: &str) -> Option<&'static str> {
    if KNOWN_REGIONS.contains(&v) {
        return None;
    }
    let stem = |r: &str| r.rsplit_once('-').map_or(r, |(s, _)| s).to_owned();
    let own = stem(v);
    if KNOWN_REGIONS.iter().any(|k| stem(k) == own) {
        return None;
    }
    // Compared whole, so `eu-wset-1` suggests `eu-west-1`, not `eu-west-2`.
    super::did_you_mean(v, KNOWN_REGIONS.iter().copied())
}

impl Region {
    /// Whether deployer knows this region (an unknown one is reported as a warning).
    pub fn is_known(&self) -> bool {
        KNOWN_REGIONS.contains(&self.0.as_str())
    }
}

/// A DNS-1123 label (namespaces, label values, most object names): at most 63 lowercase
/// letters, digits and `-`, starting and ending with a letter or digit.
pub fn dns1123_label(v: &str) -> Result<(), String> {
    if v.is_empty() {
        return Err("is empty".into());
    }
    if v.len() > 63 {
        return Err(format!("is {} characters long; Kubernetes allows at most 63", v.len()));
    }
    if !v.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
        return Err("may contain only lowercase letters, digits and `-` (Kubernetes DNS-1123 label)".into());
    }
    if v.starts_with('-') || v.ends_with('-') {
        return Err("must start and end with a letter or digit (Kubernetes DNS-1123 label)".into());
    }
    Ok(())
}

/// A DNS-1123 subdomain (object names such as a Lease's): dot-separated labels, at most 253.
pub fn dns1123_subdomain(v: &str) -> Result<(), String> {
    if v.len() > 253 {
        return Err(format!("is {} characters long; Kubernetes allows at most 253", v.len()));
    }
    v.split('.').try_for_each(|part| {
        dns1123_label(part).map_err(|_| {
            "may contain only lowercase letters, digits, `-` and `.` (Kubernetes DNS-1123 subdomain)"
                .to_owned()
        })
    })
}

/// Deserializes the URL of an HTTP check: absolute, `http` or `https`, with a host.
pub fn http_url<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let raw = String::deserialize(d)?;
    let ok = url::Url::parse(&raw)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty()));
    match ok {
        Some(_) => Ok(raw),
        None => Err(de::Error::custom(format!(
            "invalid URL `{raw}`: expected an absolute http(s) URL such as `https://shop.example.com/healthz`"
        ))),
    }
}

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
                "invalid service name `{v}`: expected lowercase letters, digits and `-` (at most 63, as Kubernetes names)"
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
    /// The longest duration any setting takes: a timeout or delay beyond a week is a typo
    /// (`99999999h`) or a unit deployer should not guess (`1y`, `1M`: not fixed lengths).
    pub const MAX: Duration = Duration::from_hours(7 * 24);

    pub fn parse(v: &str) -> Result<Self, String> {
        let d = humantime::parse_duration(v).map_err(|_| {
            format!("invalid duration `{v}`: expected a number with a unit, e.g. `90s`, `10m`, `1h30m`")
        })?;
        // Years and months are calendar lengths; deployer's limits are plain times.
        let calendar = v
            .split(|c: char| !c.is_ascii_alphabetic())
            .any(|unit| matches!(unit, "y" | "year" | "years" | "M" | "month" | "months"));
        if calendar {
            return Err(format!(
                "invalid duration `{v}`: expected seconds, minutes, hours or days (`s`, `m`, `h`, `d`), at most 7d"
            ));
        }
        if d > Self::MAX {
            return Err(format!("duration `{v}` is too long: expected at most 7d (a week)"));
        }
        Ok(Self(d))
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
