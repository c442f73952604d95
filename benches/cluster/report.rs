//! The report: RESULTS.md, the plot, the machine.

use super::*;

pub(crate) fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let rank = (p / 100.0 * (s.len() - 1) as f64).round() as usize;
    s[rank.min(s.len() - 1)]
}

/// "median [min–max]" of a series.
pub(crate) fn spread(v: &[f64], digits: usize) -> String {
    if v.is_empty() {
        return "–".into();
    }
    let (lo, hi) = (percentile(v, 0.0), percentile(v, 100.0));
    if v.len() == 1 {
        format!("{:.*}", digits, v[0])
    } else {
        format!("{:.*} [{:.*}–{:.*}]", digits, percentile(v, 50.0), digits, lo, digits, hi)
    }
}

pub(crate) fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpu.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split(':').nth(1)).unwrap_or("?");
    let mem = proc_meminfo_gib();
    json!({
        "cpu": model.trim(),
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "memory_gib": mem,
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
    })
}

pub(crate) fn proc_meminfo_gib() -> f64 {
    let m = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    m.lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map(|kib| (kib / 1024.0 / 1024.0 * 10.0).round() / 10.0)
        .unwrap_or(0.0)
}

/// One row: scenario, measure, and each controller's cell.
pub(crate) type Row<'a> = dyn FnMut(&str, &str, &dyn Fn(&SubjectResult) -> String) + 'a;

/// The results table: a column per controller, and ours ÷ Reloader when both ran.
pub(crate) fn table(results: &[SubjectResult], rows: &mut dyn FnMut(&mut Row)) -> String {
    let mut md = String::new();
    let mut names: Vec<&str> = results.iter().map(|r| r.name.as_str()).collect();
    let ratios = results.len() == 2;
    if ratios {
        names.push("ours ÷ Reloader");
    }
    md.push_str(&format!("| scenario | measure | {} |\n", names.join(" | ")));
    md.push_str(&format!("|---|---|{}\n", "---|".repeat(names.len())));
    let mut row = |scenario: &str, measure: &str, f: &dyn Fn(&SubjectResult) -> String| {
        let mut cells: Vec<String> = results.iter().map(f).collect();
        if ratios {
            cells.push(ratio(&cells[0], &cells[1]));
        }
        md.push_str(&format!("| {scenario} | {measure} | {} |\n", cells.join(" | ")));
    };
    rows(&mut row);
    md
}

/// The rows of scenario 1, for RESULTS.md and `--only scale` (which also samples the RSS
/// later: `late`).
pub(crate) fn scale_rows(row: &mut Row, late: bool) {
    let col = |f: fn(&ScaleRun) -> f64, d: usize| {
        move |r: &SubjectResult| spread(&r.scale.iter().map(f).collect::<Vec<_>>(), d)
    };
    row("1 scale", "time to ready (s)", &col(|s| s.ready_s, 2));
    row("1 scale", "RSS after sync (MiB)", &col(|s| s.rss_steady_mib, 1));
    row("1 scale", "RSS peak (MiB)", &col(|s| s.rss_peak_mib, 1));
    if late {
        row("1 scale", "RSS 320 s after ready, the initial watches ended (MiB)", &|r| {
            spread(&r.scale.iter().filter_map(|s| s.rss_late_mib).collect::<Vec<_>>(), 1)
        });
    }
    row("1 scale", "CPU time to ready (s)", &col(|s| s.cpu_at_ready_s, 2));
    row("1 scale", "LIST / WATCH requests during sync", &|r| {
        let l: Vec<f64> = r.scale.iter().map(|s| s.requests_during_sync.count("list") as f64).collect();
        let w: Vec<f64> = r.scale.iter().map(|s| s.requests_during_sync.count("watch") as f64).collect();
        format!("{} / {}", spread(&l, 0), spread(&w, 0))
    });
    row("1 scale", "workload writes during sync, per start (first = adoption)", &|r| {
        r.scale.iter().map(|s| s.requests_during_sync.workload_writes().to_string()).collect::<Vec<_>>().join(", ")
    });
}

/// The rows of scenario 3, for RESULTS.md and `--only fanout`.
pub(crate) fn fanout_rows(row: &mut Row) {
    let counts = |v: &[usize]| spread(&v.iter().map(|n| *n as f64).collect::<Vec<_>>(), 0);
    row("3 fan-out", "time until all patched (s)", &|r| spread(&r.fanout_s, 2));
    row("3 fan-out", "workload writes per change (reloads; outcome notes apart)", &|r| counts(&r.fanout_patches));
    row("3 fan-out", "outcome-note writes per change", &|r| counts(&r.fanout_outcomes));
    row("3 fan-out", "requests refused with 429 per change", &|r| counts(&r.fanout_throttled));
}

