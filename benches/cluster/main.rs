//! The cluster benchmark. Runs every scenario against each controller, one after the other, on
//! the local control plane that `hack/bench.sh` starts with the API audit log on, and measures
//! from outside the controller:
//! - memory and CPU from `/proc/<pid>` (RSS sampled every 100 ms, peak from `VmHWM`);
//! - reload latency and rollouts with an independent watch on Deployments and ReplicaSets;
//! - API requests from the audit log, by the controller's user agent.
//!
//! Files: `subjects` (the controllers and their processes), `audit` (the audit-log reader),
//! `templates` (the independent watch), `objects` (what the scenarios create), `scenarios`,
//! `report` (RESULTS.md and the plot), `waves` (scenario 12, run alone).
//!
//! Writes `results.json`, `RESULTS.md` and `plot.svg` into `--out`. Usage (via `hack/bench.sh`):
//!   cargo bench --bench cluster -- --audit-log PATH [--quick] [--repeat N] [--out DIR]
//!                                  [--only churn|waves|sustained|fanout|scale] [--reloader-bin PATH]
//!                                  [--ours-bin PATH] [--scale N]

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, PodTemplateSpec, Secret};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Client, Config};
use serde::Serialize;
use serde_json::{Value, json};

const BENCH_AGENT: &str = "kube-reloader-bench";
const WORKLOAD_RESOURCES: [&str; 6] = ["deployments", "statefulsets", "daemonsets", "jobs", "cronjobs", "rollouts"];
/// ConfigMaps the churned Deployments share.
const CHURN_SOURCES: usize = 10;
/// How long one expected reload may take before the run counts it as missed.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Serialize)]
struct Sizes {
    secrets: usize,
    configmaps: usize,
    deployments: usize,
    latency_updates: usize,
    fanout: usize,
    bursts: usize,
    noop_edits: usize,
    churn_workloads: usize,
    churn_rounds: usize,
    /// Large objects: ConfigMaps of 100 KiB–1000 KiB, one Deployment each.
    large: usize,
    /// API pressure: sources (one Deployment each), writers, seconds.
    pressure_sources: usize,
    pressure_writers: usize,
    pressure_secs: u64,
    /// Many namespaces: the scale set spread over this many.
    spread_namespaces: usize,
    /// Waves: Deployments sharing one ConfigMap (throughput), and those of the halt scenario.
    wave_workloads: usize,
    halt_workloads: usize,
    /// Sustained change: minutes the two Secrets keep being rewritten.
    flap_minutes: f64,
}

impl Sizes {
    fn new(quick: bool) -> Sizes {
        if quick {
            Sizes {
                secrets: 400,
                configmaps: 400,
                deployments: 40,
                latency_updates: 20,
                fanout: 20,
                bursts: 3,
                noop_edits: 20,
                churn_workloads: 50,
                churn_rounds: 2,
                large: 10,
                pressure_sources: 10,
                pressure_writers: 4,
                pressure_secs: 10,
                spread_namespaces: 20,
                wave_workloads: 50,
                halt_workloads: 20,
                flap_minutes: 2.0,
            }
        } else {
            Sizes {
                secrets: 10_000,
                configmaps: 10_000,
                deployments: 1_000,
                latency_updates: 200,
                fanout: 500,
                bursts: 5,
                noop_edits: 200,
                churn_workloads: 1_000,
                churn_rounds: 4,
                large: 200,
                pressure_sources: 50,
                pressure_writers: 10,
                pressure_secs: 60,
                spread_namespaces: 500,
                wave_workloads: 500,
                halt_workloads: 40,
                flap_minutes: 10.0,
            }
        }
    }
}

struct Args {
    quick: bool,
    repeat: usize,
    out: PathBuf,
    audit_log: PathBuf,
    reloader_bin: Option<PathBuf>,
    /// This project's controller from another build (the musl one of the image); by default
    /// the release build cargo made for this run.
    ours_bin: Option<PathBuf>,
    /// The scale set's size: N Secrets, N ConfigMaps, N/10 Deployments (default 10,000).
    scale: Option<usize>,
    /// Run one scenario only: `churn`, `fanout` or `scale` (print their figures, write no
    /// results files), `waves` (writes `waves.json` and `waves-halt.svg`) or `sustained`
    /// (`sustained.json`).
    only: Option<String>,
}

