//! Evaluation of a compiled selector against a message's properties, with Java's
//! three-valued logic and type conversions (see the module docs), and [`record_properties`],
//! which finds the properties inside a stored record without copying. Must never panic on
//! any record bytes or property values.

use std::cmp::Ordering;

use super::ast::{CmpOp, Expr, TextOp};
use crate::codec::message::layout::{RecordLayout, MAGIC_CODE_OFFSET};

/// A value during evaluation (Java's `String`, `Integer`, `Long`, `Double`, `Boolean`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    /// A property value or a string literal.
    Str(&'a str),
    /// An integer literal that fits 32 bits.
    Int(i32),
    /// An integer literal that does not.
    Long(i64),
    /// A float literal.
    Double(f64),
    /// A condition's result or `TRUE`/`FALSE`.
    Bool(bool),
}

impl Value<'_> {
    /// Java's `createFromDecimal`: an `Integer` when it fits, else a `Long`.
    #[must_use]
    pub fn from_integer(value: i64) -> Self {
        i32::try_from(value).map_or(Value::Long(value), Value::Int)
    }
}

/// A conversion failed (Java throws; the message does not match).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("SQL92 evaluation failed: {0}")]
pub struct EvalError(&'static str);

type Eval<'a> = Result<Option<Value<'a>>, EvalError>;

/// Where property values come from.
pub trait PropertyLookup<'a> {
    /// The value of property `name`, if present.
    fn property(&self, name: &str) -> Option<&'a str>;
}

impl<'a, F: Fn(&str) -> Option<&'a str>> PropertyLookup<'a> for F {
    fn property(&self, name: &str) -> Option<&'a str> {
        self(name)
    }
}

/// The properties string of a record (`name 0x01 value 0x02` …), looked up in place: the last
/// occurrence of a name wins and empty names or values do not count (Java's decode).
#[derive(Debug, Clone, Copy)]
pub struct RawProperties<'a>(pub &'a str);

impl<'a> PropertyLookup<'a> for RawProperties<'a> {
    fn property(&self, name: &str) -> Option<&'a str> {
        let mut found = None;
        for segment in self.0.split('\u{2}') {
            if let Some((n, v)) = segment.split_once('\u{1}') {
                if n == name && !v.is_empty() {
                    found = Some(v);
                }
            }
        }
        found
    }
}

/// The properties bytes of the stored record (PROTOCOL.md §6.6) at the front of `record`,
/// borrowed; `None` if the record is malformed.
#[must_use]
pub fn record_properties(record: &[u8]) -> Option<&[u8]> {
    let layout = RecordLayout::of_record(record).ok()?;
    debug_assert!(record.len() > MAGIC_CODE_OFFSET);
    let be_u32 = |at: usize| -> Option<usize> {
        let b = record.get(at..at + 4)?;
        usize::try_from(u32::from_be_bytes([b[0], b[1], b[2], b[3]])).ok()
    };
    let body_len = be_u32(layout.body_len_offset())?;
    let topic_len_at = layout.body_offset().checked_add(body_len)?;
    let topic_len_size = layout.version.topic_len_size();
    let topic_len = match topic_len_size {
        1 => usize::from(*record.get(topic_len_at)?),
        _ => {
            let b = record.get(topic_len_at..topic_len_at + 2)?;
            usize::from(u16::from_be_bytes([b[0], b[1]]))
        }
    };
    let props_len_at = topic_len_at + topic_len_size + topic_len;
    let b = record.get(props_len_at..props_len_at + 2)?;
    let props_len = usize::from(u16::from_be_bytes([b[0], b[1]]));
    record.get(props_len_at + 2..props_len_at + 2 + props_len)
}

/// A compiled selector ([`super::compile`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Selector {
    expr: Expr,
}

impl Selector {
    pub(super) fn new(expr: Expr) -> Self {
        Self { expr }
    }

    /// The tree.
    #[must_use]
    pub fn expr(&self) -> &Expr {
        &self.expr
    }

    /// Java's `evaluate`: `Ok(Some(b))`, `Ok(None)` for NULL, or the conversion error.
    ///
    /// # Errors
    /// [`EvalError`] where Java throws.
    pub fn evaluate<'a>(
        &'a self,
        props: &impl PropertyLookup<'a>,
    ) -> Result<Option<bool>, EvalError> {
        eval_bool(&self.expr, props)
    }

    /// Whether a message with these properties matches: only TRUE does.
    #[must_use]
    pub fn matches<'a>(&'a self, props: &impl PropertyLookup<'a>) -> bool {
        self.evaluate(props) == Ok(Some(true))
    }

    /// [`Selector::matches`] on a stored record's properties. A record whose properties
    /// cannot be found, or are not UTF-8, is evaluated with no properties.
    #[must_use]
    pub fn matches_record(&self, record: &[u8]) -> bool {
        let text = record_properties(record)
            .and_then(|p| std::str::from_utf8(p).ok())
            .unwrap_or("");
        self.matches(&RawProperties(text))
    }
}

