//! `--fail-if` checks for CI: a comparison on the last checkpoint (`rankme < 10`), a trend
//! from the first checkpoint to the last (`nc1 increased`), or, with several runs, a
//! comparison between runs (`nc1 of supcon > nc1 of simclr`). A metric may name its run
//! (`rankme of simclr < 10`); without one, the check applies to every run.

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

/// A metric of one run (`nc1 of supcon`), or of every run (`nc1`).
#[derive(Debug, Clone, PartialEq)]
pub struct Operand {
    /// A column of `metrics.csv`.
    pub metric: String,
    /// The run's name; `None`: every run.
    pub run: Option<String>,
}

impl fmt::Display for Operand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.run {
            Some(run) => write!(f, "{} of {run}", self.metric),
            None => f.write_str(&self.metric),
        }
    }
}

/// A parsed `--fail-if` check; the check fails when its condition holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// `METRIC [of RUN] OP NUMBER` on the last checkpoint that has the metric.
    Compare {
        /// The metric (and run).
        metric: Operand,
        /// The comparison.
        op: Operator,
        /// The number compared with.
        value: f64,
    },
    /// `METRIC [of RUN] increased|decreased` from the first checkpoint to the last.
    Trend {
        /// The metric (and run).
        metric: Operand,
        /// The direction that fails.
        trend: Trend,
    },
    /// `METRIC of RUN OP METRIC of RUN`: the last values of two runs.
    Between {
        /// The left side.
        left: Operand,
        /// The comparison.
        op: Operator,
        /// The right side.
        right: Operand,
    },
}

