//! Typed custom headers <-> extFields (PROTOCOL.md §1.8, §4).
//!
//! Owns the [`CommandHeader`] trait, Java's text semantics for header fields, and one typed
//! struct per request or response header, grouped by request family in the submodules. Field
//! names are Java's, spelled exactly (see each struct's `FIELDS`).
//!
//! Decoding copies Java's `decodeCommandCustomHeader`:
//! - integers are decimal `i32`/`i64`, surrounding whitespace trimmed;
//! - booleans are `true` in any case, anything else is false;
//! - a missing required field is [`CodecError::MissingField`]; text that does not parse is
//!   [`CodecError::InvalidField`] (for optional fields too, as Java's `parseInt` throws);
//!   an empty value of an optional non-text field counts as absent;
//! - keys a header does not name are ignored, notably the `RpcRequestHeader` extras
//!   ([`RPC_EXTRA_KEYS`]) and the ACL keys ([`ACL_KEYS`]) that clients add to every request.
//!
//! Encoding writes every present field as text and leaves `None` out.
//!
//! Must never: panic on input, check ranges or meaning (that belongs to the processors), or
//! know which header encoding (JSON or ROCKETMQ) carried the fields.

use super::body::topic::TopicFilterType;
use super::command::{ExtFields, RemotingCommand};
use super::error::CodecError;

pub use offset::BoundaryType;

/// Defines a header struct from its fields and their Java names, and implements
/// [`CommandHeader`] for it.
///
/// Each field reads `pub name: Type = "javaName"`, optionally followed by `or default_expr`:
/// - `T` (String, i32, i64, bool or a header enum): required, a missing key is an error;
/// - `Option<T>`: optional, `None` is left out on encode;
/// - `T = "javaName" or expr`: optional with a Java default, always written on encode.
macro_rules! command_header {
    (@required $ty:ty) => {
        <$ty as $crate::codec::header::HeaderField>::REQUIRED
    };
    (@required $ty:ty, $default:expr) => {
        false
    };
    (@read $ext:ident, $ty:ty, $key:literal) => {
        <$ty as $crate::codec::header::HeaderField>::read($ext, $key)?
    };
    (@read $ext:ident, $ty:ty, $key:literal, $default:expr) => {
        $crate::codec::header::read_or::<$ty>($ext, $key, $default)?
    };
    (@default) => {
        ::core::default::Default::default()
    };
    (@default $default:expr) => {
        $default
    };
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $(
                $(#[$field_meta:meta])*
                pub $field:ident: $ty:ty = $key:literal $(or $default:expr)?
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name {
            $(
                $(#[$field_meta])*
                pub $field: $ty,
            )*
        }

        impl ::core::default::Default for $name {
            fn default() -> Self {
                Self {
                    $($field: command_header!(@default $($default)?),)*
                }
            }
        }

        impl $crate::codec::header::CommandHeader for $name {
            const FIELDS: &'static [$crate::codec::header::FieldSpec] = &[
                $($crate::codec::header::FieldSpec {
                    name: $key,
                    required: command_header!(@required $ty $(, $default)?),
                },)*
            ];

            fn to_ext_fields(&self, out: &mut $crate::codec::command::ExtFields) {
                $($crate::codec::header::HeaderField::write(&self.$field, $key, out);)*
            }

            fn from_ext_fields(
                ext: &$crate::codec::command::ExtFields,
            ) -> ::core::result::Result<Self, $crate::codec::error::CodecError> {
                Ok(Self {
                    $($field: command_header!(@read ext, $ty, $key $(, $default)?),)*
                })
            }
        }

        #[cfg(test)]
        impl $name {
            /// A proptest strategy over every field.
            pub(crate) fn arbitrary() -> ::proptest::strategy::BoxedStrategy<Self> {
                use ::proptest::strategy::Strategy as _;
                let strategy = ::proptest::strategy::Just(Self::default()).boxed();
                $(
                    let strategy = (
                        strategy,
                        <$ty as $crate::codec::header::testing::ArbField>::arb(),
                    )
                        .prop_map(|(mut header, value)| {
                            header.$field = value;
                            header
                        })
                        .boxed();
                )*
                strategy
            }
        }
    };
}

/// Unit-test helper: for each `name: HeaderType`, a proptest that encodes an arbitrary
/// header, decodes it back to the same value, and checks required-field errors.
#[cfg(test)]
macro_rules! header_round_trip {
    ($($test:ident: $ty:ty,)*) => {
        ::proptest::proptest! {
            $(
                #[test]
                fn $test(header in <$ty>::arbitrary()) {
                    use $crate::codec::header::CommandHeader as _;
                    let ext = header.to_ext();
                    ::proptest::prop_assert_eq!(<$ty>::from_ext_fields(&ext), Ok(header.clone()));
                    $crate::codec::header::testing::check_required_fields(&header);
                }
            )*
        }
    };
}

pub mod admin;
pub mod client;
pub mod namesrv;
pub mod offset;
pub mod pull;
pub mod query;
pub mod reset;
pub mod send;
pub mod transaction;

/// `RpcRequestHeader` keys that may appear on many requests (namespace, namespaced, broker
/// name, oneway, logical queue). Headers ignore them unless a field names one (`bname`).
pub const RPC_EXTRA_KEYS: [&str; 5] = ["ns", "nsd", "bname", "oway", "lo"];

/// ACL keys that ACL-enabled clients (and the C++ client, always) add to every request.
/// Checked by the broker when `aclEnable=true` (`crate::codec::acl_sign`, docs/acl.md).
pub const ACL_KEYS: [&str; 4] = ["AccessKey", "Signature", "SecurityToken", "OnsChannel"];

/// One field of a header: its Java name and whether Java marks it `@CFNotNull`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSpec {
    /// The extFields key.
    pub name: &'static str,
    /// A missing key is [`CodecError::MissingField`].
    pub required: bool,
}