/// Evaluates `expr` as a condition (a property is cast: FALSE when present).
fn eval_bool<'a>(
    expr: &'a Expr,
    props: &impl PropertyLookup<'a>,
) -> Result<Option<bool>, EvalError> {
    Ok(match eval(expr, props)? {
        None => None,
        Some(Value::Bool(b)) => Some(b),
        Some(_) if matches!(expr, Expr::Property(_)) => Some(false),
        // Compile refuses other non-conditions; Java's cast would throw.
        Some(_) => return Err(EvalError("not a condition")),
    })
}

fn boolean(b: Option<bool>) -> Option<Value<'static>> {
    b.map(Value::Bool)
}

fn eval<'a>(expr: &'a Expr, props: &impl PropertyLookup<'a>) -> Eval<'a> {
    Ok(match expr {
        Expr::Or(l, r) => {
            let lv = eval_bool(l, props)?;
            if lv == Some(true) {
                return Ok(boolean(Some(true)));
            }
            let rv = eval_bool(r, props)?;
            boolean(match (lv, rv) {
                (_, Some(true)) => Some(true),
                (Some(false), Some(false)) => Some(false),
                _ => None,
            })
        }
        Expr::And(l, r) => {
            let lv = eval_bool(l, props)?;
            if lv == Some(false) {
                return Ok(boolean(Some(false)));
            }
            let rv = eval_bool(r, props)?;
            boolean(match (lv, rv) {
                (_, Some(false)) => Some(false),
                (Some(true), Some(true)) => Some(true),
                _ => None,
            })
        }
        Expr::Not(e) => boolean(eval_bool(e, props)?.map(|b| !b)),
        Expr::Compare(op, l, r) => boolean(compare_op(*op, l, r, props)?),
        Expr::IsNull { expr, negated } => {
            let present = eval(expr, props)?.is_some();
            boolean(Some(present == *negated))
        }
        Expr::Between {
            expr,
            low,
            high,
            negated: false,
        } => {
            let ge = compare_op(CmpOp::Ge, expr, low, props)?;
            if ge == Some(false) {
                return Ok(boolean(Some(false)));
            }
            let le = compare_op(CmpOp::Le, expr, high, props)?;
            boolean(match (ge, le) {
                (_, Some(false)) => Some(false),
                (Some(true), Some(true)) => Some(true),
                _ => None,
            })
        }
        Expr::Between {
            expr,
            low,
            high,
            negated: true,
        } => {
            let lt = compare_op(CmpOp::Lt, expr, low, props)?;
            if lt == Some(true) {
                return Ok(boolean(Some(true)));
            }
            let gt = compare_op(CmpOp::Gt, expr, high, props)?;
            boolean(match (lt, gt) {
                (_, Some(true)) => Some(true),
                (Some(false), Some(false)) => Some(false),
                _ => None,
            })
        }
        Expr::In {
            expr,
            list,
            negated,
        } => match eval(expr, props)? {
            Some(Value::Str(s)) => boolean(Some(list.iter().any(|item| item == s) != *negated)),
            _ => None,
        },
        Expr::Text {
            op,
            expr,
            pattern,
            negated,
        } => {
            if pattern.is_empty() {
                return Ok(boolean(Some(false)));
            }
            match eval(expr, props)? {
                Some(Value::Str(s)) => {
                    let hit = match op {
                        TextOp::Contains => s.contains(pattern.as_str()),
                        TextOp::StartsWith => s.starts_with(pattern.as_str()),
                        TextOp::EndsWith => s.ends_with(pattern.as_str()),
                    };
                    boolean(Some(hit != *negated))
                }
                _ => boolean(Some(false)),
            }
        }
        Expr::Negate(e) => match eval(e, props)? {
            Some(Value::Int(v)) => Some(Value::Int(v.wrapping_neg())),
            Some(Value::Long(v)) => Some(Value::Long(v.wrapping_neg())),
            Some(Value::Double(v)) => Some(Value::Double(-v)),
            _ => None,
        },
        Expr::Property(name) => props.property(name).map(Value::Str),
        Expr::Str(s) => Some(Value::Str(s)),
        Expr::Integer(v) => Some(Value::from_integer(*v)),
        Expr::Float(v) => Some(Value::Double(*v)),
        Expr::Bool(b) => Some(Value::Bool(*b)),
        Expr::Null => None,
    })
}

