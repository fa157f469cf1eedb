//! `--fail-if` checks for CI: a comparison on the last checkpoint (`rankme < 10`) or a trend
//! from the first checkpoint to the last (`nc1 increased`).

use crate::error::{Result, TrackError};
use std::fmt;
use std::str::FromStr;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// `<`
    Less,
    /// `<=`
    LessOrEqual,
    /// `>`
    Greater,
    /// `>=`
    GreaterOrEqual,
    /// `==`
    Equal,
    /// `!=`
    NotEqual,
}

impl Operator {
    const ALL: [(Operator, &'static str); 6] = [
        (Operator::Less, "<"),
        (Operator::LessOrEqual, "<="),
        (Operator::Greater, ">"),
        (Operator::GreaterOrEqual, ">="),
        (Operator::Equal, "=="),
        (Operator::NotEqual, "!="),
    ];

    /// The operator's symbol.
    pub fn symbol(self) -> &'static str {
        Operator::ALL
            .iter()
            .find(|(op, _)| *op == self)
            .map_or("?", |(_, s)| s)
    }

    fn parse(symbol: &str) -> Option<Operator> {
        Operator::ALL
            .iter()
            .find(|(_, s)| *s == symbol)
            .map(|(op, _)| *op)
    }

    /// Whether `left OP right` holds.
    pub fn holds(self, left: f64, right: f64) -> bool {
        match self {
            Operator::Less => left < right,
            Operator::LessOrEqual => left <= right,
            Operator::Greater => left > right,
            Operator::GreaterOrEqual => left >= right,
            Operator::Equal => left == right,
            Operator::NotEqual => left != right,
        }
    }
}

/// Which way a metric moved from the first checkpoint to the last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trend {
    /// The last value is larger than the first.
    Increased,
    /// The last value is smaller than the first.
    Decreased,
}

/// A parsed `--fail-if` check; the check fails when its condition holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// `METRIC OP NUMBER` on the last checkpoint that has the metric.
    Compare {
        /// A column of `metrics.csv`.
        metric: String,
        /// The comparison.
        op: Operator,
        /// The number compared with.
        value: f64,
    },
    /// `METRIC increased|decreased` from the first checkpoint to the last.
    Trend {
        /// A column of `metrics.csv`.
        metric: String,
        /// The direction that fails.
        trend: Trend,
    },
}

impl FromStr for Check {
    type Err = TrackError;

    fn from_str(text: &str) -> Result<Check> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let usage = || {
            TrackError::Check(format!(
                "--fail-if '{text}': expected 'METRIC OP NUMBER' (OP one of < <= > >= == !=) or 'METRIC increased|decreased'"
            ))
        };
        match words.as_slice() {
            [metric, "increased"] => Ok(Check::Trend {
                metric: metric.to_string(),
                trend: Trend::Increased,
            }),
            [metric, "decreased"] => Ok(Check::Trend {
                metric: metric.to_string(),
                trend: Trend::Decreased,
            }),
            [metric, op, value] => {
                let op = Operator::parse(op).ok_or_else(usage)?;
                let value = value.parse().map_err(|_| {
                    TrackError::Check(format!("--fail-if '{text}': {value} is not a number"))
                })?;
                Ok(Check::Compare {
                    metric: metric.to_string(),
                    op,
                    value,
                })
            }
            _ => Err(usage()),
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Check::Compare { metric, op, value } => {
                write!(f, "{metric} {} {value}", op.symbol())
            }
            Check::Trend { metric, trend } => {
                let word = match trend {
                    Trend::Increased => "increased",
                    Trend::Decreased => "decreased",
                };
                write!(f, "{metric} {word}")
            }
        }
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckResult {
    /// The check as written.
    pub check: String,
    /// The check passed (its failure condition does not hold).
    pub passed: bool,
    /// The values it looked at.
    pub detail: String,
}

impl Check {
    fn metric(&self) -> &str {
        match self {
            Check::Compare { metric, .. } | Check::Trend { metric, .. } => metric,
        }
    }

    /// Evaluate the check on a table of `(metric, value per checkpoint)` columns.
    pub fn evaluate(
        &self,
        steps: &[f64],
        table: &[(String, Vec<Option<f64>>)],
    ) -> Result<CheckResult> {
        let metric = self.metric();
        let (_, values) = table.iter().find(|(n, _)| n == metric).ok_or_else(|| {
            let names: Vec<&str> = table.iter().map(|(n, _)| n.as_str()).collect();
            TrackError::Check(format!(
                "--fail-if '{self}': no metric {metric}; metrics: {}",
                names.join(", ")
            ))
        })?;
        let points: Vec<(f64, f64)> = steps
            .iter()
            .zip(values)
            .filter_map(|(&s, v)| v.map(|v| (s, v)))
            .collect();
        let result = |fails: bool, detail: String| CheckResult {
            check: self.to_string(),
            passed: !fails,
            detail,
        };
        let (Some(&first), Some(&last)) = (points.first(), points.last()) else {
            return Ok(result(true, format!("{metric} has no value")));
        };
        Ok(match self {
            Check::Compare { op, value, .. } => result(
                op.holds(last.1, *value),
                format!("{metric} = {:.6} at step {}", last.1, last.0),
            ),
            Check::Trend { trend, .. } => {
                let moved = match trend {
                    Trend::Increased => last.1 > first.1,
                    Trend::Decreased => last.1 < first.1,
                };
                result(
                    moved,
                    format!(
                        "{metric}: {:.6} at step {} -> {:.6} at step {}",
                        first.1, first.0, last.1, last.0
                    ),
                )
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Vec<(String, Vec<Option<f64>>)> {
        vec![("nc1".into(), vec![Some(3.0), None, Some(1.0)])]
    }

    #[test]
    fn checks_parse_print_and_evaluate() {
        let steps = [0.0, 1.0, 2.0];
        let check: Check = "nc1 < 2".parse().unwrap();
        assert_eq!(
            check,
            Check::Compare {
                metric: "nc1".into(),
                op: Operator::Less,
                value: 2.0
            }
        );
        assert_eq!(check.to_string(), "nc1 < 2");
        let result = check.evaluate(&steps, &table()).unwrap();
        assert!(!result.passed, "1 < 2 holds, so the check fails");
        assert_eq!(result.detail, "nc1 = 1.000000 at step 2");
        let trend: Check = "nc1 increased".parse().unwrap();
        assert!(trend.evaluate(&steps, &table()).unwrap().passed);
        let trend: Check = "nc1 decreased".parse().unwrap();
        assert!(!trend.evaluate(&steps, &table()).unwrap().passed);
        for op in ["<=", ">", ">=", "==", "!="] {
            let check: Check = format!("nc1 {op} 1").parse().unwrap();
            assert_eq!(check.to_string(), format!("nc1 {op} 1"));
        }
    }

    #[test]
    fn malformed_checks_and_unknown_metrics_are_errors() {
        for text in ["nc1 <", "nc1 ~ 2", "nc1 < x", "", "nc1 went up"] {
            assert!(text.parse::<Check>().is_err(), "{text}");
        }
        let check: Check = "rankme > 1".parse().unwrap();
        let error = check.evaluate(&[0.0], &table()).unwrap_err();
        assert!(error.to_string().contains("no metric rankme; metrics: nc1"));
    }
}