impl Args {
    /// The command as run; Reloader's binary by its file name only (its folder is the reader's).
    fn command(&self) -> String {
        let mut command = String::from("make bench");
        if let Some(only) = &self.only {
            command.push_str(&format!(" ONLY={only}"));
        }
        if self.quick {
            command.push_str(" QUICK=1");
        }
        if let Some(n) = self.scale {
            command.push_str(&format!(" SCALE={n}"));
        }
        if let Some(bin) = &self.reloader_bin {
            let file = bin.file_name().map(|f| f.to_string_lossy().to_string()).unwrap_or_default();
            command.push_str(&format!(" RELOADER_BIN=<dir>/{file}"));
        }
        if let Some(bin) = &self.ours_bin {
            let file = bin.file_name().map(|f| f.to_string_lossy().to_string()).unwrap_or_default();
            command.push_str(&format!(" OURS_BIN=<dir>/{file}"));
        }
        if self.repeat != if self.quick { 1 } else { 3 } {
            command.push_str(&format!(" REPEAT={}", self.repeat));
        }
        command
    }
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        quick: false,
        repeat: 0,
        out: PathBuf::from("bench"),
        audit_log: PathBuf::new(),
        reloader_bin: None,
        ours_bin: None,
        scale: None,
        only: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--quick" => a.quick = true,
            "--repeat" => a.repeat = value("--repeat")?.parse().context("--repeat: a number")?,
            "--out" => a.out = value("--out")?.into(),
            "--audit-log" => a.audit_log = value("--audit-log")?.into(),
            "--reloader-bin" => a.reloader_bin = Some(value("--reloader-bin")?.into()),
            "--ours-bin" => a.ours_bin = Some(value("--ours-bin")?.into()),
            "--scale" => a.scale = Some(value("--scale")?.parse().context("--scale: a number")?),
            "--only" => match value("--only")?.as_str() {
                "churn" => a.only = Some("churn".into()),
                "waves" => a.only = Some("waves".into()),
                "sustained" => a.only = Some("sustained".into()),
                "fanout" => a.only = Some("fanout".into()),
                "scale" => a.only = Some("scale".into()),
                "requests" => a.only = Some("requests".into()),
                other => bail!(
                    "--only: {other:?} is not a scenario that runs alone; use churn, waves, sustained, fanout, scale or requests"
                ),
            },
            // cargo bench passes --bench to harness-less targets.
            "--bench" => {}
            other => bail!("unknown argument {other:?}; see the top of benches/cluster.rs"),
        }
    }
    if a.audit_log.as_os_str().is_empty() {
        bail!("--audit-log is required: run the benchmark with hack/bench.sh (make bench)");
    }
    if a.repeat == 0 {
        a.repeat = if a.quick { 1 } else { 3 };
    }
    Ok(a)
}

mod audit;
mod objects;
mod report;
mod scenarios;
mod subjects;
mod sustained;
mod templates;
mod waves;

