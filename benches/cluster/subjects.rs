//! The controllers under test: how each is started, and its process measured from /proc.

use super::*;

/// A controller binary and how to run it equivalently: annotations strategy, all namespaces,
/// out-of-cluster with the bench's kubeconfig.
#[derive(Clone)]
pub(crate) struct Subject {
    pub(crate) name: String,
    pub(crate) bin: PathBuf,
    pub(crate) args: Vec<String>,
    pub(crate) ready_url: String,
    /// Prefix of the `User-Agent` its requests carry in the audit log.
    pub(crate) agent: String,
    /// Variants for the latency scenario: (label, extra args).
    pub(crate) latency_variants: Vec<(String, Vec<String>)>,
    /// Ready only once its informers have delivered every existing ConfigMap and Secret, read
    /// from its `reloader_events_received_total{event_type="add"}` (Stakater Reloader has no
    /// readiness endpoint: its metrics answer as soon as the informers start, before they list).
    pub(crate) ready_by_adds: bool,
    /// Applies changes made while it was stopped (a miss then fails the run).
    pub(crate) catches_up: bool,
}

pub(crate) fn ours(bin: Option<PathBuf>) -> Subject {
    let port = free_port();
    Subject {
        name: "kube-reloader".into(),
        bin: bin.unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_reloader"))),
        args: vec![format!("--metrics-addr=127.0.0.1:{port}"), "--reload-strategy=annotations".into()],
        ready_url: format!("http://127.0.0.1:{port}/ready"),
        agent: reloader::client::USER_AGENT.split('/').next().unwrap_or_default().to_string() + "/",
        latency_variants: vec![
            ("debounce default".into(), vec![]),
            ("debounce off".into(), vec!["--debounce=0".into()]),
        ],
        ready_by_adds: false,
        catches_up: true,
    }
}

/// Stakater Reloader: client-go names requests after the binary; metrics are on a fixed :9090.
pub(crate) fn stakater(bin: PathBuf) -> Subject {
    let base = bin.file_name().map(|f| f.to_string_lossy().to_string()).unwrap_or_default();
    Subject {
        name: "Stakater Reloader".into(),
        bin,
        args: vec!["--reload-strategy=annotations".into()],
        ready_url: "http://127.0.0.1:9090/metrics".into(),
        agent: format!("{base}/"),
        // Reloader has no debounce: its defaults are compared with ours.
        latency_variants: vec![("debounce default".into(), vec![])],
        ready_by_adds: true,
        catches_up: false,
    }
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(18080)
}

/// A running controller process, sampled.
pub(crate) struct Running {
    pub(crate) child: Child,
    pub(crate) started: Instant,
    pub(crate) peak_sampled_kib: Arc<Mutex<u64>>,
    pub(crate) stop_sampling: Arc<AtomicBool>,
}

impl Running {
    pub(crate) fn start(s: &Subject, extra: &[String], log: &Path) -> anyhow::Result<Running> {
        let out = std::fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
        let child = Command::new(&s.bin)
            .args(&s.args)
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(out.try_clone()?)
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("start {}", s.bin.display()))?;
        let (peak, stop) = (Arc::new(Mutex::new(0)), Arc::new(AtomicBool::new(false)));
        let (p, st, pid) = (peak.clone(), stop.clone(), child.id());
        std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                if let Some(kib) = proc_status(pid, "VmRSS") {
                    let mut m = p.lock().unwrap();
                    *m = (*m).max(kib);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Ok(Running { child, started: Instant::now(), peak_sampled_kib: peak, stop_sampling: stop })
    }

    /// Waits until `url` answers 200 and, when `adds` is given, until the metrics at that URL
    /// count at least that many informer adds of ConfigMaps and Secrets.
    pub(crate) async fn wait_ready(&mut self, url: &str, adds: Option<(usize, usize)>) -> anyhow::Result<Duration> {
        let http = reqwest::Client::new();
        while self.started.elapsed() < Duration::from_secs(600) {
            if let Some(status) = self.child.try_wait()? {
                bail!("the controller exited before it was ready: {status}");
            }
            if let Ok(r) = http.get(url).send().await
                && r.status().is_success()
            {
                let Some((cms, secrets)) = adds else { return Ok(self.started.elapsed()) };
                let text = r.text().await.unwrap_or_default();
                if adds_of(&text, "configmaps") >= cms && adds_of(&text, "secrets") >= secrets {
                    return Ok(self.started.elapsed());
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("not ready within 600 s ({url})")
    }

    pub(crate) fn rss_kib(&self) -> u64 {
        proc_status(self.child.id(), "VmRSS").unwrap_or(0)
    }

    /// The kernel's high-water mark and the highest sample, whichever is larger.
    pub(crate) fn peak_kib(&self) -> u64 {
        proc_status(self.child.id(), "VmHWM").unwrap_or(0).max(*self.peak_sampled_kib.lock().unwrap())
    }

    /// User + system CPU seconds so far (`/proc/<pid>/stat`, USER_HZ = 100).
    pub(crate) fn cpu_secs(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        (ticks(11) + ticks(12)) / 100.0
    }

    /// SIGTERM, then SIGKILL after 15 s.
    pub(crate) fn stop(mut self) {
        self.terminate();
    }

    fn terminate(&mut self) {
        self.stop_sampling.store(true, Ordering::Relaxed);
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A failed scenario must not leave its controller running into the next one.
impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.terminate();
        }
        self.stop_sampling.store(true, Ordering::Relaxed);
    }
}

/// `reloader_events_received_total{event_type="add",resource_type="<resource>"}` in a scrape.
fn adds_of(metrics: &str, resource: &str) -> usize {
    let want = format!("resource_type=\"{resource}\"");
    metrics
        .lines()
        .filter(|l| {
            l.starts_with("reloader_events_received_total{") && l.contains("event_type=\"add\"") && l.contains(&want)
        })
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum::<f64>() as usize
}

pub(crate) fn proc_status(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