/// A typed custom header: converts to and from the extFields text map.
pub trait CommandHeader: Sized {
    /// Every field, in declaration order.
    const FIELDS: &'static [FieldSpec];

    /// Writes every present field into `out` as text; `None` fields are left out.
    fn to_ext_fields(&self, out: &mut ExtFields);

    /// Reads the header from extFields; unknown keys are ignored.
    ///
    /// # Errors
    /// [`CodecError::MissingField`] for a missing required field,
    /// [`CodecError::InvalidField`] for text that does not parse as the field's type.
    fn from_ext_fields(ext: &ExtFields) -> Result<Self, CodecError>;

    /// The header as a fresh extFields map.
    #[must_use]
    fn to_ext(&self) -> ExtFields {
        let mut out = ExtFields::with_capacity(Self::FIELDS.len());
        self.to_ext_fields(&mut out);
        out
    }

    /// Reads the header from a command's extFields.
    ///
    /// # Errors
    /// As [`CommandHeader::from_ext_fields`].
    fn decode_command(command: &RemotingCommand) -> Result<Self, CodecError> {
        Self::from_ext_fields(&command.ext_fields)
    }
}

/// A value that travels as one extFields text.
pub(crate) trait FieldValue: Sized {
    /// Whether an empty text means "absent" for an optional field of this type.
    const EMPTY_IS_ABSENT: bool = true;

    /// Parses the text of field `field`.
    fn parse_text(field: &'static str, text: &str) -> Result<Self, CodecError>;

    /// Appends the text written for this value to `out` (an [`ExtFields`] arena: no
    /// allocation per field).
    fn write_text(&self, out: &mut String);
}

fn invalid(field: &'static str, text: &str) -> CodecError {
    CodecError::InvalidField {
        field,
        value: text.to_owned(),
    }
}

impl FieldValue for String {
    const EMPTY_IS_ABSENT: bool = false;

    fn parse_text(_field: &'static str, text: &str) -> Result<Self, CodecError> {
        Ok(text.to_owned())
    }

    fn write_text(&self, out: &mut String) {
        out.push_str(self);
    }
}

impl FieldValue for i32 {
    fn parse_text(field: &'static str, text: &str) -> Result<Self, CodecError> {
        text.trim().parse().map_err(|_| invalid(field, text))
    }

    fn write_text(&self, out: &mut String) {
        use std::fmt::Write as _;
        write!(out, "{self}").expect("writing to a String cannot fail");
    }
}

impl FieldValue for i64 {
    fn parse_text(field: &'static str, text: &str) -> Result<Self, CodecError> {
        text.trim().parse().map_err(|_| invalid(field, text))
    }