/// `METRIC` or `METRIC of RUN` from the start of `words`, and the words after it.
fn operand<'a>(words: &'a [&'a str]) -> Option<(Operand, &'a [&'a str])> {
    match words {
        [metric, "of", run, rest @ ..] => Some((
            Operand {
                metric: metric.to_string(),
                run: Some(run.to_string()),
            },
            rest,
        )),
        [metric, rest @ ..] => Some((
            Operand {
                metric: metric.to_string(),
                run: None,
            },
            rest,
        )),
        [] => None,
    }
}

impl FromStr for Check {
    type Err = TrackError;

    fn from_str(text: &str) -> Result<Check> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let usage = || {
            TrackError::Check(format!(
                "--fail-if '{text}': expected 'METRIC [of RUN] OP NUMBER' (OP one of < <= > >= == !=), 'METRIC [of RUN] increased|decreased' or 'METRIC of RUN OP METRIC of RUN'"
            ))
        };
        let (metric, rest) = operand(&words).ok_or_else(usage)?;
        match rest {
            ["increased"] => Ok(Check::Trend {
                metric,
                trend: Trend::Increased,
            }),
            ["decreased"] => Ok(Check::Trend {
                metric,
                trend: Trend::Decreased,
            }),
            [op, value]
                if value.parse::<f64>().is_ok() || !value.chars().any(char::is_alphabetic) =>
            {
                let op = Operator::parse(op).ok_or_else(usage)?;
                let value = value.parse().map_err(|_| {
                    TrackError::Check(format!("--fail-if '{text}': {value} is not a number"))
                })?;
                Ok(Check::Compare { metric, op, value })
            }
            [op, right @ ..] => {
                let op = Operator::parse(op).ok_or_else(usage)?;
                let (right, after) = operand(right).ok_or_else(usage)?;
                if !after.is_empty() {
                    return Err(usage());
                }
                if metric.run.is_none() || right.run.is_none() {
                    return Err(TrackError::Check(format!(
                        "--fail-if '{text}': a comparison of two metrics names the run of each ('nc1 of supcon < nc1 of simclr')"
                    )));
                }
                Ok(Check::Between {
                    left: metric,
                    op,
                    right,
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
            Check::Between { left, op, right } => write!(f, "{left} {} {right}", op.symbol()),
        }
    }
}

/// One run's series, as a check reads them.
pub struct RunSeries<'a> {
    /// The run's name.
    pub name: &'a str,
    /// Step of each checkpoint.
    pub steps: &'a [f64],
    /// `(metric, value per checkpoint)` columns.
    pub table: &'a [(String, Vec<Option<f64>>)],
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
    /// Evaluate the check on the runs' series: a check without a run applies to every run
    /// and fails when it fails for one.
    pub fn evaluate(&self, runs: &[RunSeries]) -> Result<CheckResult> {
        let (fails, detail) = match self {
            Check::Between { left, op, right } => {
                let (a, a_at) = last_value(self, left, runs)?;
                let (b, b_at) = last_value(self, right, runs)?;
                match (a, b) {
                    (Some(a), Some(b)) => (
                        op.holds(a, b),
                        format!("{left} = {a:.6} at step {a_at}, {right} = {b:.6} at step {b_at}"),
                    ),
                    _ => (false, "a side has no value".into()),
                }
            }
            Check::Compare { metric, .. } | Check::Trend { metric, .. } => {
                let chosen = selected(self, metric, runs)?;
                let mut fails = false;
                let mut details = Vec::new();
                for run in chosen {
                    let (f, d) = self.on_run(metric, run)?;
                    fails |= f;
                    details.push(match runs.len() {
                        1 => d,
                        _ => format!("{}: {d}", run.name),
                    });
                }
                (fails, details.join("; "))
            }
        };
        Ok(CheckResult {
            check: self.to_string(),
            passed: !fails,
            detail,
        })
    }

    /// Whether a comparison or trend fails on one run, and the values it read.
    fn on_run(&self, metric: &Operand, run: &RunSeries) -> Result<(bool, String)> {
        let name = &metric.metric;
        let points = points(self, name, run)?;
        let (Some(&first), Some(&last)) = (points.first(), points.last()) else {
            return Ok((false, format!("{name} has no value")));
        };
        Ok(match self {
            Check::Compare { op, value, .. } => (
                op.holds(last.1, *value),
                format!("{name} = {:.6} at step {}", last.1, last.0),
            ),
            Check::Trend { trend, .. } => {
                let moved = match trend {
                    Trend::Increased => last.1 > first.1,
                    Trend::Decreased => last.1 < first.1,
                };
                (
                    moved,
                    format!(
                        "{name}: {:.6} at step {} -> {:.6} at step {}",
                        first.1, first.0, last.1, last.0
                    ),
                )
            }
            Check::Between { .. } => (false, String::new()),
        })
    }
}

/// The runs an operand names: its run, or every run.
fn selected<'a, 'b>(
    check: &Check,
    operand: &Operand,
    runs: &'a [RunSeries<'b>],
) -> Result<Vec<&'a RunSeries<'b>>> {
    match &operand.run {
        None => Ok(runs.iter().collect()),
        Some(name) => runs
            .iter()
            .find(|r| r.name == name)
            .map(|r| vec![r])
            .ok_or_else(|| {
                let names: Vec<&str> = runs.iter().map(|r| r.name).collect();
                TrackError::Check(format!(
                    "--fail-if '{check}': no run {name}; runs: {}",
                    names.join(", ")
                ))
            }),
    }
}

/// (step, value) of a metric in a run; an unknown metric is an error listing the metrics.
fn points(check: &Check, metric: &str, run: &RunSeries) -> Result<Vec<(f64, f64)>> {
    let (_, values) = run.table.iter().find(|(n, _)| n == metric).ok_or_else(|| {
        let names: Vec<&str> = run.table.iter().map(|(n, _)| n.as_str()).collect();
        TrackError::Check(format!(
            "--fail-if '{check}': no metric {metric}; metrics: {}",
            names.join(", ")
        ))
    })?;
    Ok(run
        .steps
        .iter()
        .zip(values)
        .filter_map(|(&s, v)| v.map(|v| (s, v)))
        .collect())
}

/// The last value of an operand naming one run, and its step.
fn last_value(check: &Check, operand: &Operand, runs: &[RunSeries]) -> Result<(Option<f64>, f64)> {
    let run = selected(check, operand, runs)?[0];
    let last = points(check, &operand.metric, run)?.last().copied();
    Ok((last.map(|p| p.1), last.map_or(f64::NAN, |p| p.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Vec<(String, Vec<Option<f64>>)> {
        vec![("nc1".into(), vec![Some(3.0), None, Some(1.0)])]
    }

    fn one<'a>(steps: &'a [f64], table: &'a [(String, Vec<Option<f64>>)]) -> Vec<RunSeries<'a>> {
        vec![RunSeries {
            name: "run",
            steps,
            table,
        }]
    }

    #[test]
    fn checks_parse_print_and_evaluate() {
        let steps = [0.0, 1.0, 2.0];
        let table = table();
        let runs = one(&steps, &table);
        let check: Check = "nc1 < 2".parse().unwrap();
        assert_eq!(
            check,
            Check::Compare {
                metric: Operand {
                    metric: "nc1".into(),
                    run: None
                },
                op: Operator::Less,
                value: 2.0
            }
        );
        assert_eq!(check.to_string(), "nc1 < 2");
        let result = check.evaluate(&runs).unwrap();
        assert!(!result.passed, "1 < 2 holds, so the check fails");
        assert_eq!(result.detail, "nc1 = 1.000000 at step 2");
        let trend: Check = "nc1 increased".parse().unwrap();
        assert!(trend.evaluate(&runs).unwrap().passed);
        let trend: Check = "nc1 decreased".parse().unwrap();
        assert!(!trend.evaluate(&runs).unwrap().passed);
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
        let table = table();
        let error = check.evaluate(&one(&[0.0], &table)).unwrap_err();
        assert!(error.to_string().contains("no metric rankme; metrics: nc1"));
        assert!(
            "nc1 < nc1 of b".parse::<Check>().is_err(),
            "both sides name a run"
        );
    }

    #[test]
    fn checks_between_runs_compare_their_last_values() {
        let steps = [0.0, 1.0];
        let a = vec![("nc1".to_string(), vec![Some(5.0), Some(1.0)])];
        let b = vec![("nc1".to_string(), vec![Some(5.0), Some(3.0)])];
        let runs = [
            RunSeries {
                name: "supcon",
                steps: &steps,
                table: &a,
            },
            RunSeries {
                name: "simclr",
                steps: &steps,
                table: &b,
            },
        ];
        let check: Check = "nc1 of supcon < nc1 of simclr".parse().unwrap();
        assert_eq!(check.to_string(), "nc1 of supcon < nc1 of simclr");
        let result = check.evaluate(&runs).unwrap();
        assert!(!result.passed, "1 < 3 holds, so the check fails");
        assert_eq!(
            result.detail,
            "nc1 of supcon = 1.000000 at step 1, nc1 of simclr = 3.000000 at step 1"
        );
        let check: Check = "nc1 of supcon > nc1 of simclr".parse().unwrap();
        assert!(check.evaluate(&runs).unwrap().passed);
        // Without a run, every run; with one, that run only.
        let every: Check = "nc1 > 2".parse().unwrap();
        let result = every.evaluate(&runs).unwrap();
        assert!(
            !result.passed && result.detail.starts_with("supcon: nc1 = 1.000000"),
            "{}",
            result.detail
        );
        let one_run: Check = "nc1 of supcon > 2".parse().unwrap();
        assert!(one_run.evaluate(&runs).unwrap().passed);
        let unknown: Check = "nc1 of byol > 2".parse().unwrap();
        let error = unknown.evaluate(&runs).unwrap_err().to_string();
        assert!(
            error.contains("no run byol; runs: supcon, simclr"),
            "{error}"
        );
    }
}
