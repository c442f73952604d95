//! The soak's world: namespaces, sources and workloads, which sources govern which workload,
//! and each source's content hash, computed here from the documented encoding, independently
//! of the controller's code.

use super::*;

/// SplitMix64: small, fast and the same on every machine, so a seed replays a run.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    pub(crate) fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    pub(crate) fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        let span = hi.saturating_sub(lo).as_millis() as u64;
        lo + Duration::from_millis(if span == 0 { 0 } else { self.next() % span })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SourceKind {
    ConfigMap,
    Secret,
}

impl SourceKind {
    pub(crate) fn key(self) -> &'static str {
        match self {
            SourceKind::ConfigMap => "configmap",
            SourceKind::Secret => "secret",
        }
    }
}

/// A ConfigMap or Secret the soak owns. Its content is a pure function of (seed, id, version),
/// so a retried write sends exactly what the first attempt sent.
pub(crate) struct Source {
    pub(crate) ns: String,
    pub(crate) name: String,
    pub(crate) kind: SourceKind,
    /// Carries `reloader.stakater.com/match: "true"` (search mode follows it).
    pub(crate) matches: bool,
    /// A Secret of about 1 MiB.
    pub(crate) big: bool,
    /// A ConfigMap with binaryData besides data.
    pub(crate) binary: bool,
}

/// What a source holds at one version: the maps written, as bytes.
pub(crate) struct Content {
    pub(crate) data: BTreeMap<String, Vec<u8>>,
    pub(crate) binary: BTreeMap<String, Vec<u8>>,
}

impl Source {
    pub(crate) fn content(&self, seed: u64, id: usize, version: u64) -> Content {
        let mut rng = Rng::new(seed ^ (id as u64).wrapping_mul(0x2545_F491_4F6C_DD1D) ^ version.rotate_left(32));
        let mut text = |len: usize| -> Vec<u8> {
            (0..len).map(|_| b"abcdefghijklmnopqrstuvwxyz0123456789"[(rng.next() % 36) as usize]).collect()
        };
        let mut data = BTreeMap::new();
        let mut binary = BTreeMap::new();
        match self.kind {
            SourceKind::ConfigMap => {
                data.insert("app.conf".into(), text(64));
                data.insert("version".into(), format!("{version}").into_bytes());
                if self.binary {
                    binary.insert("blob.bin".into(), text(48).iter().map(|b| b ^ 0x80).collect());
                }
            }
            SourceKind::Secret => {
                data.insert("password".into(), text(32));
                if self.big {
                    data.insert("bundle".into(), text(1_000_000));
                }
            }
        }
        Content { data, binary }
    }

    /// The object as the driver applies it (server-side apply, the whole object each time).
    pub(crate) fn manifest(&self, c: &Content, touch: u64) -> Value {
        let mut annotations = serde_json::Map::new();
        if self.matches {
            annotations.insert("reloader.stakater.com/match".into(), json!("true"));
        }
        let meta = json!({
            "name": self.name, "namespace": self.ns,
            "labels": {"soak": "true", "soak-touch": touch.to_string()},
            "annotations": annotations,
        });
        match self.kind {
            SourceKind::ConfigMap => {
                let data: BTreeMap<&String, String> =
                    c.data.iter().map(|(k, v)| (k, String::from_utf8_lossy(v).into_owned())).collect();
                let mut m = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data});
                if !c.binary.is_empty() {
                    let bin: BTreeMap<&String, ByteString> =
                        c.binary.iter().map(|(k, v)| (k, ByteString(v.clone()))).collect();
                    m["binaryData"] = serde_json::to_value(bin).expect("bytes serialise");
                }
                m
            }
            SourceKind::Secret => {
                let data: BTreeMap<&String, ByteString> =
                    c.data.iter().map(|(k, v)| (k, ByteString(v.clone()))).collect();
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": "Opaque", "data": data})
            }
        }
    }

    /// `configmap/name`, as the record keys it.
    pub(crate) fn key(&self) -> String {
        format!("{}/{}", self.kind.key(), self.name)
    }
}