    fn write_text(&self, out: &mut String) {
        use std::fmt::Write as _;
        write!(out, "{self}").expect("writing to a String cannot fail");
    }
}

impl FieldValue for bool {
    fn parse_text(_field: &'static str, text: &str) -> Result<Self, CodecError> {
        Ok(parse_java_bool(text))
    }

    fn write_text(&self, out: &mut String) {
        out.push_str(if *self { "true" } else { "false" });
    }
}

impl FieldValue for BoundaryType {
    fn parse_text(_field: &'static str, text: &str) -> Result<Self, CodecError> {
        Ok(Self::from_name(text))
    }

    fn write_text(&self, out: &mut String) {
        out.push_str(self.name());
    }
}

impl FieldValue for TopicFilterType {
    fn parse_text(field: &'static str, text: &str) -> Result<Self, CodecError> {
        Self::from_name(text.trim()).ok_or_else(|| invalid(field, text))
    }

    fn write_text(&self, out: &mut String) {
        out.push_str(self.name());
    }
}

/// Java `Boolean.parseBoolean`, also trimming: `true` in any case is true, all else false.
#[must_use]
pub fn parse_java_bool(text: &str) -> bool {
    text.trim().eq_ignore_ascii_case("true")
}

/// A header field type: a [`FieldValue`] (required) or an `Option` of one (optional).
pub(crate) trait HeaderField: Sized {
    /// Whether a missing key is an error.
    const REQUIRED: bool;

    /// Reads field `name` from `ext`.
    fn read(ext: &ExtFields, name: &'static str) -> Result<Self, CodecError> {
        Self::from_text(name, ext.get(name))
    }

