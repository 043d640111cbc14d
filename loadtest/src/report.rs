//! A run's results three ways: a human summary, a JSON report (the stable format scripts read),
//! and an SVG latency-by-percentile plot (x: percentile on a "nines" scale, y: milliseconds).

use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::cpu::GeneratorUse;
use crate::stats::Stats;

pub const PERCENTILES: [(&str, f64); 5] = [
    ("p50", 0.50),
    ("p90", 0.90),
    ("p99", 0.99),
    ("p999", 0.999),
    ("max", 1.0),
];

pub struct Report {
    pub label: String,
    pub mode: String,
    pub connections: usize,
    pub elapsed: Duration,
    pub stats: Stats,
    /// The generator's CPU over the run.
    pub generator: Option<GeneratorUse>,
}

fn quantile_us(h: &Histogram<u64>, q: f64) -> u64 {
    if q >= 1.0 {
        h.max()
    } else {
        h.value_at_quantile(q)
    }
}

fn latency_json(h: &Histogram<u64>) -> Value {
    let mut m = serde_json::Map::new();
    for (name, q) in PERCENTILES {
        m.insert(name.into(), json!(quantile_us(h, q)));
    }
    m.insert("mean".into(), json!(h.mean().round() as u64));
    Value::Object(m)
}

impl Report {
    pub fn requests(&self) -> u64 {
        self.stats.total().len()
    }