/// SHA-256 over the documented encoding (docs/how-it-decides.md, "The content hash, exactly"): every item is its length
/// as a big-endian u64 followed by its bytes; first the domain (`configmap` or `secret`), then
/// each section (`data`, and `binaryData` for ConfigMaps): its tag, its entry count as a
/// big-endian u64, and each key and value, keys sorted.
pub(crate) fn content_hash(kind: SourceKind, c: &Content) -> String {
    fn item(h: &mut Sha256, b: &[u8]) {
        h.update((b.len() as u64).to_be_bytes());
        h.update(b);
    }
    fn section(h: &mut Sha256, tag: &str, m: &BTreeMap<String, Vec<u8>>) {
        item(h, tag.as_bytes());
        h.update((m.len() as u64).to_be_bytes());
        for (k, v) in m {
            item(h, k.as_bytes());
            item(h, v);
        }
    }
    let mut h = Sha256::new();
    item(&mut h, kind.key().as_bytes());
    section(&mut h, "data", &c.data);
    if kind == SourceKind::ConfigMap {
        section(&mut h, "binaryData", &c.binary);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The encoding above against the vectors the controller's own tests pin: a driver that
/// disagreed would report every workload as lost.
pub(crate) fn check_encoding() -> anyhow::Result<()> {
    let m = |kv: &[(&str, &[u8])]| kv.iter().map(|(k, v)| (k.to_string(), v.to_vec())).collect();
    let cases = [
        (
            SourceKind::ConfigMap,
            Content { data: m(&[("key", b"value")]), binary: BTreeMap::new() },
            "babed0079038fa4e3a071c945eeed67dbeae15e2300e1d3a65f184616dada495",
        ),
        (
            SourceKind::ConfigMap,
            Content { data: BTreeMap::new(), binary: m(&[("bin", &[0, 1])]) },
            "6e2828b19d38cc1513226058f354189438cbdc69ccb2fbaa8287b1c4ec627e9b",
        ),
        (
            SourceKind::Secret,
            Content { data: m(&[("password", b"s3cr3t")]), binary: BTreeMap::new() },
            "583565c43ea852273849be833bfd6213b04404f28c455200dc5450732f442b7d",
        ),
    ];
    for (kind, c, want) in cases {
        let got = content_hash(kind, &c);
        if got != want {
            bail!("the soak's hash encoding disagrees with the documented vector: {got} != {want}");
        }
    }
    Ok(())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum WorkloadKind {
    Deployment,
    StatefulSet,
    DaemonSet,
}

impl WorkloadKind {
    pub(crate) fn prefix(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "dep",
            WorkloadKind::StatefulSet => "sts",
            WorkloadKind::DaemonSet => "ds",
        }
    }
}

/// How a workload asks to be reloaded (Reloader's annotations).
#[derive(Clone, Debug)]
pub(crate) enum Policy {
    /// `reloader.stakater.com/auto: "true"`: every referenced source.
    Auto,
    /// `configmap.reloader.stakater.com/auto` or `secret.…/auto`: referenced sources of one kind.
    TypedAuto(SourceKind),
    /// `configmap.reloader.stakater.com/reload` / `secret.…/reload`: names and anchored regexes,
    /// referenced or not.
    Named { configmaps: String, secrets: String },
    /// `reloader.stakater.com/search: "true"`: referenced sources that carry `match: "true"`.
    Search,
}

impl Policy {
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Policy::Auto => "auto",
            Policy::TypedAuto(_) => "typed-auto",
            Policy::Named { .. } => "named",
            Policy::Search => "search",
        }
    }

    pub(crate) fn annotations(&self) -> Value {
        match self {
            Policy::Auto => json!({"reloader.stakater.com/auto": "true"}),
            Policy::TypedAuto(k) => json!({format!("{}.reloader.stakater.com/auto", k.key()): "true"}),
            Policy::Named { configmaps, secrets } => json!({
                "configmap.reloader.stakater.com/reload": configmaps,
                "secret.reloader.stakater.com/reload": secrets,
            }),
            Policy::Search => json!({"reloader.stakater.com/search": "true"}),
        }
    }
}