fn compare_op<'a>(
    op: CmpOp,
    l: &'a Expr,
    r: &'a Expr,
    props: &impl PropertyLookup<'a>,
) -> Result<Option<bool>, EvalError> {
    if matches!(op, CmpOp::Eq | CmpOp::Ne) {
        // Java evaluates both sides, then: both NULL -> TRUE; left NULL -> NULL; right NULL ->
        // FALSE. `<>` is NOT(`=`).
        let lv = eval(l, props)?;
        let rv = eval(r, props)?;
        let equal = match (lv, rv) {
            (None, None) => Some(true),
            (None, Some(_)) => None,
            (Some(_), None) => Some(false),
            (Some(a), Some(b)) => Some(compare_values(&a, &b)? == 0),
        };
        return Ok(if op == CmpOp::Ne {
            equal.map(|e| !e)
        } else {
            equal
        });
    }
    let Some(lv) = eval(l, props)? else {
        return Ok(None);
    };
    let Some(rv) = eval(r, props)? else {
        return Ok(None);
    };
    let order = match (lv, rv) {
        // Strings are never ordered: both must parse as doubles.
        (Value::Str(a), Value::Str(b)) => {
            let (Some(a), Some(b)) = (parse_double(a), parse_double(b)) else {
                return Err(EvalError("strings compared by <, <=, > or >="));
            };
            java_double_cmp(a, b)
        }
        (a, b) => compare_values(&a, &b)?,
    };
    Ok(Some(match op {
        CmpOp::Gt => order > 0,
        CmpOp::Ge => order >= 0,
        CmpOp::Lt => order < 0,
        _ => order <= 0,
    }))
}

fn parse_double(s: &str) -> Option<f64> {
    s.trim().parse().ok()
}

fn java_double_cmp(a: f64, b: f64) -> i32 {
    match a.total_cmp(&b) {
        Ordering::Less => -1,
        Ordering::Equal => 0,
        Ordering::Greater => 1,
    }
}

fn ord<T: Ord>(a: &T, b: &T) -> i32 {
    match a.cmp(b) {
        Ordering::Less => -1,
        Ordering::Equal => 0,
        Ordering::Greater => 1,
    }
}

#[allow(clippy::cast_precision_loss)]
fn as_double(v: &Value<'_>) -> Option<f64> {
    match v {
        Value::Int(i) => Some(f64::from(*i)),
        Value::Long(l) => Some(*l as f64),
        Value::Double(d) => Some(*d),
        _ => None,
    }
}

/// Java's `ComparisonExpression.__compare` with string conversion on: values of different
/// types are converted towards the literal's type; incomparable types answer -1.
///
/// # Errors
/// A string that does not parse as the other side's number type (Java throws).
pub(super) fn compare_values(a: &Value<'_>, b: &Value<'_>) -> Result<i32, EvalError> {
    const BAD_NUMBER: EvalError = EvalError("property value is not a number of the literal's type");
    Ok(match (a, b) {
        (Value::Str(x), Value::Str(y)) => ord(x, y),
        (Value::Bool(x), Value::Bool(y)) => ord(x, y),
        (Value::Int(x), Value::Int(y)) => ord(x, y),
        (Value::Long(x), Value::Long(y)) => ord(x, y),
        (Value::Int(x), Value::Long(y)) => ord(&i64::from(*x), y),
        (Value::Long(x), Value::Int(y)) => ord(x, &i64::from(*y)),
        (Value::Double(_), Value::Int(_) | Value::Long(_) | Value::Double(_))
        | (Value::Int(_) | Value::Long(_), Value::Double(_)) => {
            match (as_double(a), as_double(b)) {
                (Some(x), Some(y)) => java_double_cmp(x, y),
                _ => -1,
            }
        }
        // Java casts the Boolean to String here: ClassCastException.
        (Value::Bool(_), Value::Str(_)) => return Err(EvalError("boolean compared with a string")),
        (Value::Str(s), Value::Bool(y)) => ord(&s.eq_ignore_ascii_case("true"), y),
        (Value::Str(s), Value::Int(y)) => ord(&s.parse::<i32>().map_err(|_| BAD_NUMBER)?, y),
        (Value::Str(s), Value::Long(y)) => ord(&s.parse::<i64>().map_err(|_| BAD_NUMBER)?, y),
        (Value::Str(s), Value::Double(y)) => {
            java_double_cmp(parse_double(s).ok_or(BAD_NUMBER)?, *y)
        }
        (Value::Int(x), Value::Str(s)) => ord(x, &s.parse::<i32>().map_err(|_| BAD_NUMBER)?),
        (Value::Long(x), Value::Str(s)) => ord(x, &s.parse::<i64>().map_err(|_| BAD_NUMBER)?),
        (Value::Double(x), Value::Str(s)) => {
            java_double_cmp(*x, parse_double(s).ok_or(BAD_NUMBER)?)
        }
        (Value::Bool(_), _) | (_, Value::Bool(_)) => -1,
    })
}