use audit::*;
use objects::*;
use report::*;
use scenarios::*;
use subjects::*;
use sustained::*;
use templates::*;
use waves::*;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = args()?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = Config::infer().await.context("a kubeconfig (run through hack/bench.sh)")?;
    let client = reloader::client::named(config, BENCH_AGENT)?;
    let version = client.apiserver_version().await.context("reach the API server")?;
    let mut sizes = Sizes::new(a.quick);
    if let Some(n) = a.scale {
        (sizes.secrets, sizes.configmaps, sizes.deployments) = (n, n, n / 10);
    }
    let logs = a.out.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("create {}", logs.display()))?;

    let mut subjects = vec![ours(a.ours_bin.clone())];
    if let Some(bin) = &a.reloader_bin {
        // Reloader's metrics are on a fixed port; another process answering there would make
        // it look ready before it is.
        if std::net::TcpListener::bind("127.0.0.1:9090").is_err() {
            bail!("127.0.0.1:9090 is taken; Stakater Reloader serves its metrics there: free it first");
        }
        subjects.push(stakater(bin.clone()));
    }
    let templates = Templates::start(client.clone());
    templates.wait_synced().await;
    let bench = Bench {
        client,
        audit: Audit { path: a.audit_log.clone() },
        templates,
        sizes,
        repeat: a.repeat,
        logs,
        only: a.only.clone(),
    };
    if a.only.as_deref() == Some("waves") {
        return run_waves(&bench, &a).await;
    }
    if a.only.is_none() || a.only.as_deref() == Some("scale") {
        bench.setup_scale().await?;
    }
    let mut results = Vec::new();
    for s in &subjects {
        eprintln!(">> {}: running the scenarios", s.name);
        results.push(bench.run_subject(s).await.with_context(|| s.name.clone())?);
    }
    if a.only.is_none() {
        // 11. The same set over many namespaces, for each controller in turn (the one-namespace
        // set is deleted first, so each start lists the same number of objects).
        bench.setup_spread().await?;
        for (s, r) in subjects.iter().zip(results.iter_mut()) {
            bench.spread(s, r).await.with_context(|| format!("{}: many namespaces", s.name))?;
        }
    }
    if a.only.as_deref() == Some("sustained") {
        return report_sustained(&results, &a);
    }
    if a.only.as_deref() == Some("scale") {
        println!("{}", table(&results, &mut |row| scale_rows(row, true)));
        return Ok(());
    }
    if a.only.as_deref() == Some("requests") {
        println!("{}", table(&results, &mut |row| request_rows(row)));
        return Ok(());
    }
    if a.only.as_deref() == Some("fanout") {
        println!("{}", table(&results, &mut |row| fanout_rows(row)));
        let missed: Vec<&String> = results.iter().flat_map(|r| &r.missed).collect();
        if !missed.is_empty() {
            bail!("fan-out: {} reloads never happened: {missed:?}", missed.len());
        }
        return Ok(());
    }
    if a.only.is_some() {
        for r in &results {
            let rounds: Vec<String> = r.churn_rss_mib.iter().map(|v| format!("{v:.1}")).collect();
            println!(
                "{}: churn RSS per round (MiB): {}; missed reloads: {}",
                r.name,
                rounds.join(" → "),
                r.missed.len()
            );
        }
        return Ok(());
    }

    let meta = json!({
        "command": a.command(),
        "machine": machine(),
        "kubernetes": version.git_version,
        "sizes": sizes,
        "repeat": a.repeat,
    });
    let md = markdown(&results, &meta);
    let json = serde_json::to_string_pretty(&json!({"meta": meta, "results": results}))?;
    std::fs::write(a.out.join("results.json"), json)?;
    std::fs::write(a.out.join("RESULTS.md"), &md)?;
    std::fs::write(a.out.join("plot.svg"), svg(&results))?;
    println!("{md}");
    let missed: usize = results.iter().map(|r| r.missed.len()).sum();
    if missed > 0 {
        bail!(
            "{missed} expected reloads never happened within {RELOAD_TIMEOUT:?}; see {}",
            a.out.join("logs").display()
        );
    }
    Ok(())
}

/// `--only sustained`: scenario 13 for each controller; its rows printed, and `sustained.json`
/// written to `--out`.
fn report_sustained(results: &[SubjectResult], a: &Args) -> anyhow::Result<()> {
    let meta = json!({"command": a.command(), "machine": machine(), "repeat": a.repeat, "flap_minutes": Sizes::new(a.quick).flap_minutes});
    let all: Vec<_> = results.iter().map(|r| json!({"name": r.name, "sustained": r.sustained})).collect();
    std::fs::write(
        a.out.join("sustained.json"),
        serde_json::to_string_pretty(&json!({"meta": meta, "results": all}))?,
    )?;
    println!("{}", table(results, &mut |row| sustained_rows(row)));
    let missed: Vec<&String> = results.iter().flat_map(|r| &r.missed).collect();
    if !missed.is_empty() {
        bail!("sustained: {missed:?}");
    }
    Ok(())
}

/// `--only waves`: scenario 12 with this project's controller; its figures printed, and
/// `waves.json` and `waves-halt.svg` written to `--out`.
async fn run_waves(bench: &Bench, a: &Args) -> anyhow::Result<()> {
    let s = ours(a.ours_bin.clone());
    let r = bench.waves(&s, "kube-reloader").await?;
    let meta = json!({
        "command": a.command(),
        "machine": machine(),
        "sizes": {"wave_workloads": bench.sizes.wave_workloads, "halt_workloads": bench.sizes.halt_workloads},
    });
    std::fs::write(a.out.join("waves.json"), serde_json::to_string_pretty(&json!({"meta": meta, "waves": r}))?)?;
    std::fs::write(a.out.join("waves-halt.svg"), halt_svg(&r.halt, 5, 3))?;
    println!(
        "| --max-concurrent-rollouts | Deployments | all rolled and available in | per minute | most replacing pods at once | most tracked in progress at once | rolled exactly once |"
    );
    println!("|---|---|---|---|---|---|---|");
    for w in &r.throughput {
        println!(
            "| {} | {} | {:.1} s | {:.0} | {} | {} | {} |",
            w.label, w.workloads, w.seconds, w.per_minute, w.max_rolling, w.max_tracked, w.rolled_once
        );
    }
    if !r.missed.is_empty() {
        bail!("waves: {}", r.missed.join("; "));
    }
    Ok(())
}
