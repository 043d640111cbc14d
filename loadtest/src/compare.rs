//! Measured runs and A/B comparisons. A, B, A, B, …: interleaving spreads drift (thermal, other
//! load) over both sides. B is the reference (the bare baseline, the faster side): when the
//! generator ran B within 10 % of its own ceiling, B's throughput is the generator's and so is
//! the ratio, and the comparison says "generator-bound" instead of giving a result.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::engine::{self, Live, LoadConfig, Mode, Target};
use crate::report::Report;
use crate::scenario::Scenario;

/// One run against `url`, reported; with `progress`, a live line on stderr while it runs.
pub async fn measure(
    url: &str,
    scenario: &Scenario,
    cfg: &LoadConfig,
    label: &str,
    progress: bool,
) -> anyhow::Result<Report> {
    let target = Target::parse(url)?;
    let live = Arc::new(Live::default());
    let display =
        progress.then(|| crate::progress::start(live.clone(), cfg.duration, label.into()));
    let outcome = engine::run(&target, scenario, cfg, live).await;
    if let Some(display) = display {
        display.finish().await;
    }
    let outcome = outcome?;
    Ok(Report {
        label: label.to_string(),
        mode: match cfg.mode {
            Mode::Closed => "closed loop".into(),
            Mode::Open { rate } => format!("open loop at {rate:.0} req/s"),
        },
        connections: cfg.connections,
        elapsed: outcome.elapsed,
        stats: outcome.stats,
        generator: outcome.generator,
    })
}

pub struct Pair {
    pub a: Report,
    pub b: Report,
}

impl Pair {
    pub fn ratio(&self) -> f64 {
        self.a.throughput() / self.b.throughput().max(1e-9)
    }
}

pub struct Comparison {
    pub pairs: Vec<Pair>,
}

fn list(v: impl Iterator<Item = f64>, digits: usize) -> String {
    v.map(|x| format!("{x:.digits$}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Comparison {
    pub fn ratios(&self) -> Vec<f64> {
        self.pairs.iter().map(Pair::ratio).collect()
    }

    pub fn median_ratio(&self) -> f64 {
        crate::stats::median(&mut self.ratios())
    }

    /// B's generator CPU shares, one per pair (those that were measured).
    fn b_shares(&self) -> Vec<f64> {
        self.pairs
            .iter()
            .filter_map(|p| p.b.generator.map(|g| g.share()))
            .collect()
    }

    /// The generator's ceiling while it ran B, median over the pairs.
    pub fn b_ceiling(&self) -> Option<f64> {
        let mut v: Vec<f64> = self
            .pairs
            .iter()
            .filter_map(|p| p.b.generator.map(|g| g.ceiling(p.b.throughput())))
            .collect();
        (!v.is_empty()).then(|| crate::stats::median(&mut v))
    }

    /// The median B ran within 10 % of the generator's ceiling. Unmeasured CPU counts as bound:
    /// a ratio is a result only when the generator is shown not to have set it.
    pub fn generator_bound(&self) -> bool {
        let mut shares = self.b_shares();
        shares.is_empty() || crate::stats::median(&mut shares) >= crate::cpu::BOUND_SHARE
    }

    /// "measured" or "generator-bound".
    pub fn verdict(&self) -> &'static str {
        if self.generator_bound() {
            "generator-bound"
        } else {
            "measured"
        }
    }

    /// The ratios, their median, the generator's CPU and ceiling on B, and the verdict.
    pub fn summary(&self) -> String {
        let ceiling = self
            .b_ceiling()
            .map_or("not measured".into(), |c| format!("≈ {c:.0} req/s"));
        format!(
            "ratios {} → median {:.2}; generator CPU on B {} % (ceiling {ceiling}), on A {} %: {}",
            list(self.ratios().into_iter(), 2),
            self.median_ratio(),
            list(self.b_shares().into_iter().map(|s| s * 100.0), 0),
            list(
                self.pairs
                    .iter()
                    .filter_map(|p| p.a.generator.map(|g| g.share() * 100.0)),
                0
            ),
            self.verdict()
        )
    }

    pub fn json(&self) -> Value {
        json!({
            "pairs": self.pairs.iter().map(|p| json!({
                "a": p.a.json(),
                "b": p.b.json(),
                "ratio": p.ratio(),
            })).collect::<Vec<_>>(),
            "median_ratio": self.median_ratio(),
            "generator_ceiling_rps": self.b_ceiling(),
            "generator_bound": self.generator_bound(),
        })
    }
}

/// `pairs` A/B pairs of one scenario; each pair's line on stderr as it completes.
pub async fn run(
    a: &str,
    b: &str,
    scenario: &Scenario,
    cfg: &LoadConfig,
    pairs: usize,
    label: &str,
    progress: bool,
) -> anyhow::Result<Comparison> {
    let mut out = Comparison { pairs: Vec::new() };
    for i in 1..=pairs.max(1) {
        let ra = measure(a, scenario, cfg, &format!("{label} A#{i}"), progress).await?;
        let rb = measure(b, scenario, cfg, &format!("{label} B#{i}"), progress).await?;
        eprint!("{}{}", ra.human(), rb.human());
        let pair = Pair { a: ra, b: rb };
        eprintln!(
            "{label} pair {i}: A {:.0} req/s, B {:.0} req/s, A/B {:.3}; {}",
            pair.a.throughput(),
            pair.b.throughput(),
            pair.ratio(),
            pair.b.generator_summary()
        );
        out.pairs.push(pair);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::GeneratorUse;
    use std::time::Duration;

    fn report(requests: u64, cpu_ms: u64) -> Report {
        let mut stats = crate::stats::Stats::default();
        let mut h = crate::stats::histogram();
        h.record_n(100, requests).unwrap();
        stats.steps.insert("validate", h);
        Report {
            label: "r".into(),
            mode: "closed loop".into(),
            connections: 1,
            elapsed: Duration::from_secs(1),
            stats,
            generator: Some(GeneratorUse {
                threads: 1,
                cpu: Duration::from_millis(cpu_ms),
                elapsed: Duration::from_secs(1),
            }),
        }
    }

    #[test]
    fn a_reference_near_the_generators_ceiling_makes_the_ratio_generator_bound() {
        let measured = Comparison {
            pairs: vec![
                Pair {
                    a: report(80, 500),
                    b: report(100, 600),
                },
                Pair {
                    a: report(90, 500),
                    b: report(100, 950),
                },
                Pair {
                    a: report(85, 500),
                    b: report(100, 700),
                },
            ],
        };
        assert!((measured.median_ratio() - 0.85).abs() < 1e-9);
        assert!(!measured.generator_bound());
        // Median B share 70 %: ceiling 100 / 0.7.
        assert!((measured.b_ceiling().unwrap() - 100.0 / 0.7).abs() < 1e-6);
        assert!(
            measured.summary().ends_with(": measured"),
            "{}",
            measured.summary()
        );

        let bound = Comparison {
            pairs: vec![
                Pair {
                    a: report(99, 900),
                    b: report(100, 960),
                },
                Pair {
                    a: report(98, 900),
                    b: report(100, 920),
                },
            ],
        };
        assert!(bound.generator_bound());
        assert_eq!(bound.verdict(), "generator-bound");
        assert_eq!(bound.json()["generator_bound"], true);
    }
}