/// The requests sent in scenarios 2–5 (`--only requests` runs just those).
pub(crate) fn request_rows(row: &mut Row) {
    row("–", "LIST requests after the initial sync (streaming lists included)", &|r| r.lists_after_sync.to_string());
    row("–", "outcome-note writes after the initial sync (in the PATCH count below)", &|r| {
        r.requests_after_sync.outcome_writes.to_string()
    });
    row("–", "PATCH / UPDATE / all requests after the initial sync", &|r| {
        let q = &r.requests_after_sync;
        format!("{} / {} / {}", q.count("patch"), q.count("update"), q.total())
    });
    row("–", "missed reloads (30 s timeout)", &|r| r.missed.len().to_string());
}

pub(crate) fn markdown(results: &[SubjectResult], meta: &Value) -> String {
    let mut md = String::new();
    md.push_str("# Benchmark results\n\n");
    md.push_str(&format!(
        "Command: `{}`  \nMachine: {} ({} cores, {} GiB), kernel {}; Kubernetes {} on the local control plane.  \n",
        meta["command"].as_str().unwrap_or(""),
        meta["machine"]["cpu"].as_str().unwrap_or(""),
        meta["machine"]["cores"],
        meta["machine"]["memory_gib"],
        meta["machine"]["kernel"].as_str().unwrap_or(""),
        meta["kubernetes"].as_str().unwrap_or(""),
    ));
    md.push_str(&format!("Sizes: `{}`; repeats: {}.\n\n", meta["sizes"], meta["repeat"]));
    md.push_str("Values are median [min–max] over the repeats; latency is p50 / p95 / p99 over all updates.\n\n");
    md.push_str(&table(results, &mut |row: &mut Row| {
        scale_rows(row, false);
        let variants: Vec<String> = {
            let mut v: Vec<String> = Vec::new();
            for k in results.iter().flat_map(|r| r.latency_ms.keys()) {
                if !v.contains(k) {
                    v.push(k.clone());
                }
            }
            v
        };
        for variant in &variants {
            row("2 latency", &format!("p50 / p95 / p99 (ms), {variant}"), &|r| match r.latency_ms.get(variant) {
                Some(v) => {
                    format!("{:.0} / {:.0} / {:.0}", percentile(v, 50.0), percentile(v, 95.0), percentile(v, 99.0))
                }
                None => "–".into(),
            });
        }
        fanout_rows(row);
        row("4 burst", "rollouts for 5 changes", &|r| {
            spread(&r.burst_rollouts.iter().map(|n| *n as f64).collect::<Vec<_>>(), 0)
        });
        row("4 burst", "spread of the 5 updates (ms)", &|r| spread(&r.burst_spread_ms, 0));
        row("5 no-op", "workload writes / template changes / outcome notes of earlier rollouts", &|r| {
            format!("{} / {} / {}", r.noop_workload_writes, r.noop_template_changes, r.noop_outcome_writes)
        });
        row("6 restart", "rollouts / workload writes / outcome notes of earlier rollouts", &|r| {
            format!("{} / {} / {}", r.restart_rollouts, r.restart_workload_writes, r.restart_outcome_writes)
        });
        row("6 down", "of 20 sources changed while it was stopped: workloads rolled / rollouts after start", &|r| {
            format!("{} / {}", r.down_rolled, r.down_rollouts)
        });
        row("7 churn", "RSS after each round (MiB)", &|r| {
            r.churn_rss_mib.iter().map(|v| format!("{v:.1}")).collect::<Vec<_>>().join(" → ")
        });
        row("7 churn", "heap in use after each round (MiB)", &|r| {
            r.churn_heap_mib.iter().map(|v| format!("{v:.1}")).collect::<Vec<_>>().join(" → ")
        });
        row("8 large objects", "p50 / p95 / p99 (ms), one 100–1000 KiB ConfigMap changed at a time", &|r| {
            let v = &r.large_latency_ms;
            format!("{:.0} / {:.0} / {:.0}", percentile(v, 50.0), percentile(v, 95.0), percentile(v, 99.0))
        });
        row("8 large objects", "RSS before / after the changes (MiB)", &|r| {
            format!("{:.1} / {:.1}", r.large_rss_mib.0, r.large_rss_mib.1)
        });
        row("9 API pressure", "writes (concurrent writers, each one a second)", &|r| r.pressure_changes.to_string());
        row("9 API pressure", "p50 / p99 (ms), write to its workload's next rollout", &|r| {
            let v = &r.pressure_latency_ms;
            format!("{:.0} / {:.0}", percentile(v, 50.0), percentile(v, 99.0))
        });
        row("9 API pressure", "rollouts per workload, median / max", &|r| {
            let v: Vec<f64> = r.pressure_rollouts.iter().map(|n| *n as f64).collect();
            format!("{:.0} / {:.0}", percentile(&v, 50.0), percentile(&v, 100.0))
        });
        row("9 API pressure", "rollouts per write", &|r| {
            let rollouts: usize = r.pressure_rollouts.iter().sum();
            format!("{:.2}", rollouts as f64 / r.pressure_changes.max(1) as f64)
        });
        row("9 API pressure", "last rollout after the writes stopped (s) / workloads converged", &|r| {
            format!("{:.1} / {}", r.pressure_drain_s, r.pressure_converged)
        });
        row("10 mixed kinds", &format!("of {} source changes: rolled / max latency (ms)", MIXED.len()), &|r| {
            format!("{} / {:.0}", r.mixed_latency_ms.len(), percentile(&r.mixed_latency_ms, 100.0))
        });
        let spread_ns = meta["sizes"]["spread_namespaces"].as_u64().unwrap_or(0);
        let sp = |f: fn(&ScaleRun) -> f64, d: usize| {
            move |r: &SubjectResult| r.spread.as_ref().map_or("–".into(), |x| format!("{:.*}", d, f(x)))
        };
        let many = format!("11 {spread_ns} namespaces");
        row(&many, "time to ready (s)", &sp(|s| s.ready_s, 2));
        row(&many, "RSS after sync / peak (MiB)", &|r| {
            r.spread.as_ref().map_or("–".into(), |x| format!("{:.1} / {:.1}", x.rss_steady_mib, x.rss_peak_mib))
        });
        row(&many, "CPU time to ready (s)", &sp(|s| s.cpu_at_ready_s, 2));
        row(&many, "LIST / WATCH requests during sync", &|r| {
            r.spread.as_ref().map_or("–".into(), |x| {
                format!("{} / {}", x.requests_during_sync.count("list"), x.requests_during_sync.count("watch"))
            })
        });
        row(&many, "p50 / p99 (ms), one change at a time, each in another namespace", &|r| {
            let v = &r.spread_latency_ms;
            format!("{:.0} / {:.0}", percentile(v, 50.0), percentile(v, 99.0))
        });
        request_rows(row);
        sustained_rows(row);
    }));
    if results.len() == 1 {
        md.push_str(
            "\nOnly this project's controller ran: no Stakater Reloader binary was given (`make bench \
             RELOADER_BIN=...`), so there are no ratios. See bench/README.md.\n",
        );
    }
    md.push_str("\n![latency and memory](plot.svg)\n");
    md
}