    /// The field from its text, `None` when the key is absent (`name` only names it in
    /// errors).
    fn from_text(name: &'static str, text: Option<&str>) -> Result<Self, CodecError>;

    /// Writes field `name` into `out` (nothing for `None`).
    fn write(&self, name: &'static str, out: &mut ExtFields);
}

macro_rules! header_field_impls {
    ($($ty:ty),* $(,)?) => {$(
        impl HeaderField for $ty {
            const REQUIRED: bool = true;

            fn from_text(name: &'static str, text: Option<&str>) -> Result<Self, CodecError> {
                match text {
                    Some(text) => <$ty as FieldValue>::parse_text(name, text),
                    None => Err(CodecError::MissingField(name)),
                }
            }

            fn write(&self, name: &'static str, out: &mut ExtFields) {
                out.insert_with(name, |text| FieldValue::write_text(self, text));
            }
        }

        impl HeaderField for Option<$ty> {
            const REQUIRED: bool = false;

            fn from_text(name: &'static str, text: Option<&str>) -> Result<Self, CodecError> {
                optional_from_text::<$ty>(name, text)
            }

            fn write(&self, name: &'static str, out: &mut ExtFields) {
                if let Some(value) = self {
                    out.insert_with(name, |text| FieldValue::write_text(value, text));
                }
            }
        }
    )*};
}

header_field_impls!(String, i32, i64, bool, BoundaryType, TopicFilterType);

fn read_optional<T: FieldValue>(
    ext: &ExtFields,
    name: &'static str,
) -> Result<Option<T>, CodecError> {
    optional_from_text(name, ext.get(name))
}

fn optional_from_text<T: FieldValue>(
    name: &'static str,
    text: Option<&str>,
) -> Result<Option<T>, CodecError> {
    match text {
        None => Ok(None),
        Some(text) if T::EMPTY_IS_ABSENT && text.trim().is_empty() => Ok(None),
        Some(text) => T::parse_text(name, text).map(Some),
    }
}

/// Reads an optional field that has a Java default: absent (or empty) gives `default`.
pub(crate) fn read_or<T: FieldValue>(
    ext: &ExtFields,
    name: &'static str,
    default: T,
) -> Result<T, CodecError> {
    Ok(read_optional(ext, name)?.unwrap_or(default))
}

/// Proptest strategies for header field types (used by the generated `arbitrary()`).
#[cfg(test)]
pub(crate) mod testing {
    use proptest::prelude::*;
    use proptest::strategy::BoxedStrategy;

    use super::{BoundaryType, TopicFilterType};

    /// A proptest strategy for one field type.
    pub(crate) trait ArbField: Sized + std::fmt::Debug {
        fn arb() -> BoxedStrategy<Self>;
    }

    impl ArbField for String {
        fn arb() -> BoxedStrategy<Self> {
            any::<String>().boxed()
        }
    }

    impl ArbField for i32 {
        fn arb() -> BoxedStrategy<Self> {
            any::<i32>().boxed()
        }
    }

    impl ArbField for i64 {
        fn arb() -> BoxedStrategy<Self> {
            any::<i64>().boxed()
        }
    }

    impl ArbField for bool {
        fn arb() -> BoxedStrategy<Self> {
            any::<bool>().boxed()
        }
    }

    impl ArbField for BoundaryType {
        fn arb() -> BoxedStrategy<Self> {
            prop_oneof![Just(BoundaryType::Lower), Just(BoundaryType::Upper)].boxed()
        }
    }

    impl ArbField for TopicFilterType {
        fn arb() -> BoxedStrategy<Self> {
            prop_oneof![
                Just(TopicFilterType::SingleTag),
                Just(TopicFilterType::MultiTag)
            ]
            .boxed()
        }
    }

    impl<T: ArbField + 'static> ArbField for Option<T> {
        fn arb() -> BoxedStrategy<Self> {
            proptest::option::of(T::arb()).boxed()
        }
    }

    /// Asserts that removing each required field of a fully populated header gives
    /// `MissingField(name)`, and removing an optional one still decodes.
    pub(crate) fn check_required_fields<H: super::CommandHeader + std::fmt::Debug>(full: &H) {
        let ext = full.to_ext();
        for spec in H::FIELDS {
            let mut without = ext.clone();
            if without.remove(spec.name).is_none() {
                assert!(
                    !spec.required,
                    "required field {} was not written",
                    spec.name
                );
                continue;
            }
            let result = H::from_ext_fields(&without);
            if spec.required {
                assert_eq!(
                    result.err(),
                    Some(crate::codec::error::CodecError::MissingField(spec.name)),
                    "required field {}",
                    spec.name
                );
            } else {
                assert!(result.is_ok(), "optional field {}: {result:?}", spec.name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(pairs: &[(&str, &str)]) -> ExtFields {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn integers_trim_and_reject_garbage() {
        let fields = ext(&[("a", " 42 "), ("b", "4x"), ("c", ""), ("d", "-7")]);
        assert_eq!(<i32 as HeaderField>::read(&fields, "a"), Ok(42));
        assert_eq!(<i64 as HeaderField>::read(&fields, "d"), Ok(-7));
        assert_eq!(
            <i32 as HeaderField>::read(&fields, "b"),
            Err(CodecError::InvalidField {
                field: "b",
                value: "4x".to_owned()
            })
        );
        assert!(matches!(
            <i32 as HeaderField>::read(&fields, "c"),
            Err(CodecError::InvalidField { field: "c", .. })
        ));
        assert_eq!(<Option<i32> as HeaderField>::read(&fields, "c"), Ok(None));
        assert!(<Option<i32> as HeaderField>::read(&fields, "b").is_err());
        assert_eq!(
            <i32 as HeaderField>::read(&fields, "zz"),
            Err(CodecError::MissingField("zz"))
        );
        assert_eq!(<Option<i64> as HeaderField>::read(&fields, "zz"), Ok(None));
        assert_eq!(
            <i32 as HeaderField>::read(&ext(&[("x", "2147483648")]), "x"),
            Err(CodecError::InvalidField {
                field: "x",
                value: "2147483648".to_owned()
            })
        );
    }

    #[test]
    fn booleans_follow_java_parse_boolean() {
        for (text, expected) in [
            ("true", true),
            ("TRUE", true),
            ("True ", true),
            ("false", false),
            ("0", false),
            ("1", false),
            ("yes", false),
            ("", false),
        ] {
            assert_eq!(
                <bool as HeaderField>::read(&ext(&[("k", text)]), "k"),
                Ok(expected),
                "{text:?}"
            );
        }
    }

    #[test]
    fn optional_strings_keep_empty_text() {
        let fields = ext(&[("s", "")]);
        assert_eq!(
            <Option<String> as HeaderField>::read(&fields, "s"),
            Ok(Some(String::new()))
        );
        let mut out = ExtFields::new();
        HeaderField::write(&None::<String>, "s", &mut out);
        assert!(out.is_empty());
    }
}