pub(crate) struct Workload {
    pub(crate) ns: String,
    pub(crate) name: String,
    pub(crate) kind: WorkloadKind,
    pub(crate) policy: Policy,
    /// Sources the pod template uses (indexes into `World::sources`).
    pub(crate) refs: Vec<usize>,
    /// Sources that govern it, by the driver's own reading of the policy.
    pub(crate) governs: Vec<usize>,
}

impl Workload {
    pub(crate) fn key(&self) -> String {
        format!("{}/{}", self.ns, self.name)
    }

    pub(crate) fn manifest(&self, sources: &[Source]) -> Value {
        let mut env_from = Vec::new();
        let (mut volumes, mut mounts) = (Vec::new(), Vec::new());
        for &i in &self.refs {
            let s = &sources[i];
            match s.kind {
                SourceKind::ConfigMap => env_from.push(json!({"configMapRef": {"name": s.name}})),
                SourceKind::Secret => {
                    volumes.push(json!({"name": s.name, "secret": {"secretName": s.name}}));
                    mounts.push(json!({"name": s.name, "mountPath": format!("/etc/{}", s.name)}));
                }
            }
        }
        let labels = json!({"app": self.name});
        let mut pod = json!({
            "containers": [{"name": "app", "image": "registry.invalid/soak:1", "envFrom": env_from, "volumeMounts": mounts}],
            "volumes": volumes,
        });
        let (api_version, kind, mut spec) = match self.kind {
            WorkloadKind::Deployment => ("apps/v1", "Deployment", json!({"replicas": 0})),
            WorkloadKind::StatefulSet => ("apps/v1", "StatefulSet", json!({"replicas": 0, "serviceName": self.name})),
            WorkloadKind::DaemonSet => {
                // No node carries this label: the DaemonSet rolls its revision, never a pod.
                pod["nodeSelector"] = json!({"soak.kube-reloader.dev/none": "true"});
                ("apps/v1", "DaemonSet", json!({}))
            }
        };
        spec["selector"] = json!({"matchLabels": labels});
        spec["template"] = json!({"metadata": {"labels": labels}, "spec": pod});
        json!({
            "apiVersion": api_version, "kind": kind,
            "metadata": {"name": self.name, "namespace": self.ns, "labels": {"soak": "true"},
                         "annotations": self.policy.annotations()},
            "spec": spec,
        })
    }
}

/// Everything the soak created, and how the controllers are split over it.
pub(crate) struct World {
    pub(crate) sources: Vec<Source>,
    pub(crate) workloads: Vec<Workload>,
}

/// Namespaces the HA pair watches (annotations strategy); RBAC is taken from one of them.
pub(crate) const HA_NAMESPACES: [&str; 4] = ["soak-a", "soak-b", "soak-c", "soak-d"];
/// The namespace of the single env-vars controller.
pub(crate) const ENV_NAMESPACE: &str = "soak-env";
/// The probe's namespace (HA pair; its RBAC is never taken away).
pub(crate) const PROBE_NAMESPACE: &str = "soak-probe";
/// Where the Lease, the ServiceAccount and its kubeconfig live.
pub(crate) const SYSTEM_NAMESPACE: &str = "soak-system";