/// Ours ÷ Reloader for each " / "-separated figure of two cells (the median of a spread, the
/// last value of a "→" series); "–" where either is missing or Reloader's is 0.
pub(crate) fn ratio(ours: &str, theirs: &str) -> String {
    fn value(part: &str) -> Option<f64> {
        let last = part.rsplit('→').next()?.trim();
        last.split([' ', ',']).next()?.parse::<f64>().ok()
    }
    let (a, b): (Vec<&str>, Vec<&str>) = (ours.split(" / ").collect(), theirs.split(" / ").collect());
    if a.len() != b.len() {
        return "–".into();
    }
    let parts: Vec<String> = a
        .iter()
        .zip(&b)
        .map(|(x, y)| match (value(x), value(y)) {
            (Some(x), Some(y)) if y != 0.0 => format!("{:.2}×", x / y),
            _ => "–".into(),
        })
        .collect();
    parts.join(" / ")
}

/// Latency CDFs (left) and memory bars (right), as a plain SVG.
pub(crate) fn svg(results: &[SubjectResult]) -> String {
    let colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"];
    let (w, h, pad) = (900.0, 360.0, 50.0);
    let mut s = format!(
        "<svg xmlns='http://www.w3.org/2000/svg' width='{w}' height='{h}' font-family='sans-serif' font-size='12'>\n\
         <rect width='100%' height='100%' fill='white'/>\n"
    );
    // Left panel: CDF of latency.
    let series: Vec<(String, &Vec<f64>)> =
        results.iter().flat_map(|r| r.latency_ms.iter().map(move |(k, v)| (format!("{} ({k})", r.name), v))).collect();
    let max_ms = series.iter().flat_map(|(_, v)| v.iter().copied()).fold(1.0_f64, f64::max);
    let (x0, x1, y0, y1) = (pad, w / 2.0 + 100.0, h - pad, pad);
    s.push_str(&format!(
        "<text x='{x0}' y='20' font-weight='bold'>Reload latency, CDF (ms)</text>\n\
         <line x1='{x0}' y1='{y0}' x2='{x1}' y2='{y0}' stroke='black'/><line x1='{x0}' y1='{y0}' x2='{x0}' y2='{y1}' stroke='black'/>\n\
         <text x='{x1}' y='{}' text-anchor='end'>{max_ms:.0} ms</text><text x='{x0}' y='{}'>0</text>\n\
         <text x='{}' y='{}' text-anchor='end'>100 %</text>\n",
        y0 + 15.0,
        y0 + 15.0,
        x0 - 5.0,
        y1 + 4.0
    ));
    for q in 1..4 {
        let x = x0 + q as f64 / 4.0 * (x1 - x0);
        s.push_str(&format!(
            "<line x1='{x:.1}' y1='{y0}' x2='{x:.1}' y2='{}' stroke='black'/>\n\
             <text x='{x:.1}' y='{}' text-anchor='middle'>{:.0}</text>\n",
            y0 + 4.0,
            y0 + 15.0,
            max_ms * q as f64 / 4.0
        ));
    }
    for (i, (label, v)) in series.iter().enumerate() {
        let mut sorted = v.to_vec();
        sorted.sort_by(f64::total_cmp);
        let pts: Vec<String> = sorted
            .iter()
            .enumerate()
            .map(|(k, ms)| {
                let x = x0 + ms / max_ms * (x1 - x0);
                let y = y0 - (k + 1) as f64 / sorted.len() as f64 * (y0 - y1);
                format!("{x:.1},{y:.1}")
            })
            .collect();
        let c = colors[i % colors.len()];
        s.push_str(&format!(
            "<polyline fill='none' stroke='{c}' stroke-width='2' points='{}'/>\n\
             <text x='{}' y='{}' fill='{c}'>{}</text>\n",
            pts.join(" "),
            x0 + 10.0,
            y1 + 15.0 * (i + 1) as f64,
            xml(label)
        ));
    }
    // Right panel: memory.
    let (bx0, by0, by1) = (w / 2.0 + 160.0, h - pad, pad);
    let max_mib = results.iter().flat_map(|r| r.scale.iter().map(|x| x.rss_peak_mib)).fold(1.0_f64, f64::max);
    s.push_str(&format!("<text x='{bx0}' y='20' font-weight='bold'>Memory at scale (MiB)</text>\n"));
    for (i, r) in results.iter().enumerate() {
        let steady = percentile(&r.scale.iter().map(|x| x.rss_steady_mib).collect::<Vec<_>>(), 50.0);
        let peak = percentile(&r.scale.iter().map(|x| x.rss_peak_mib).collect::<Vec<_>>(), 50.0);
        let c = colors[i % colors.len()];
        for (j, (what, v)) in [("after sync", steady), ("peak", peak)].into_iter().enumerate() {
            let x = bx0 + (i * 2 + j) as f64 * 60.0;
            let bh = if v.is_nan() { 0.0 } else { v / max_mib * (by0 - by1) };
            let opacity = if j == 0 { "1" } else { "0.5" };
            s.push_str(&format!(
                "<rect x='{x}' y='{}' width='45' height='{bh:.1}' fill='{c}' fill-opacity='{opacity}'/>\n\
                 <text x='{}' y='{}' text-anchor='middle'>{v:.1}</text>\n\
                 <text x='{}' y='{}' text-anchor='middle' font-size='10'>{what}</text>\n",
                by0 - bh,
                x + 22.5,
                by0 - bh - 4.0,
                x + 22.5,
                by0 + 14.0
            ));
        }
        s.push_str(&format!(
            "<text x='{}' y='{}' fill='{c}'>{}</text>\n",
            bx0 + (i * 2) as f64 * 60.0,
            by0 + 30.0,
            xml(&r.name)
        ));
    }
    s.push_str("</svg>\n");
    s
}

pub(crate) fn xml(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
