//! The syntactic tree of a SQL92 selector and its printer. The printer parenthesises every
//! compound operand, so `parse(print(e)) == e` for every tree the parser can produce. Must
//! never print text that lexes differently (two minus signs are never adjacent: `--` opens a
//! comment).

use std::fmt::{self, Write};

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `=`
    Eq,
    /// `<>`
    Ne,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `<=`
    Le,
}

impl CmpOp {
    /// The operator's text.
    #[must_use]
    pub const fn symbol(self) -> &'static str {
        match self {
            Self::Eq => "=",
            Self::Ne => "<>",
            Self::Gt => ">",
            Self::Ge => ">=",
            Self::Lt => "<",
            Self::Le => "<=",
        }
    }
}

/// A string test with a literal pattern (RocketMQ 5.x).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextOp {
    /// `CONTAINS`
    Contains,
    /// `STARTSWITH`
    StartsWith,
    /// `ENDSWITH`
    EndsWith,
}

impl TextOp {
    /// The keyword.
    #[must_use]
    pub const fn keyword(self) -> &'static str {
        match self {
            Self::Contains => "CONTAINS",
            Self::StartsWith => "STARTSWITH",
            Self::EndsWith => "ENDSWITH",
        }
    }
}

/// A parsed selector, as written (Java's checks run in [`super::compile`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// `l OR r`
    Or(Box<Expr>, Box<Expr>),
    /// `l AND r`
    And(Box<Expr>, Box<Expr>),
    /// `l op r`
    Compare(CmpOp, Box<Expr>, Box<Expr>),
    /// `e IS [NOT] NULL`
    IsNull {
        /// Tested expression.
        expr: Box<Expr>,
        /// `IS NOT NULL`.
        negated: bool,
    },
    /// `e [NOT] BETWEEN low AND high`
    Between {
        /// Tested expression.
        expr: Box<Expr>,
        /// Lower bound.
        low: Box<Expr>,
        /// Upper bound.
        high: Box<Expr>,
        /// `NOT BETWEEN`.
        negated: bool,
    },
    /// `e [NOT] IN ('a', …)` (at least one literal).
    In {
        /// Tested expression (must be a property to compile).
        expr: Box<Expr>,
        /// The literals.
        list: Vec<String>,
        /// `NOT IN`.
        negated: bool,
    },
    /// `e [NOT] CONTAINS|STARTSWITH|ENDSWITH 'p'`
    Text {
        /// The test.
        op: TextOp,
        /// Tested expression.
        expr: Box<Expr>,
        /// The literal.
        pattern: String,
        /// `NOT …`.
        negated: bool,
    },
    /// `NOT e`
    Not(Box<Expr>),
    /// `-e`
    Negate(Box<Expr>),
    /// A property name.
    Property(String),
    /// A string literal (unescaped).
    Str(String),
    /// An integer literal (never negative: a sign is [`Expr::Negate`]).
    Integer(i64),
    /// A floating-point literal (finite and positive, as Java requires).
    Float(f64),
    /// `TRUE` / `FALSE`
    Bool(bool),
    /// `NULL`
    Null,
}

impl Expr {
    /// A literal (Java's `ConstantExpression`).
    #[must_use]
    pub const fn is_constant(&self) -> bool {
        matches!(
            self,
            Self::Str(_) | Self::Integer(_) | Self::Float(_) | Self::Bool(_) | Self::Null
        )
    }

    /// Evaluates to a Boolean in Java (a `BooleanExpression`).
    #[must_use]
    pub const fn is_boolean(&self) -> bool {
        matches!(
            self,
            Self::Or(..)
                | Self::And(..)
                | Self::Compare(..)
                | Self::IsNull { .. }
                | Self::Between { .. }
                | Self::In { .. }
                | Self::Text { .. }
                | Self::Not(_)
                | Self::Bool(_)
                | Self::Null
        )
    }

    fn is_atom(&self) -> bool {
        matches!(self, Self::Property(_)) || self.is_constant()
    }

    fn write_operand(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_atom() {
            write!(f, "{self}")
        } else {
            write!(f, "({self})")
        }
    }
}

fn write_str_literal(f: &mut fmt::Formatter<'_>, value: &str) -> fmt::Result {
    f.write_char('\'')?;
    for c in value.chars() {
        if c == '\'' {
            f.write_str("''")?;
        } else {
            f.write_char(c)?;
        }
    }
    f.write_char('\'')
}

fn not(negated: bool) -> &'static str {
    if negated {
        "NOT "
    } else {
        ""
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Or(l, r) => {
                l.write_operand(f)?;
                f.write_str(" OR ")?;
                r.write_operand(f)
            }
            Self::And(l, r) => {
                l.write_operand(f)?;
                f.write_str(" AND ")?;
                r.write_operand(f)
            }
            Self::Compare(op, l, r) => {
                l.write_operand(f)?;
                write!(f, " {} ", op.symbol())?;
                r.write_operand(f)
            }
            Self::IsNull { expr, negated } => {
                expr.write_operand(f)?;
                write!(f, " IS {}NULL", not(*negated))
            }
            Self::Between {
                expr,
                low,
                high,
                negated,
            } => {
                expr.write_operand(f)?;
                write!(f, " {}BETWEEN ", not(*negated))?;
                low.write_operand(f)?;
                f.write_str(" AND ")?;
                high.write_operand(f)
            }
            Self::In {
                expr,
                list,
                negated,
            } => {
                expr.write_operand(f)?;
                write!(f, " {}IN (", not(*negated))?;
                for (i, item) in list.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write_str_literal(f, item)?;
                }
                f.write_char(')')
            }
            Self::Text {
                op,
                expr,
                pattern,
                negated,
            } => {
                expr.write_operand(f)?;
                write!(f, " {}{} ", not(*negated), op.keyword())?;
                write_str_literal(f, pattern)
            }
            // Unary operands that are unary themselves need no parentheses (a space keeps two
            // minus signs from reading as a comment).
            Self::Not(e) if matches!(**e, Self::Not(_) | Self::Negate(_)) => write!(f, "NOT {e}"),
            Self::Not(e) => {
                f.write_str("NOT ")?;
                e.write_operand(f)
            }
            Self::Negate(e) if matches!(**e, Self::Not(_) | Self::Negate(_)) => write!(f, "- {e}"),
            Self::Negate(e) => {
                f.write_char('-')?;
                e.write_operand(f)
            }
            Self::Property(name) => f.write_str(name),
            Self::Str(value) => write_str_literal(f, value),
            Self::Integer(value) => write!(f, "{value}"),
            // Debug keeps an exponent or a '.', so the text lexes as a float again.
            Self::Float(value) => write!(f, "{value:?}"),
            Self::Bool(true) => f.write_str("TRUE"),
            Self::Bool(false) => f.write_str("FALSE"),
            Self::Null => f.write_str("NULL"),
        }
    }
}
