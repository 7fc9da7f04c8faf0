//! RocketMQ's SQL92 message selector (Java `filter/` module, `SelectorParser.jj`): a lexer, a
//! recursive-descent parser to a syntactic [`Expr`], a printer whose output parses back to the
//! same tree, Java's compile-time checks ([`compile`]) and an evaluator over a message's
//! properties ([`Selector::matches`], [`record_properties`]).
//!
//! Semantics follow Java 4.9/5.x (`ComparisonExpression`, `LogicExpression`,
//! `UnaryExpression`, parsed with `CONVERT_STRING_EXPRESSIONS` on):
//! - property values are strings; compared with a number literal they are parsed as that
//!   literal's type (`Integer`, `Long` or `Double`); a value that does not parse is an
//!   evaluation error, and an error anywhere makes the message not match (Java's
//!   `ExpressionMessageFilter` catches and answers false);
//! - `<`, `<=`, `>`, `>=` between two strings parse both as doubles (else an error);
//! - a missing property is SQL NULL: comparisons with it are NULL, `NOT NULL` is NULL, `AND` /
//!   `OR` use three-valued logic, and only TRUE matches — so `a <> 'x'` does not match a
//!   message without `a`; `IS NULL` / `IS NOT NULL` test presence;
//! - a bare property used as a condition is FALSE when present (its value is a string, never
//!   a Boolean) and NULL when missing;
//! - `IN` takes string literals only; `CONTAINS`, `STARTSWITH`, `ENDSWITH` (RocketMQ 5.x) are
//!   accepted too and are FALSE for a missing property, also when negated.
//!
//! Choices where we differ from Java, on purpose:
//! - trailing tokens after a complete expression are an error (Java's grammar has no `<EOF>`
//!   and silently ignores them);
//! - expressions longer than [`SQL92_EXPRESSION_BYTES_MAX`] or nested deeper than
//!   [`SQL92_NESTING_MAX`] are refused;
//! - strings compare by bytes (Java by UTF-16 units: differs only beyond the BMP), and a string
//!   parsed as a double uses Rust's grammar (Java also takes hex floats and `d`/`f` suffixes).
//!
//! Pure: must never panic on any input, allocate more than linear in the expression, or
//! recurse deeper than [`SQL92_NESTING_MAX`].

mod ast;
mod eval;
mod lex;
mod parse;

#[cfg(test)]
mod tests;

pub use ast::{CmpOp, Expr, TextOp};
pub use eval::{record_properties, EvalError, PropertyLookup, Selector};
pub use parse::{compile, parse, ParseError};

pub use super::limits::{SQL92_EXPRESSION_BYTES_MAX, SQL92_NESTING_MAX};
