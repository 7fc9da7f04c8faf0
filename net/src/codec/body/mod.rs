//! JSON bodies (PROTOCOL.md §5): typed serde structs with Java's field names, written the way
//! fastjson writes them (compact, no spaces, keys in alphabetical order, null fields left out,
//! enums by name) and read leniently through [`parse_lenient`] (unquoted integer map keys,
//! unknown fields ignored, `null` = default, numbers given as strings, enums given as
//! ordinals).
//!
//! Struct fields are declared in the alphabetical order of their JSON names, so serde's output
//! order is fastjson's; maps are `BTreeMap`s so their keys are sorted too. Where Java writes
//! something serde cannot (unquoted integer keys in the legacy route form, MessageQueue objects
//! as map keys) a small hand-written emitter does it: [`route`], [`stats`].
//!
//! Map: [`route`] (TopicRouteData, ClusterInfo, the two `brokerAddrs` styles), [`topic`]
//! (DataVersion, TopicConfig, the topic-config wrappers, permissions), [`register`]
//! (RegisterBrokerBody, JSON and zlib forms), [`heartbeat`] and [`subscription`]
//! (HeartbeatData and the tag hash), [`queue`] (MessageQueue, lock bodies), [`client`]
//! (consumer list, connections, CheckClientRequestBody), [`table`] (KVTable, TopicList),
//! [`offsets`] (the consumer and delay offset tables a slave syncs),
//! [`stats`] (TopicStatsTable, ConsumeStats), [`lenient`] (the tolerant parser),
//! [`object_keys`] (the reader for fastjson's object-keyed maps).
//!
//! Must never: panic on input bytes, trust client-computed tag codes for filtering (see
//! [`subscription::SubscriptionData::recompute_tags`]), or do I/O.

use serde::Serialize;

use super::error::CodecError;

pub use lenient::parse_lenient;

/// Defines an enum carried by its Java name in JSON (fastjson's default), listed in Java
/// ordinal order so an integer ordinal (as the C++ client sends) decodes too.
macro_rules! name_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $(
                $(#[$variant_meta:meta])*
                $variant:ident = $text:literal,
            )*
        }
        default = $default:ident;
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$variant_meta])* $variant,)*
        }

        impl ::core::default::Default for $name {
            fn default() -> Self {
                Self::$default
            }
        }

        impl $name {
            /// Every value, in Java ordinal order.
            pub const ALL: &'static [Self] = &[$(Self::$variant,)*];

            /// The Java enum name.
            #[must_use]
            pub const fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)*
                }
            }

            /// The value for a Java enum name (exact spelling).
            #[must_use]
            pub fn from_name(name: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|value| value.name() == name)
            }

            /// The value for a Java ordinal.
            #[must_use]
            pub fn from_ordinal(ordinal: i64) -> Option<Self> {
                usize::try_from(ordinal).ok().and_then(|index| Self::ALL.get(index)).copied()
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.name())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                $crate::codec::body::lenient::deserialize_name_enum(
                    deserializer,
                    stringify!($name),
                    Self::from_name,
                    Self::from_ordinal,
                )
            }
        }
    };
}

pub mod broker_stats;
pub mod client;
pub mod heartbeat;
pub mod lenient;
pub mod object_keys;
pub mod offsets;
pub mod queue;
pub mod register;
pub mod route;
pub mod stats;
pub mod subscription;
pub mod table;
pub mod topic;

/// A JSON body: written as fastjson writes it, read leniently.
pub trait JsonBody: Sized {
    /// Name used in error messages.
    const NAME: &'static str;

    /// Compact JSON, keys in fastjson's order.
    #[must_use]
    fn to_json(&self) -> Vec<u8>;

    /// Parses the body with [`parse_lenient`].
    ///
    /// # Errors
    /// [`CodecError::Json`] for malformed JSON or a value of the wrong shape.
    fn from_json(bytes: &[u8]) -> Result<Self, CodecError>;
}

/// Serializes a body type to compact JSON.
///
/// # Panics
/// Never for the types of this module: they hold only strings, numbers, booleans, sequences
/// and maps keyed by strings or integers, which `serde_json` always serializes.
pub(crate) fn to_compact_json<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value)
        .expect("body types have only string or integer map keys, so serialization cannot fail")
}

/// Implements [`JsonBody`] through serde for each listed type.
macro_rules! serde_json_body {
    ($($ty:ty => $name:literal,)*) => {$(
        impl $crate::codec::body::JsonBody for $ty {
            const NAME: &'static str = $name;

            fn to_json(&self) -> Vec<u8> {
                $crate::codec::body::to_compact_json(self)
            }

            fn from_json(bytes: &[u8]) -> Result<Self, $crate::codec::error::CodecError> {
                $crate::codec::body::parse_lenient($name, bytes)
            }
        }
    )*};
}

serde_json_body! {
    route::QueueData => "QueueData",
    route::BrokerData => "BrokerData",
    topic::DataVersion => "DataVersion",
    topic::TopicConfig => "TopicConfig",
    topic::TopicConfigSerializeWrapper => "TopicConfigSerializeWrapper",
    topic::TopicConfigAndMappingSerializeWrapper => "TopicConfigAndMappingSerializeWrapper",
    register::RegisterBrokerBody => "RegisterBrokerBody",
    heartbeat::HeartbeatData => "HeartbeatData",
    subscription::SubscriptionData => "SubscriptionData",
    queue::MessageQueue => "MessageQueue",
    queue::LockBatchRequestBody => "LockBatchRequestBody",
    queue::UnlockBatchRequestBody => "UnlockBatchRequestBody",
    queue::LockBatchResponseBody => "LockBatchResponseBody",
    client::GetConsumerListByGroupResponseBody => "GetConsumerListByGroupResponseBody",
    client::ConsumerConnection => "ConsumerConnection",
    client::ProducerConnection => "ProducerConnection",
    client::CheckClientRequestBody => "CheckClientRequestBody",
    table::KvTable => "KVTable",
    table::TopicList => "TopicList",
    offsets::ConsumerOffsetSerializeWrapper => "ConsumerOffsetSerializeWrapper",
    offsets::DelayOffsetSerializeWrapper => "DelayOffsetSerializeWrapper",
    broker_stats::BrokerStatsData => "BrokerStatsData",
}
