//! Golden table (expression × properties → match / no match / error) and property tests
//! (print ∘ parse = id over generated trees; arbitrary text never panics).

use proptest::prelude::*;

use super::eval::RawProperties;
use super::*;

/// Expected outcome of one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Match,
    NoMatch,
    /// Does not compile.
    Error,
}
use Want::{Error, Match, NoMatch};

fn outcome(expr: &str, props: &[(&str, &str)]) -> Want {
    let Ok(selector) = compile(expr) else {
        return Error;
    };
    let mut raw = String::new();
    for (name, value) in props {
        raw.push_str(name);
        raw.push('\u{1}');
        raw.push_str(value);
        raw.push('\u{2}');
    }
    if selector.matches(&RawProperties(&raw)) {
        Match
    } else {
        NoMatch
    }
}

/// Properties of one golden row.
type Props = &'static [(&'static str, &'static str)];
/// One golden row.
type Row = (&'static str, Props, Want);

const A10: &[(&str, &str)] = &[("a", "10"), ("s", "hello"), ("TAGS", "TagA")];
const NONE: &[(&str, &str)] = &[];

#[test]
fn golden_table() {
    let rows: &[Row] = &[
        // numeric comparison, property strings converted to the literal's type
        ("a > 5", A10, Match),
        ("a > 10", A10, NoMatch),
        ("a >= 10", A10, Match),
        ("a < 11", A10, Match),
        ("a <= 9", A10, NoMatch),
        ("a = 10", A10, Match),
        ("a <> 10", A10, NoMatch),
        ("a <> 11", A10, Match),
        ("a = 10.0", A10, Match),
        ("a > 9.5", A10, Match),
        ("a > -1", A10, Match),
        ("a > 3000000000", A10, NoMatch),
        ("a < 3000000000", A10, Match),
        // missing property: NULL, never a match except IS NULL
        ("b > 5", A10, NoMatch),
        ("b = 'x'", A10, NoMatch),
        ("b <> 'x'", A10, NoMatch),
        ("NOT (b = 'x')", A10, NoMatch),
        ("b IS NULL", A10, Match),
        ("b IS NOT NULL", A10, NoMatch),
        ("a IS NOT NULL", A10, Match),
        ("a IS NULL", A10, NoMatch),
        ("b > 5 OR a = 10", A10, Match),
        ("b > 5 AND a = 10", A10, NoMatch),
        ("NOT (b > 5 AND a = 11)", A10, Match),
        // type mismatch: an error in evaluation is no match, even inside OR
        ("s > 5", A10, NoMatch),
        ("s = 5", A10, NoMatch),
        ("s > 5 OR a = 10", A10, NoMatch),
        ("a = 10 OR s > 5", A10, Match),
        ("a = 11 AND s > 5", A10, NoMatch),
        // strings
        ("s = 'hello'", A10, Match),
        ("s = 'HELLO'", A10, NoMatch),
        ("s <> 'world'", A10, Match),
        ("'hello' = s", A10, Match),
        ("a = '10'", A10, Match),
        ("s > 'a'", A10, Error),
        ("a > s", A10, NoMatch),
        ("a < s", A10, NoMatch),
        ("TAGS = 'TagA'", A10, Match),
        ("q = 'it''s'", &[("q", "it's")], Match),
        // BETWEEN
        ("a BETWEEN 1 AND 10", A10, Match),
        ("a BETWEEN 11 AND 20", A10, NoMatch),
        ("a NOT BETWEEN 11 AND 20", A10, Match),
        ("a NOT BETWEEN 1 AND 10", A10, NoMatch),
        ("b BETWEEN 1 AND 10", A10, NoMatch),
        ("b NOT BETWEEN 1 AND 10", A10, NoMatch),
        ("a BETWEEN 10 AND 1", A10, Error),
        ("a BETWEEN 'x' AND 'y'", A10, Error),
        ("a BETWEEN 1.5 AND 10", A10, Match),
        // IN
        ("s IN ('hello', 'world')", A10, Match),
        ("s IN ('x')", A10, NoMatch),
        ("s NOT IN ('x', 'y')", A10, Match),
        ("s NOT IN ('hello')", A10, NoMatch),
        ("b IN ('x')", A10, NoMatch),
        ("b NOT IN ('x')", A10, NoMatch),
        ("a IN ('10')", A10, Match),
        ("a IN (10)", A10, Error),
        ("'a' IN ('a')", A10, Error),
        ("s IN ()", A10, Error),
        // booleans
        ("TRUE", NONE, Match),
        ("FALSE", NONE, NoMatch),
        ("NULL", NONE, NoMatch),
        ("NOT FALSE", NONE, Match),
        ("TRUE OR b > 1", NONE, Match),
        ("flag = TRUE", &[("flag", "true")], Match),
        ("flag = TRUE", &[("flag", "TRUE")], Match),
        ("flag = FALSE", &[("flag", "yes")], Match),
        ("TRUE = 1", NONE, Error),
        ("1 = TRUE", NONE, NoMatch),
        ("a", A10, NoMatch),
        ("NOT a", A10, Match),
        ("NOT b", A10, NoMatch),
        ("TRUE > 1", NONE, Error),
        // precedence and parentheses
        ("a = 10 OR a = 1 AND a = 2", A10, Match),
        ("(a = 10 OR a = 1) AND a = 2", A10, NoMatch),
        ("((((a = 10))))", A10, Match),
        ("a = 10 AND (s = 'x' OR s = 'hello')", A10, Match),
        // keywords are case-insensitive, identifiers are not
        ("a between 1 and 10 and s in ('hello')", A10, Match),
        ("A = 10", A10, NoMatch),
        ("s is not null", A10, Match),
        // literals
        ("a = 10L", A10, Match),
        ("a < 1E3", A10, Match),
        ("a > .5", A10, Match),
        ("a > 5.", A10, Match),
        ("a > 0.0", A10, Error),
        ("a = 007", A10, Error),
        ("a = 99999999999999999999", A10, Error),
        // 5.x string tests
        ("s CONTAINS 'ell'", A10, Match),
        ("s NOT CONTAINS 'ell'", A10, NoMatch),
        ("s STARTSWITH 'he'", A10, Match),
        ("s ENDSWITH 'lo'", A10, Match),
        ("s NOT ENDSWITH 'x'", A10, Match),
        ("b NOT CONTAINS 'x'", A10, NoMatch),
        ("s CONTAINS ''", A10, NoMatch),
        // comments and whitespace
        ("a = 10 -- trailing comment\n", A10, Match),
        ("a /* inline */ = 10", A10, Match),
        ("a = --10", A10, Match),
        ("\ta\n=\r10 ", A10, Match),
        // syntax errors
        ("", NONE, Error),
        ("a =", A10, Error),
        ("a = 10 b", A10, Error),
        ("(a = 10", A10, Error),
        ("a = 'unterminated", A10, Error),
        ("a == 10", A10, Error),
        ("a != 10", A10, Error),
        ("a = NULL", A10, Error),
        ("5", NONE, Error),
        ("'x'", NONE, Error),
        ("a AND 5", A10, Error),
        ("a > 1 > 2", A10, Error),
        ("a = 1 /* open", A10, Error),
        ("a # 1", A10, Error),
        ("a.b = 1", A10, Error),
    ];
    let mut wrong = Vec::new();
    for (expr, props, want) in rows {
        let got = outcome(expr, props);
        if got != *want {
            wrong.push(format!(
                "{expr:?} with {props:?}: want {want:?}, got {got:?}"
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "golden rows failed:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn duplicate_names_take_the_last_value_and_empty_values_do_not_count() {
    let selector = compile("a = 2").expect("compiles");
    assert!(selector.matches(&RawProperties("a\u{1}1\u{2}a\u{1}2\u{2}")));
    let missing = compile("a IS NULL").expect("compiles");
    assert!(missing.matches(&RawProperties("a\u{1}\u{2}")));
}

#[test]
fn too_long_or_too_deep_expressions_are_refused() {
    let long = format!("a = '{}'", "x".repeat(SQL92_EXPRESSION_BYTES_MAX));
    assert!(parse(&long).is_err());
    let deep = format!("{}a = 1{}", "(".repeat(200), ")".repeat(200));
    assert!(parse(&deep).is_err());
    let chain = vec!["a = 1"; 1000].join(" OR ");
    assert!(parse(&chain).is_err());
    let fine = vec!["a = 1"; 20].join(" OR ");
    assert!(compile(&fine).is_ok());
}

fn arb_name() -> impl Strategy<Value = String> {
    "[a-zA-Z_$][a-zA-Z0-9_$]{0,6}".prop_filter("not a keyword", |s| {
        super::lex::tokens(s).is_ok_and(|t| matches!(t.as_slice(), [(_, super::lex::Tok::Id(_))]))
    })
}

fn arb_expr() -> impl Strategy<Value = Expr> {
    let leaf = prop_oneof![
        arb_name().prop_map(Expr::Property),
        "[^\u{0}]{0,6}".prop_map(Expr::Str),
        (0..=i64::MAX).prop_map(Expr::Integer),
        (1e-300f64..1e300).prop_map(Expr::Float),
        any::<bool>().prop_map(Expr::Bool),
        Just(Expr::Null),
    ];
    leaf.prop_recursive(5, 48, 4, |inner| {
        let cmp = prop_oneof![
            Just(CmpOp::Eq),
            Just(CmpOp::Ne),
            Just(CmpOp::Gt),
            Just(CmpOp::Ge),
            Just(CmpOp::Lt),
            Just(CmpOp::Le)
        ];
        let text = prop_oneof![
            Just(TextOp::Contains),
            Just(TextOp::StartsWith),
            Just(TextOp::EndsWith)
        ];
        let b = |e: Expr| Box::new(e);
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(move |(l, r)| Expr::Or(b(l), b(r))),
            (inner.clone(), inner.clone()).prop_map(move |(l, r)| Expr::And(b(l), b(r))),
            (cmp, inner.clone(), inner.clone()).prop_map(move |(o, l, r)| Expr::Compare(
                o,
                b(l),
                b(r)
            )),
            (inner.clone(), any::<bool>()).prop_map(move |(e, negated)| Expr::IsNull {
                expr: b(e),
                negated
            }),
            (inner.clone(), inner.clone(), inner.clone(), any::<bool>()).prop_map(
                move |(e, l, h, negated)| Expr::Between {
                    expr: b(e),
                    low: b(l),
                    high: b(h),
                    negated
                }
            ),
            (
                inner.clone(),
                prop::collection::vec("[^\u{0}]{0,4}", 1..4),
                any::<bool>()
            )
                .prop_map(move |(e, list, negated)| Expr::In {
                    expr: b(e),
                    list,
                    negated
                }),
            (text, inner.clone(), "[^\u{0}]{0,4}", any::<bool>()).prop_map(
                move |(op, e, pattern, negated)| Expr::Text {
                    op,
                    expr: b(e),
                    pattern,
                    negated
                }
            ),
            inner.clone().prop_map(move |e| Expr::Not(b(e))),
            inner.prop_map(move |e| Expr::Negate(b(e))),
        ]
    })
}

proptest! {
    #[test]
    fn parse_of_print_is_identity(expr in arb_expr()) {
        let text = expr.to_string();
        let parsed = parse(&text);
        prop_assert_eq!(parsed.as_ref(), Ok(&expr), "printed as {}", text);
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,80}") {
        if let Ok(selector) = compile(&text) {
            let _ = selector.matches(&RawProperties("a\u{1}1\u{2}s\u{1}x\u{2}"));
            // What compiles prints to text that compiles to the same tree.
            let again = compile(&selector.expr().to_string()).expect("printed selector compiles");
            prop_assert_eq!(again.expr(), selector.expr());
        }
    }

    #[test]
    fn deep_unary_chains_print_without_parentheses(n in 1usize..60) {
        let text = format!("{}a = 5", "- ".repeat(n));
        if let Ok(selector) = compile(&text) {
            let again = compile(&selector.expr().to_string()).expect("printed selector compiles");
            prop_assert_eq!(again.expr(), selector.expr());
        }
    }

    #[test]
    fn selector_alphabet_never_panics(text in "[a-c0-9 ()'=<>.,+\\-*/\\n]{0,60}|((NOT|AND|OR|IN|IS|NULL|BETWEEN|TRUE|a|b|1|'x'|\\(|\\)|=|<>|>|,) ){0,20}") {
        if let Ok(selector) = compile(&text) {
            let _ = selector.evaluate(&RawProperties("a\u{1}1\u{2}b\u{1}x\u{2}"));
        }
    }

    #[test]
    fn record_properties_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let selector = compile("a IS NULL OR a > 1").expect("compiles");
        let _ = selector.matches_record(&bytes);
        let _ = record_properties(&bytes);
    }
}