    pub fn throughput(&self) -> f64 {
        self.requests() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The generator's threads were within 10 % of saturation: the throughput may be its own.
    pub fn generator_bound(&self) -> bool {
        self.generator.is_some_and(|g| g.bound())
    }

    /// "generator 1 thread at 63 % CPU, ceiling ≈ 142 000 req/s" (or that it was not measured).
    pub fn generator_summary(&self) -> String {
        match self.generator {
            Some(g) => format!(
                "generator {} thread{} at {:.0} % CPU, ceiling ≈ {:.0} req/s{}",
                g.threads,
                if g.threads == 1 { "" } else { "s" },
                g.share() * 100.0,
                g.ceiling(self.throughput()),
                if g.bound() { " (generator-bound)" } else { "" }
            ),
            None => "generator CPU not measured".into(),
        }
    }

    pub fn json(&self) -> Value {
        let total = self.stats.total();
        let steps: serde_json::Map<String, Value> = self
            .stats
            .steps
            .iter()
            .map(|(name, h)| {
                (
                    name.to_string(),
                    json!({
                        "requests": h.len(),
                        "throughput_rps": h.len() as f64 / self.elapsed.as_secs_f64().max(1e-9),
                        "latency_us": latency_json(h),
                    }),
                )
            })
            .collect();
        json!({
            "label": self.label,
            "mode": self.mode,
            "connections": self.connections,
            "elapsed_s": self.elapsed.as_secs_f64(),
            "requests": total.len(),
            "throughput_rps": self.throughput(),
            "latency_us": latency_json(&total),
            "steps": steps,
            "errors": self.stats.errors,
            "error_count": self.stats.error_count(),
            "timeline": self.timeline_json(),
            "signatures_verified": self.stats.verified,
            "generator": self.generator.map(|g| json!({
                "threads": g.threads,
                "cpu_s": g.cpu.as_secs_f64(),
                "cpu_share": g.share(),
                "ceiling_rps": g.ceiling(self.throughput()),
                "bound": g.bound(),
            })),
        })
    }

    /// Per second of the run: requests sent in it, errors, and their latency (coarse: ±5 %).
    fn timeline_json(&self) -> Value {
        self.stats
            .timeline
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let h = &s.latency;
                let q = |q: f64| {
                    if h.is_empty() {
                        0
                    } else {
                        h.value_at_quantile(q)
                    }
                };
                json!({
                    "second": i,
                    "requests": h.len(),
                    "errors": s.errors,
                    "p50_us": q(0.5),
                    "p99_us": q(0.99),
                    "max_us": h.max(),
                })
            })
            .collect()
    }

    /// The seconds that saw requests: (second, p99 ms, max ms).
    fn busy_seconds(&self) -> impl Iterator<Item = (usize, f64, f64)> + '_ {
        let ms = |us: u64| us as f64 / 1000.0;
        self.stats
            .timeline
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.latency.is_empty())
            .map(move |(i, s)| {
                (
                    i,
                    ms(s.latency.value_at_quantile(0.99)),
                    ms(s.latency.max()),
                )
            })
    }

    /// Each full second's p99 in ms (the last, partial second left out).
    pub fn p99_by_second_ms(&self) -> Vec<f64> {
        let full = self.elapsed.as_secs() as usize;
        self.busy_seconds()
            .filter(|(i, _, _)| *i < full)
            .map(|(_, p99, _)| p99)
            .collect()
    }

    /// The seconds whose p99 was the highest, worst first: where a tail came from.
    fn worst_seconds(&self, n: usize) -> Vec<(usize, f64, f64)> {
        let mut seconds: Vec<_> = self.busy_seconds().collect();
        seconds.sort_by(|a, b| b.1.total_cmp(&a.1));
        seconds.truncate(n);
        seconds
    }

    pub fn human(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{}: {} requests in {:.2}s = {:.0} req/s ({}, {} connections), {} errors",
            self.label,
            self.requests(),
            self.elapsed.as_secs_f64(),
            self.throughput(),
            self.mode,
            self.connections,
            self.stats.error_count()
        );
        let _ = writeln!(out, "  {}", self.generator_summary());
        if self.stats.verified > 0 {
            let _ = writeln!(
                out,
                "  signatures verified: {} of {} answers",
                self.stats.verified,
                self.requests()
            );
        }
        let _ = writeln!(
            out,
            "  {:<12} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9}   (ms)",
            "step", "requests", "p50", "p90", "p99", "p99.9", "max"
        );
        let mut rows: Vec<(String, Histogram<u64>)> = self
            .stats
            .steps
            .iter()
            .map(|(n, h)| (n.to_string(), h.clone()))
            .collect();
        if rows.len() > 1 {
            rows.push(("all".into(), self.stats.total()));
        }
        for (name, h) in rows {
            let ms = |q| quantile_us(&h, q) as f64 / 1000.0;
            let _ = writeln!(
                out,
                "  {:<12} {:>10} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
                name,
                h.len(),
                ms(0.5),
                ms(0.9),
                ms(0.99),
                ms(0.999),
                ms(1.0)
            );
        }
        let worst = self.worst_seconds(3);
        if self.stats.timeline.len() > 1 && !worst.is_empty() {
            let list: Vec<String> = worst
                .iter()
                .map(|(i, p99, max)| format!("{i} s (p99 {p99:.3}, max {max:.3})"))
                .collect();
            let _ = writeln!(out, "  worst seconds: {}", list.join(", "));
        }
        if !self.stats.errors.is_empty() {
            let list: Vec<String> = self
                .stats
                .errors
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            let _ = writeln!(out, "  errors: {}", list.join(", "));
        }
        out
    }

    /// Latency by percentile, one line per step (and all steps), log-scaled on "nines".
    pub fn svg(&self) -> String {
        const W: f64 = 800.0;
        const H: f64 = 420.0;
        const LEFT: f64 = 70.0;
        const BOTTOM: f64 = 50.0;
        const TOP: f64 = 40.0;
        const RIGHT: f64 = 220.0;
        const MAX_NINES: f64 = 5.0; // 99.999 %
        let mut series: Vec<(String, Histogram<u64>)> = self
            .stats
            .steps
            .iter()
            .map(|(n, h)| (n.to_string(), h.clone()))
            .collect();
        if series.len() > 1 {
            series.push(("all".into(), self.stats.total()));
        }
        let y_max_ms = series
            .iter()
            .map(|(_, h)| h.max() as f64 / 1000.0)
            .fold(0.001_f64, f64::max)
            * 1.1;
        let x = |nines: f64| LEFT + (W - LEFT - RIGHT) * (nines / MAX_NINES);
        let y = |ms: f64| H - BOTTOM - (H - TOP - BOTTOM) * (ms / y_max_ms);
        let colors = [
            "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#111111",
        ];
        let mut s = String::new();
        let _ = write!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/>"#
        );
        let _ = write!(
            s,
            r#"<text x="{LEFT}" y="22" font-size="14">{} — {:.0} req/s, {} requests, {} errors</text>"#,
            xml(&self.label),
            self.throughput(),
            self.requests(),
            self.stats.error_count()
        );
        for (i, label) in ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]
            .iter()
            .enumerate()
        {
            let px = x(i as f64);
            let _ = write!(
                s,
                r##"<line x1="{px:.1}" y1="{TOP}" x2="{px:.1}" y2="{:.1}" stroke="#ddd"/><text x="{px:.1}" y="{:.1}" text-anchor="middle">{label}</text>"##,
                H - BOTTOM,
                H - BOTTOM + 18.0
            );
        }
        for i in 0..=4 {
            let ms = y_max_ms * f64::from(i) / 4.0;
            let py = y(ms);
            let _ = write!(
                s,
                r##"<line x1="{LEFT}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}" stroke="#eee"/><text x="{:.1}" y="{:.1}" text-anchor="end">{ms:.2}</text>"##,
                W - RIGHT,
                LEFT - 6.0,
                py + 4.0
            );
        }
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">percentile</text><text x="16" y="{:.1}" transform="rotate(-90 16 {:.1})" text-anchor="middle">latency (ms)</text>"#,
            (LEFT + W - RIGHT) / 2.0,
            H - 12.0,
            (TOP + H - BOTTOM) / 2.0,
            (TOP + H - BOTTOM) / 2.0
        );
        for (i, (name, h)) in series.iter().enumerate() {
            let color = colors[i % colors.len()];
            let mut points = Vec::new();
            let steps = 100;
            for k in 0..=steps {
                let nines = MAX_NINES * f64::from(k) / f64::from(steps);
                let q = 1.0 - 10f64.powf(-nines);
                let ms = quantile_us(h, q.min(1.0)) as f64 / 1000.0;
                points.push(format!("{:.1},{:.1}", x(nines), y(ms)));
            }
            let _ = write!(
                s,
                r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
                points.join(" ")
            );
            let ly = TOP + 18.0 * i as f64;
            let _ = write!(
                s,
                r#"<rect x="{:.1}" y="{:.1}" width="12" height="3" fill="{color}"/><text x="{:.1}" y="{:.1}">{} (p99 {:.2} ms)</text>"#,
                W - RIGHT + 12.0,
                ly,
                W - RIGHT + 28.0,
                ly + 5.0,
                xml(name),
                quantile_us(h, 0.99) as f64 / 1000.0
            );
        }
        s.push_str("</svg>\n");
        s
    }
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        let t0 = std::time::Instant::now();
        let sink = std::sync::Arc::new(crate::stats::Timeline::default());
        let mut stats = Stats::default();
        stats.start_clock(t0, sink.clone());
        // One request every 20 ms over two seconds; the slowest in the second.
        for ms in 1..=100 {
            let sent = t0 + Duration::from_millis(20 * (ms - 1));
            stats.record("check", sent, Duration::from_millis(ms));
        }
        stats.record("init", t0, Duration::from_millis(5));
        stats.error(crate::stats::ErrorKind::Timeout);
        stats.stop_clock();
        stats.timeline = sink.seconds();
        Report {
            label: "validator <a&b>".into(),
            mode: "closed".into(),
            connections: 8,
            elapsed: Duration::from_secs(2),
            stats,
            generator: Some(GeneratorUse {
                threads: 1,
                cpu: Duration::from_millis(1900),
                elapsed: Duration::from_secs(2),
            }),
        }
    }

    #[test]
    fn json_report_has_the_documented_shape() {
        let j = report().json();
        assert_eq!(j["requests"], 101);
        assert_eq!(j["connections"], 8);
        assert!((j["throughput_rps"].as_f64().unwrap() - 50.5).abs() < 1e-9);
        let check = &j["steps"]["check"]["latency_us"];
        assert!((49_000..=51_000).contains(&check["p50"].as_u64().unwrap()));
        assert!((98_000..=100_500).contains(&check["p99"].as_u64().unwrap()));
        assert!(check["max"].as_u64().unwrap() >= 99_900);
        assert_eq!(j["errors"]["timeout"], 1);
        assert_eq!(j["error_count"], 1);
        assert_eq!(j["generator"]["bound"], true);
        assert!((j["generator"]["cpu_share"].as_f64().unwrap() - 0.95).abs() < 1e-9);
        for key in ["p50", "p90", "p99", "p999", "max", "mean"] {
            assert!(j["latency_us"][key].is_u64(), "{key}");
        }
        let timeline = j["timeline"].as_array().unwrap();
        assert_eq!(timeline.len(), 2);
        assert_eq!(timeline[0]["second"], 0);
        assert_eq!(timeline[0]["requests"], 51);
        assert_eq!(timeline[1]["requests"], 50);
        // Coarse histograms: within 5 % of the true 100 ms.
        let max = timeline[1]["max_us"].as_u64().unwrap();
        assert!((95_000..=105_000).contains(&max), "{max}");
        assert!(timeline[0]["p99_us"].as_u64().unwrap() < 55_000);
        let by_second = report().p99_by_second_ms();
        assert_eq!(by_second.len(), 2);
        assert!(by_second[0] < by_second[1], "{by_second:?}");
    }

    #[test]
    fn human_summary_and_svg_name_every_step() {
        let r = report();
        let h = r.human();
        assert!(h.contains("101 requests"), "{h}");
        assert!(h.contains("check") && h.contains("init") && h.contains("all"));
        assert!(h.contains("timeout: 1"));
        assert!(h.contains("generator 1 thread at 95 % CPU"), "{h}");
        assert!(h.contains("(generator-bound)"), "{h}");
        assert!(h.contains("worst seconds: 1 s (p99 "), "{h}");
        let svg = r.svg();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 3);
        assert!(svg.contains("validator &lt;a&amp;b&gt;"));
        assert!(svg.contains("99.999%"));
    }
}
