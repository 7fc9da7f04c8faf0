//! `SubscriptionData` (PROTOCOL.md §5.6) and the tag hash (§6.10).
//!
//! A subscription string is tags separated by `||`, each trimmed; `*` or empty means every
//! tag. The broker filters by `codeSet`, the Java `String.hashCode` of each tag, so
//! [`SubscriptionData::recompute_tags`] rebuilds `tagsSet`/`codeSet` from `subString` instead
//! of trusting what a client sent (ali-ons and C++ send empty or no sets).
//!
//! The hash is [`crate::codec::message::tag_hash`]. Must never: hash bytes instead of UTF-16
//! code units.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::lenient;
use crate::codec::message::tag_hash;

/// The subscription string meaning "every tag".
pub const SUB_ALL: &str = "*";
/// `expressionType` of tag subscriptions (the default).
pub const EXPRESSION_TYPE_TAG: &str = "TAG";
/// `expressionType` of SQL92 subscriptions.
pub const EXPRESSION_TYPE_SQL92: &str = "SQL92";
/// Separator between tags in a subscription string.
pub const TAG_SEPARATOR: &str = "||";

/// One consumer subscription to one topic. Fields in JSON-name order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SubscriptionData {
    /// Legacy class filter.
    #[serde(deserialize_with = "lenient::bool")]
    pub class_filter_mode: bool,
    /// Java `String.hashCode` of each tag.
    pub code_set: Vec<i32>,
    /// `TAG` or `SQL92`.
    pub expression_type: String,
    /// The expression: tags joined by `||`, `*`, or SQL.
    pub sub_string: String,
    /// Subscription version (client timestamp, ms).
    #[serde(deserialize_with = "lenient::i64")]
    pub sub_version: i64,
    /// The trimmed tags.
    pub tags_set: Vec<String>,
    /// Topic.
    pub topic: String,
}

impl Default for SubscriptionData {
    fn default() -> Self {
        Self {
            class_filter_mode: false,
            code_set: Vec::new(),
            expression_type: EXPRESSION_TYPE_TAG.to_owned(),
            sub_string: String::new(),
            sub_version: 0,
            tags_set: Vec::new(),
            topic: String::new(),
        }
    }
}

impl SubscriptionData {
    /// A tag subscription with `tagsSet`/`codeSet` computed from `sub_string`.
    #[must_use]
    pub fn new_tag(
        topic: impl Into<String>,
        sub_string: impl Into<String>,
        sub_version: i64,
    ) -> Self {
        let mut data = Self {
            topic: topic.into(),
            sub_string: sub_string.into(),
            sub_version,
            ..Self::default()
        };
        data.recompute_tags();
        data
    }

    /// Whether this is a tag subscription (`TAG`, or no type given, as Java
    /// `ExpressionType.isTagType`).
    #[must_use]
    pub fn is_tag_type(&self) -> bool {
        self.expression_type.is_empty() || self.expression_type == EXPRESSION_TYPE_TAG
    }

    /// Whether the subscription takes every tag (`*` or an empty expression).
    #[must_use]
    pub fn is_sub_all(&self) -> bool {
        let trimmed = self.sub_string.trim();
        trimmed.is_empty() || trimmed == SUB_ALL
    }

    /// For a tag subscription, rebuilds `tagsSet` and `codeSet` from `subString` (Java
    /// `FilterAPI.buildSubscriptionData`): an empty expression becomes `*` with no tags;
    /// otherwise each `||`-separated, trimmed, non-empty tag is kept once, in order, with its
    /// Java hash. Other expression types are left alone.
    pub fn recompute_tags(&mut self) {
        if !self.is_tag_type() {
            return;
        }
        self.tags_set.clear();
        self.code_set.clear();
        if self.is_sub_all() {
            SUB_ALL.clone_into(&mut self.sub_string);
            return;
        }
        let mut seen = BTreeSet::new();
        for tag in self.sub_string.split(TAG_SEPARATOR).map(str::trim) {
            if tag.is_empty() || !seen.insert(tag) {
                continue;
            }
            self.tags_set.push(tag.to_owned());
            let code = tag_hash(tag);
            if !self.code_set.contains(&code) {
                self.code_set.push(code);
            }
        }
    }

    /// Whether a message whose ConsumeQueue tag code is `tags_code` passes this tag
    /// subscription (Java `ExpressionMessageFilter.isMatchedByConsumeQueue` for TAG).
    #[must_use]
    pub fn matches_tags_code(&self, tags_code: i64) -> bool {
        if self.is_sub_all() {
            return true;
        }
        i32::try_from(tags_code).is_ok_and(|code| self.code_set.contains(&code))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::body::JsonBody;

    /// The hash `codeSet` is built with (`message::tag_hash`, Java `String.hashCode`).
    #[test]
    fn java_hash_vectors() {
        assert_eq!(tag_hash("TagA"), 2_598_919);
        assert_eq!(tag_hash("TagB"), 2_598_920);
        assert_eq!(tag_hash("*"), 42);
        assert_eq!(tag_hash(""), 0);
        // U+1F600 is the surrogate pair D83D DE00: 0xD83D * 31 + 0xDE00 = 1_772_899.
        assert_eq!(tag_hash("\u{1F600}"), 1_772_899);
        // "é" is one UTF-16 unit (0xE9 = 233) though two UTF-8 bytes.
        assert_eq!(tag_hash("é"), 233);
        // Wrapping: Java "polygenelubricants".hashCode() == Integer.MIN_VALUE.
        assert_eq!(tag_hash("polygenelubricants"), i32::MIN);
    }

    #[test]
    fn recompute_from_sub_string() {
        let data = SubscriptionData::new_tag("T", " TagA ||TagB|| ||TagA", 7);
        assert_eq!(data.tags_set, vec!["TagA".to_owned(), "TagB".to_owned()]);
        assert_eq!(data.code_set, vec![2_598_919, 2_598_920]);
        assert!(data.matches_tags_code(2_598_920));
        assert!(!data.matches_tags_code(42));
        assert!(!data.matches_tags_code(i64::from(i32::MAX) + 1));

        for all in ["*", "", "  "] {
            let data = SubscriptionData::new_tag("T", all, 0);
            assert_eq!(data.sub_string, "*");
            assert!(data.tags_set.is_empty());
            assert!(data.code_set.is_empty());
            assert!(data.matches_tags_code(12_345));
        }
    }

    #[test]
    fn recompute_distrusts_client_codes_but_not_sql() {
        let mut data = SubscriptionData {
            sub_string: "TagA".into(),
            tags_set: vec!["TagA".into()],
            code_set: vec![1],
            ..SubscriptionData::default()
        };
        data.recompute_tags();
        assert_eq!(data.code_set, vec![2_598_919]);

        let mut sql = SubscriptionData {
            expression_type: EXPRESSION_TYPE_SQL92.into(),
            sub_string: "a > 1".into(),
            ..SubscriptionData::default()
        };
        let before = sql.clone();
        sql.recompute_tags();
        assert_eq!(sql, before);
    }

    #[test]
    fn json_matches_protocol_example() {
        let data = SubscriptionData::new_tag("T", "TagA || TagB", 1_700_000_000_123);
        let expected = r#"{"classFilterMode":false,"codeSet":[2598919,2598920],"expressionType":"TAG","subString":"TagA || TagB","subVersion":1700000000123,"tagsSet":["TagA","TagB"],"topic":"T"}"#;
        assert_eq!(String::from_utf8(data.to_json()).expect("utf-8"), expected);
        assert_eq!(SubscriptionData::from_json(expected.as_bytes()), Ok(data));
    }
}
