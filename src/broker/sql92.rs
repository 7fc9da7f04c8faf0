//! SQL92 property filtering at the broker edge: the per-shard cache of compiled selectors,
//! the storage [`RecordFilter`] that evaluates one on a stored record's properties (borrowed
//! from the record read for the pull: nothing is copied for messages that pass or fail), the
//! refusals Java gives (`enablePropertyFilter=false`, bad syntax), and CHECK_CLIENT_CONFIG
//! (46, Java's `ClientManageProcessor.checkClientConfig`).
//!
//! The cache is keyed by the expression text (Java's `SelectorParser` cache is too), so a
//! group's new `subVersion` with the same text reuses its selector and new text compiles once
//! per shard; it holds at most [`SQL92_SELECTOR_CACHE_MAX`] selectors.
//!
//! Must never: serve an SQL92 subscription with `enablePropertyFilter` off, panic on any
//! expression or record, or hold more than [`SQL92_SELECTOR_CACHE_MAX`] selectors per shard.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use rmq_net::codec::body::client::CheckClientRequestBody;
use rmq_net::codec::body::subscription::EXPRESSION_TYPE_SQL92;
use rmq_net::codec::body::JsonBody;
use rmq_net::codec::codes::ResponseCode;
use rmq_net::codec::sql92::{compile, ParseError, Selector};
use rmq_net::RemotingCommand;
use rmq_storage::store::RecordFilter;

use super::shard::Shard;
use super::{success, Failure, Outcome};

pub use crate::limits::SQL92_SELECTOR_CACHE_MAX;

thread_local! {
    /// This shard's compiled selectors (one shard per thread).
    static SELECTORS: RefCell<HashMap<String, Rc<Selector>>> = RefCell::new(HashMap::new());
}

/// The compiled selector of `expression`, from this shard's cache or compiled now.
///
/// # Errors
/// [`ParseError`] when the expression does not compile (not cached: rare and cheap to redo).
pub fn selector(expression: &str) -> Result<Rc<Selector>, ParseError> {
    if let Some(found) = SELECTORS.with(|c| c.borrow().get(expression).cloned()) {
        return Ok(found);
    }
    let compiled = Rc::new(compile(expression)?);
    SELECTORS.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.len() >= SQL92_SELECTOR_CACHE_MAX {
            cache.clear();
        }
        cache.insert(expression.to_owned(), Rc::clone(&compiled));
        assert!(cache.len() <= SQL92_SELECTOR_CACHE_MAX);
    });
    Ok(compiled)
}

/// A selector as a storage record filter: matches on the stored record's properties.
#[derive(Debug)]
pub struct PropertyFilter(pub Rc<Selector>);

impl RecordFilter for PropertyFilter {
    fn accepts(&self, payload: &[u8]) -> bool {
        self.0.matches_record(payload)
    }
}

/// Java's refusal when `enablePropertyFilter` is off (SYSTEM_ERROR).
#[must_use]
pub fn disabled(expression_type: &str) -> Failure {
    Failure::Code(
        ResponseCode::SystemError,
        format!("The broker does not support consumer to filter message by {expression_type}"),
    )
}

/// CHECK_CLIENT_CONFIG: SUCCESS for a tag subscription or none; for SQL92, Java's refusal when
/// filtering is off, SUBSCRIPTION_PARSE_FAILED naming the error when the expression does not
/// compile, else SUCCESS.
///
/// # Errors
/// As above; a malformed body is the codec's error.
pub fn check_client_config(shard: &Shard, request: &RemotingCommand) -> Outcome {
    if request.body.is_empty() {
        return Ok(success(request));
    }
    let body = CheckClientRequestBody::from_json(&request.body)?;
    if let Some(subscription) = body.subscription_data {
        if !subscription.is_tag_type() {
            if !shard.config.enable_property_filter {
                return Err(disabled(&subscription.expression_type));
            }
            if subscription.expression_type != EXPRESSION_TYPE_SQL92 {
                return Err(Failure::Code(
                    ResponseCode::SubscriptionParseFailed,
                    format!(
                        "unsupported expression type {}",
                        subscription.expression_type
                    ),
                ));
            }
            selector(&subscription.sub_string).map_err(|err| {
                Failure::Code(ResponseCode::SubscriptionParseFailed, err.to_string())
            })?;
        }
    }
    Ok(success(request))
}
