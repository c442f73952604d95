//! The controllers under test as processes, and the faults done to them and to the control
//! plane.

use super::*;

/// One controller process, started again after each kill with the same arguments; its log is
/// appended to across starts.
pub(crate) struct Controller {
    pub(crate) name: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    log: PathBuf,
    child: Option<Child>,
    /// Exits that no fault caused (a crash), with their status.
    pub(crate) crashes: Vec<String>,
}

impl Controller {
    pub(crate) fn new(name: &str, args: Vec<String>, env: Vec<(String, String)>, logs: &Path) -> Controller {
        let port = free_port();
        let mut args = args;
        args.push(format!("--metrics-addr=127.0.0.1:{port}"));
        Controller {
            name: name.into(),
            args,
            env,
            log: logs.join(format!("{name}.log")),
            child: None,
            crashes: Vec::new(),
        }
    }

    pub(crate) fn start(&mut self) -> anyhow::Result<()> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("open {}", self.log.display()))?;
        let child = Command::new(env!("CARGO_BIN_EXE_reloader"))
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            // The default log filter, as users run it.
            .env_remove("RUST_LOG")
            .stdout(out.try_clone()?)
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("start {}", self.name))?;
        self.child = Some(child);
        Ok(())
    }

    fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            // SAFETY: kill(2) on a child this process spawned and has not reaped.
            unsafe { libc::kill(c.id() as i32, sig) };
        }
    }

    pub(crate) fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub(crate) fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    pub(crate) fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    /// SIGTERM and wait up to 20 s (the shutdown path is part of what is checked).
    pub(crate) fn stop(&mut self) {
        self.resume();
        self.signal(libc::SIGTERM);
        if let Some(mut c) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(status)) = c.try_wait() {
                    if !status.success() {
                        self.crashes.push(format!("{}: exit on SIGTERM: {status}", self.name));
                    }
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            self.crashes.push(format!("{}: still running 20 s after SIGTERM", self.name));
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Notes an exit no fault caused, and starts the process again so the run goes on.
    pub(crate) fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(c) = &mut self.child
            && let Ok(Some(status)) = c.try_wait()
        {
            self.crashes.push(format!("{}: exited by itself: {status}", self.name));
            self.child = None;
            self.start()?;
        }
        Ok(())
    }

    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.resume();
        self.kill();
    }
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(18090)
}

/// One fault, as planned from the seed.
#[derive(Clone, Debug)]
pub(crate) enum Fault {
    /// SIGKILL one HA replica (leader or not), start it again after the pause.
    KillReplica {
        which: usize,
        down: Duration,
    },
    /// SIGKILL whichever replica holds the Lease; the standby takes over.
    KillLeader {
        down: Duration,
    },
    /// SIGSTOP the leader for longer than its lease, then SIGCONT.
    PauseLeader {
        paused: Duration,
    },
    /// SIGKILL the env-vars controller.
    KillEnv {
        down: Duration,
    },
    RestartApiserver {
        down: Duration,
    },
    RestartEtcd {
        down: Duration,
    },
    /// An admission policy refuses the controllers' workload writes.
    DenyWrites {
        hold: Duration,
    },
    /// The RoleBinding of one namespace is deleted, then created again.
    RevokeRbac {
        ns: String,
        hold: Duration,
    },
}

impl Fault {
    pub(crate) fn describe(&self) -> String {
        let s = |d: &Duration| format!("{:.0} s", d.as_secs_f64());
        match self {
            Fault::KillReplica { which, down } => format!("SIGKILL replica-{} (down {})", REPLICAS[*which], s(down)),
            Fault::KillLeader { down } => format!("SIGKILL the leader (down {})", s(down)),
            Fault::PauseLeader { paused } => format!("SIGSTOP the leader for {}", s(paused)),
            Fault::KillEnv { down } => format!("SIGKILL the env-vars controller (down {})", s(down)),
            Fault::RestartApiserver { down } => format!("restart kube-apiserver (down {})", s(down)),
            Fault::RestartEtcd { down } => format!("restart etcd (down {})", s(down)),
            Fault::DenyWrites { hold } => format!("refuse workload writes for {}", s(hold)),
            Fault::RevokeRbac { ns, hold } => format!("take the RBAC of {ns} away for {}", s(hold)),
        }
    }