impl World {
    /// `per_ns`: (sources, workloads) in each of the five namespaces.
    pub(crate) fn generate(rng: &mut Rng, sources_per_ns: usize, workloads_per_ns: usize) -> World {
        let mut sources = Vec::new();
        let mut workloads = Vec::new();
        let namespaces: Vec<&str> = HA_NAMESPACES.iter().copied().chain([ENV_NAMESPACE]).collect();
        for (n, ns) in namespaces.iter().enumerate() {
            let first = sources.len();
            for i in 0..sources_per_ns {
                let kind = if i % 2 == 0 { SourceKind::ConfigMap } else { SourceKind::Secret };
                let idx = i / 2;
                sources.push(Source {
                    ns: ns.to_string(),
                    name: format!("{}-{idx}", if kind == SourceKind::ConfigMap { "cm" } else { "sec" }),
                    kind,
                    matches: rng.chance(0.5),
                    // One big Secret in every other namespace keeps 1 MiB writes in the mix.
                    big: kind == SourceKind::Secret && idx == 0 && n % 2 == 0,
                    binary: kind == SourceKind::ConfigMap && idx % 4 == 1,
                });
            }
            let local: Vec<usize> = (first..sources.len()).collect();
            let cms: Vec<usize> = local.iter().copied().filter(|&i| sources[i].kind == SourceKind::ConfigMap).collect();
            let secs: Vec<usize> = local.iter().copied().filter(|&i| sources[i].kind == SourceKind::Secret).collect();
            for w in 0..workloads_per_ns {
                let kind = match rng.below(4) {
                    0 => WorkloadKind::StatefulSet,
                    1 => WorkloadKind::DaemonSet,
                    _ => WorkloadKind::Deployment,
                };
                let policy = match rng.below(5) {
                    0 | 1 => Policy::Auto,
                    2 => Policy::TypedAuto(if rng.chance(0.5) { SourceKind::ConfigMap } else { SourceKind::Secret }),
                    3 => Policy::Named {
                        configmaps: format!("cm-{},cm-{}[0-9]?", rng.below(cms.len()), rng.below(cms.len())),
                        secrets: format!("sec-{}", rng.below(secs.len())),
                    },
                    _ => Policy::Search,
                };
                // One to three references; at least one that the policy follows, so every
                // workload is governed by something and gets a record.
                let mut refs = Vec::new();
                let must = match &policy {
                    Policy::TypedAuto(SourceKind::ConfigMap) => cms[rng.below(cms.len())],
                    Policy::TypedAuto(SourceKind::Secret) => secs[rng.below(secs.len())],
                    Policy::Search => {
                        let matching: Vec<usize> = local.iter().copied().filter(|&i| sources[i].matches).collect();
                        if matching.is_empty() { local[0] } else { matching[rng.below(matching.len())] }
                    }
                    _ => local[rng.below(local.len())],
                };
                refs.push(must);
                for _ in 0..rng.below(3) {
                    let r = local[rng.below(local.len())];
                    if !refs.contains(&r) {
                        refs.push(r);
                    }
                }
                if matches!(policy, Policy::Search) && !refs.iter().any(|&i| sources[i].matches) {
                    sources[refs[0]].matches = true;
                }
                workloads.push(Workload {
                    ns: ns.to_string(),
                    name: format!("{}-{w}", kind.prefix()),
                    kind,
                    policy,
                    refs,
                    governs: Vec::new(),
                });
            }
        }
        let mut world = World { sources, workloads };
        for w in 0..world.workloads.len() {
            world.workloads[w].governs = world.governing(&world.workloads[w]);
        }
        world
    }

    /// The driver's reading of which sources govern a workload (the specification, not the
    /// controller's code).
    fn governing(&self, w: &Workload) -> Vec<usize> {
        let in_ns = |i: &usize| self.sources[*i].ns == w.ns;
        let mut out: Vec<usize> = match &w.policy {
            Policy::Auto => w.refs.clone(),
            Policy::TypedAuto(k) => w.refs.iter().copied().filter(|&i| self.sources[i].kind == *k).collect(),
            Policy::Search => w.refs.iter().copied().filter(|&i| self.sources[i].matches).collect(),
            Policy::Named { configmaps, secrets } => {
                let matches = |list: &str, name: &str| {
                    list.split(',').any(|p| regex::Regex::new(&format!("^(?:{p})$")).is_ok_and(|r| r.is_match(name)))
                };
                (0..self.sources.len())
                    .filter(in_ns)
                    .filter(|&i| {
                        let s = &self.sources[i];
                        match s.kind {
                            SourceKind::ConfigMap => matches(configmaps, &s.name),
                            SourceKind::Secret => matches(secrets, &s.name),
                        }
                    })
                    .collect()
            }
        };
        out.sort_unstable();
        out.dedup();
        out
    }
}