    /// About how long it takes, for pacing the changes over the faults.
    pub(crate) fn length(&self) -> Duration {
        match self {
            Fault::KillReplica { down, .. } | Fault::KillEnv { down } => *down,
            Fault::KillLeader { down } => *down,
            Fault::PauseLeader { paused } => *paused,
            Fault::RestartApiserver { down } | Fault::RestartEtcd { down } => *down + Duration::from_secs(5),
            Fault::DenyWrites { hold } | Fault::RevokeRbac { hold, .. } => *hold,
        }
    }
}

pub(crate) const REPLICAS: [&str; 2] = ["a", "b"];

/// The fault sequence: each kind at least once, the rest at random, in random order.
pub(crate) fn plan(rng: &mut Rng, quick: bool, lease: Duration) -> Vec<Fault> {
    let s = Duration::from_secs;
    let ns = HA_NAMESPACES[rng.below(HA_NAMESPACES.len())].to_string();
    let mut faults = vec![
        Fault::KillReplica { which: rng.below(2), down: rng.between(s(1), s(4)) },
        Fault::KillLeader { down: lease + rng.between(s(1), s(4)) },
        Fault::PauseLeader { paused: lease + rng.between(s(3), s(6)) },
        Fault::KillEnv { down: rng.between(s(1), s(3)) },
        Fault::RestartApiserver { down: rng.between(s(5), s(12)) },
        Fault::RestartEtcd { down: rng.between(s(4), s(8)) },
        Fault::DenyWrites { hold: s(20) },
        Fault::RevokeRbac { ns, hold: s(20) },
    ];
    if !quick {
        for _ in 0..3 {
            faults.push(Fault::KillReplica { which: rng.below(2), down: rng.between(s(0), s(4)) });
        }
        faults.push(Fault::KillLeader { down: rng.between(s(1), s(3)) });
        faults.push(Fault::KillLeader { down: lease + rng.between(s(1), s(4)) });
        faults.push(Fault::PauseLeader { paused: lease + rng.between(s(3), s(8)) });
        faults.push(Fault::KillEnv { down: rng.between(s(0), s(3)) });
        faults.push(Fault::RestartApiserver { down: rng.between(s(3), s(15)) });
        let ns = HA_NAMESPACES[rng.below(HA_NAMESPACES.len())].to_string();
        faults.push(Fault::RevokeRbac { ns, hold: s(20) });
    }
    // Fisher–Yates.
    for i in (1..faults.len()).rev() {
        faults.swap(i, rng.below(i + 1));
    }
    faults
}

/// What the fault driver counted.
#[derive(Default, Debug, Serialize)]
pub(crate) struct Counts {
    pub(crate) kills: usize,
    pub(crate) api_restarts: usize,
    pub(crate) pauses: usize,
    /// Seconds from `/readyz` answering again to a probe change being applied, per restart.
    pub(crate) recovery_s: Vec<f64>,
}

pub(crate) struct Chaos {
    pub(crate) client: Client,
    pub(crate) cluster_script: PathBuf,
    pub(crate) replicas: Vec<Controller>,
    pub(crate) env: Controller,
    pub(crate) counts: Counts,
    pub(crate) probe: Probe,
}

impl Chaos {
    async fn leader(&self) -> Option<usize> {
        let leases: Api<Lease> = Api::namespaced(self.client.clone(), SYSTEM_NAMESPACE);
        let holder = leases.get_opt(LEASE).await.ok().flatten()?.spec?.holder_identity?;
        REPLICAS.iter().position(|r| holder == format!("replica-{r}"))
    }

    /// The leader, waiting (up to 60 s) for one to be elected.
    async fn await_leader(&self) -> anyhow::Result<usize> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(l) = self.leader().await {
                return Ok(l);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        bail!("no replica held the Lease for 60 s")
    }

    pub(crate) fn check_alive(&mut self) -> anyhow::Result<()> {
        for c in self.replicas.iter_mut().chain([&mut self.env]) {
            c.check_alive()?;
        }
        Ok(())
    }

    pub(crate) async fn run(&mut self, fault: &Fault) -> anyhow::Result<()> {
        self.check_alive()?;
        match fault {
            Fault::KillReplica { which, down } => {
                self.replicas[*which].kill();
                self.counts.kills += 1;
                tokio::time::sleep(*down).await;
                self.replicas[*which].start()?;
            }
            Fault::KillLeader { down } => {
                let l = self.await_leader().await?;
                self.replicas[l].kill();
                self.counts.kills += 1;
                tokio::time::sleep(*down).await;
                self.replicas[l].start()?;
            }
            Fault::PauseLeader { paused } => {
                let l = self.await_leader().await?;
                self.replicas[l].pause();
                self.counts.pauses += 1;
                tokio::time::sleep(*paused).await;
                self.replicas[l].resume();
            }
            Fault::KillEnv { down } => {
                self.env.kill();
                self.counts.kills += 1;
                tokio::time::sleep(*down).await;
                self.env.start()?;
            }
            Fault::RestartApiserver { down } => self.restart("restart-apiserver", *down).await?,
            Fault::RestartEtcd { down } => self.restart("restart-etcd", *down).await?,
            Fault::DenyWrites { hold } => {
                apply_all(&self.client, &deny_policy()).await?;
                tokio::time::sleep(*hold).await;
                delete_deny_policy(&self.client).await?;
            }
            Fault::RevokeRbac { ns, hold } => {
                let bindings: Api<RoleBinding> = Api::namespaced(self.client.clone(), ns);
                let dp = DeleteParams::default();
                retry("delete a RoleBinding", || bindings.delete(ROLE_BINDING, &dp)).await?;
                tokio::time::sleep(*hold).await;
                apply_all(&self.client, &[role_binding(ns)]).await?;
            }
        }
        Ok(())
    }

    /// Stops a control-plane component for `down`, starts it with the same arguments, and
    /// measures how soon after `/readyz` a change is applied.
    async fn restart(&mut self, what: &str, down: Duration) -> anyhow::Result<()> {
        let script = self.cluster_script.clone();
        let secs = format!("{}", down.as_secs().max(1));
        let what_owned = what.to_string();
        let out =
            tokio::task::spawn_blocking(move || Command::new("bash").arg(script).arg(what_owned).arg(secs).output())
                .await??;
        if !out.status.success() {
            bail!("{what} failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        self.counts.api_restarts += 1;
        let (lag, t) = self.probe.measure(&self.client).await?;
        eprintln!(
            "   a change made as the API served again was applied in {:.2} s (the API served workloads and the Lease {:.2} s after /readyz)",
            t.as_secs_f64(),
            lag.as_secs_f64()
        );
        self.counts.recovery_s.push(t.as_secs_f64());
        Ok(())
    }
}

/// A dedicated ConfigMap and Deployment for the recovery figure.
pub(crate) struct Probe {
    pub(crate) version: u64,
}

pub(crate) const PROBE: &str = "probe";

impl Probe {
    pub(crate) fn source() -> Source {
        Source {
            ns: PROBE_NAMESPACE.into(),
            name: PROBE.into(),
            kind: SourceKind::ConfigMap,
            matches: false,
            big: false,
            binary: false,
        }
    }

    /// Waits for the API server's `/readyz` and for it to serve the probe's Deployment and
    /// ConfigMap and the controllers' Lease, changes the ConfigMap, and returns how long the API took to serve them after
    /// `/readyz`, and how long from then until the probe Deployment's record holds the new hash
    /// (read with GETs, not a watch, so the figure does not include the soak's own watch
    /// catching up).
    ///
    /// Why not from `/readyz`: after an etcd restart kube-apiserver answered `/readyz` while
    /// requests for apps/v1 objects still hung for up to 7 s (its etcd client for them was
    /// still reconnecting; the audit log showed a 7.15 s GET), and no controller can write a
    /// workload before the API serves it. Likewise Leases: after another etcd restart every
    /// Lease request (kwok's node leases, kube-apiserver's own, both replicas') hung for 21 s
    /// after `/readyz`, and a replica that cannot renew its lease must not write.
    pub(crate) async fn measure(&mut self, client: &Client) -> anyhow::Result<(Duration, Duration)> {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !readyz(client).await {
            if Instant::now() > deadline {
                bail!("/readyz not ok within 120 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let ready = Instant::now();
        let api: Api<Deployment> = Api::namespaced(client.clone(), PROBE_NAMESPACE);
        let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client.clone(), PROBE_NAMESPACE);
        let leases: Api<Lease> = Api::namespaced(client.clone(), SYSTEM_NAMESPACE);
        while api.get(PROBE).await.is_err() || cms.get(PROBE).await.is_err() || leases.get(LEASE).await.is_err() {
            if Instant::now() > deadline {
                bail!("the API did not serve the probe objects within 120 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let t0 = Instant::now();
        self.version += 1;
        let src = Probe::source();
        let c = src.content(0, usize::MAX, self.version);
        let want = content_hash(SourceKind::ConfigMap, &c);
        apply_all(client, &[src.manifest(&c, 0)]).await?;
        while Instant::now() < deadline {
            let record = api.get_opt(PROBE).await.ok().flatten().and_then(|d| d.metadata.annotations?.remove(RECORD));
            if record.is_some_and(|r| parse_record(&r).get(&format!("configmap/{PROBE}")) == Some(&want)) {
                return Ok((t0 - ready, t0.elapsed()));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bail!("the probe change was not applied within 120 s")
    }
}

async fn readyz(client: &Client) -> bool {
    let req = http::Request::get("/readyz").body(Vec::new()).expect("a valid request");
    client.request_text(req).await.is_ok_and(|t| t.trim() == "ok")
}

pub(crate) const LEASE: &str = "kube-reloader-lock";
pub(crate) const ROLE_BINDING: &str = "soak-reloader";
const DENY: &str = "soak-deny-reloader-writes";
pub(crate) const CONTROLLER_USER: &str = "system:serviceaccount:soak-system:reloader";

fn deny_policy() -> Vec<Value> {
    vec![
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": DENY},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {"resourceRules": [{
                    "apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["UPDATE"],
                    "resources": ["deployments", "statefulsets", "daemonsets"]}]},
                "validations": [{
                    "expression": format!("request.userInfo.username != '{CONTROLLER_USER}'"),
                    "message": "the soak refuses the controller's workload writes for a while"}]
            }
        }),
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": DENY},
            "spec": {"policyName": DENY, "validationActions": ["Deny"],
                     "matchResources": {"namespaceSelector": {"matchLabels": {"soak": "true"}}}}
        }),
    ]
}

async fn delete_deny_policy(client: &Client) -> anyhow::Result<()> {
    let b: Api<ValidatingAdmissionPolicyBinding> = Api::all(client.clone());
    let p: Api<ValidatingAdmissionPolicy> = Api::all(client.clone());
    let dp = DeleteParams::default();
    retry("delete the binding", || b.delete(DENY, &dp)).await?;
    retry("delete the policy", || p.delete(DENY, &dp)).await?;
    Ok(())
}

/// A RoleBinding giving the controller's ServiceAccount the soak ClusterRole in `ns`.
pub(crate) fn role_binding(ns: &str) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": ROLE_BINDING, "namespace": ns},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "soak-reloader"},
        "subjects": [{"kind": "ServiceAccount", "name": "reloader", "namespace": SYSTEM_NAMESPACE}]
    })
}
