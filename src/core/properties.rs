//! Property tests of the pure decision code: parsing never panics, content hashes are an
//! injective function of the payload, records round-trip, and the decision is idempotent and
//! ignores sources that do not govern a workload.
//!
//! Cases per property: `PROPTEST_CASES` if set, else the default given to [`config`] (chosen
//! so that `cargo test --lib` stays quick; `make proptest-long` runs many more). Failing cases
//! are not persisted: a failure prints its minimal input, which belongs in a table test.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use proptest::prelude::*;
use proptest::sample::{Index as Pick, select};
use serde_json::json;

use crate::core::decide::govern;
use crate::core::decide::patch::{Strategy as ReloadStrategy, mutate_template};
use crate::core::decide::{self, Considered, Decision, Options, Plan, Reason, Resume};
use crate::core::index::Index;
use crate::core::kinds::rollout::ROLLOUT_STRATEGY;
use crate::core::kinds::{Controls, Kind, WorkloadKind, Write, with_kind_type};
use crate::core::model::duration::parse_go_duration;
use crate::core::model::hash::{ContentHash, configmap_hash_parts, secret_hash_parts};
use crate::core::model::keys::{CONFIGMAP_EXCLUDE, Keys, SECRET_EXCLUDE};
use crate::core::model::parse_rv;
use crate::core::model::policy::Policy;
use crate::core::model::record::{self, Applied, FIELD_MANAGER, RECORD_ANNOTATION, Record};
use crate::core::model::source::{SourceInfo, SourceKind, SourceRef};
use crate::core::model::workload::{Workload, WorkloadKey, project_object};

/// `PROPTEST_CASES` cases if set, else `default_cases`; no failure files in the source tree.
fn config(default_cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default_cases);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

// ---------------------------------------------------------------------------------------------
// 1. Parsing never panics
// ---------------------------------------------------------------------------------------------

/// Every annotation key the controller reads from a workload or a source.
fn known_keys() -> Vec<String> {
    let k = Keys::default();
    vec![
        k.auto,
        k.configmap_auto,
        k.secret_auto,
        k.configmap_reload,
        k.secret_reload,
        k.search,
        k.match_,
        k.ignore,
        k.pause_period,
        k.paused_at,
        CONFIGMAP_EXCLUDE.to_string(),
        SECRET_EXCLUDE.to_string(),
        ROLLOUT_STRATEGY.to_string(),
        RECORD_ANNOTATION.to_string(),
    ]
}

/// Any string: arbitrary Unicode (control characters included), regex-ish and duration-ish
/// text, so that parsers get past their first check often.
fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-z0-9.,|*+?()\\[\\]{}^$\\\\ -]{0,24}",
        "[-+]?[0-9.]{0,6}(ns|us|µs|ms|s|m|h|x|)[0-9.]{0,4}(s|m|h|)",
        "\\{(\"(configmap|secret|pod)/[a-z/]{0,4}\":\"[0-9a-fA-F+-]{0,66}\",?){0,3}\\}?",
        "[a-z]{0,5}/[a-zA-Z/]{0,5}",
    ]
}

/// An annotation map: each known key absent or set to any string, plus a few other keys.
fn any_annotations() -> impl Strategy<Value = BTreeMap<String, String>> {
    let keys = known_keys();
    let n = keys.len();
    (prop::collection::vec(prop::option::of(any_text()), n), prop::collection::btree_map(any_text(), any_text(), 0..3))
        .prop_map(move |(values, extra)| {
            let mut m = extra;
            for (k, v) in keys.iter().zip(values) {
                if let Some(v) = v {
                    m.insert(k.clone(), v);
                }
            }
            m
        })
}

proptest! {
    #![proptest_config(config(256))]

    /// The whole path from a workload's annotations to a decision: policy parsing (auto, typed
    /// auto, named lists and regexes, search, exclude), the Rollout strategy, the record, the
    /// pause period and paused-at time, for every kind.
    #[test]
    fn parsing_a_workload_never_panics(
        meta in any_annotations(),
        template in any_annotations(),
        auto_all in any::<bool>(),
        kind in kind(),
        now in -62_000_000_000i64..250_000_000_000i64,
        rv in prop::option::of(any_text()),
        names in prop::collection::vec(any_text(), 0..4),
    ) {
        let keys = Keys::default();
        let p = Policy::parse(&keys, Some(&meta), Some(&template), auto_all);
        for e in &p.errors {
            prop_assert!(keys.is_policy_key(&e.key), "{e}");
            prop_assert!(!e.problem.contains('\n'), "{e}");
        }
        for kp in [&p.configmap, &p.secret] {
            for n in &names {
                for pat in &kp.named {
                    let _ = (pat.is_match(n), pat.is_literal());
                }
                let _ = govern::govern(kp, n, None, true);
            }
        }
        let _ = keys.flags(Some(&meta));
        let mut obj = Obj::new(kind, meta, mk_template(&template, &[vec![]]));
        obj.meta.resource_version = rv;
        let w = obj.project(auto_all);
        let now = Timestamp::from_second(now).unwrap_or(Timestamp::UNIX_EPOCH);
        let _ = decide::decide(&w, None, None, Options::default(), &keys.pause_period, now);
    }
}

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn parsing_a_string_never_panics(s in any_text()) {
        let _ = parse_go_duration(&s);
        let _ = record::decode(&s);
        let _ = SourceRef::parse(&s);
        let _ = crate::core::model::keys::parse_go_bool(&s);
        let _ = crate::core::model::policy::is_object_name(&s);
        let _ = WorkloadKind::parse(&s);
        let _ = parse_rv(Some(&s));
    }

    /// Whole numbers of a unit parse exactly, up to Go's longest duration (2^63-1 ns), and
    /// past it are an error as in Go.
    #[test]
    fn whole_units_parse_as_durations(n in 0u32..=u32::MAX, unit in select(vec![("s", 1u64), ("m", 60), ("h", 3600)])) {
        let secs = u64::from(n) * unit.1;
        let got = parse_go_duration(&format!("{n}{}", unit.0));
        if u128::from(secs) * 1_000_000_000 < 1 << 63 {
            prop_assert_eq!(got, Ok(std::time::Duration::from_secs(secs)));
        } else {
            prop_assert!(got.is_err(), "{:?}", got);
        }
    }

    #[test]
    fn source_refs_round_trip(kind in source_kind(), name in ".+") {
        let r = SourceRef::new(kind, name);
        prop_assert_eq!(SourceRef::parse(&r.to_string()), Some(r));
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Content hashes
// ---------------------------------------------------------------------------------------------

type Data = BTreeMap<String, String>;
type Binary = BTreeMap<String, ByteString>;

fn bin(m: &BTreeMap<String, Vec<u8>>) -> Binary {
    m.iter().map(|(k, v)| (k.clone(), ByteString(v.clone()))).collect()
}

fn cm_hash(data: &Data, binary: &Binary) -> ContentHash {
    configmap_hash_parts(Some(data), Some(binary))
}

/// A small alphabet, so that different maps often share keys, values and prefixes.
fn small() -> impl Strategy<Value = String> {
    "[ab=;\\x00]{0,3}"
}

fn small_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(select(vec![b'a', b'b', 0u8, 0xff]), 0..3)
}

type Entries<V> = Vec<(String, V)>;

/// Entries with distinct keys, in a random order, and the same entries in another order.
fn shuffled<V: Clone + std::fmt::Debug>(
    v: impl Strategy<Value = V> + 'static,
) -> impl Strategy<Value = (Entries<V>, Entries<V>)> {
    prop::collection::btree_map(any::<String>(), v, 0..8)
        .prop_map(|m| m.into_iter().collect::<Vec<_>>())
        .prop_flat_map(|v| (Just(v.clone()).prop_shuffle(), Just(v).prop_shuffle()))
}

/// A string and two different places to cut it: `s[..i] + s[i..] == s[..j] + s[j..]`.
fn two_cuts() -> impl Strategy<Value = (String, String, String, String)> {
    prop::collection::vec(any::<char>(), 1..12).prop_flat_map(|chars| {
        let n = chars.len();
        (Just(chars), 0..=n, 1..=n).prop_map(move |(chars, i, step)| {
            let j = (i + step) % (n + 1);
            let s = |r: std::ops::Range<usize>| chars[r].iter().collect::<String>();
            (s(0..i), s(i..n), s(0..j), s(j..n))
        })
    })
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn hash_is_independent_of_insertion_order(
        (d1, d2) in shuffled(any::<String>()),
        (b1, b2) in shuffled(prop::collection::vec(any::<u8>(), 0..8)),
    ) {
        let data = |v: &[(String, String)]| v.iter().cloned().collect::<Data>();
        let binary = |v: &[(String, Vec<u8>)]| v.iter().map(|(k, b)| (k.clone(), ByteString(b.clone()))).collect::<Binary>();
        prop_assert_eq!(cm_hash(&data(&d1), &binary(&b1)), cm_hash(&data(&d2), &binary(&b2)));
        prop_assert_eq!(secret_hash_parts(Some(&binary(&b1))), secret_hash_parts(Some(&binary(&b2))));
    }
}

proptest! {
    #![proptest_config(config(1024))]

    /// Equal payloads hash equal and different ones differ, over a small alphabet where
    /// near-misses (shared keys, prefixes, empty values) are common.
    #[test]
    fn hash_distinguishes_payloads(
        a in (prop::collection::btree_map(small(), small(), 0..3), prop::collection::btree_map(small(), small_bytes(), 0..3)),
        b in (prop::collection::btree_map(small(), small(), 0..3), prop::collection::btree_map(small(), small_bytes(), 0..3)),
    ) {
        let (ha, hb) = (cm_hash(&a.0, &bin(&a.1)), cm_hash(&b.0, &bin(&b.1)));
        prop_assert_eq!(ha == hb, a == b);
        let (sa, sb) = (secret_hash_parts(Some(&bin(&a.1))), secret_hash_parts(Some(&bin(&b.1))));
        prop_assert_eq!(sa == sb, a.1 == b.1);
    }

    #[test]
    fn moving_an_entry_between_data_and_binary_data_changes_the_hash(
        data in prop::collection::btree_map(small(), small(), 0..3),
        binary in prop::collection::btree_map(small(), small_bytes(), 0..3),
        key in small(),
        value in small(),
    ) {
        let (mut d1, mut b1) = (data.clone(), bin(&binary));
        d1.remove(&key);
        b1.remove(&key);
        let (d2, mut b2) = (d1.clone(), b1.clone());
        d1.insert(key.clone(), value.clone());
        b2.insert(key, ByteString(value.into_bytes()));
        prop_assert_ne!(cm_hash(&d1, &b1), cm_hash(&d2, &b2));
    }

    /// An empty map hashes as an absent one, by design: the API server does not keep an empty
    /// `data` (it is omitted when serialised), so `data: {}` and no `data` are the same object
    /// and must not look like a change to each other.
    #[test]
    fn empty_and_absent_maps_hash_the_same(
        data in prop::collection::btree_map(small(), small(), 0..3),
        binary in prop::collection::btree_map(small(), small_bytes(), 0..3),
    ) {
        let (empty_d, empty_b) = (Data::new(), Binary::new());
        let binary = bin(&binary);
        prop_assert_eq!(configmap_hash_parts(Some(&empty_d), Some(&binary)), configmap_hash_parts(None, Some(&binary)));
        prop_assert_eq!(configmap_hash_parts(Some(&data), Some(&empty_b)), configmap_hash_parts(Some(&data), None));
        prop_assert_eq!(secret_hash_parts(Some(&empty_b)), secret_hash_parts(None));
    }

    /// `{k1: v1}` and `{k2: v2}` with `k1 + v1 == k2 + v2` differ, beside any other entries.
    #[test]
    fn key_value_boundary_changes_the_hash(
        (k1, v1, k2, v2) in two_cuts(),
        others in prop::collection::btree_map(small(), small(), 0..3),
        in_binary in any::<bool>(),
    ) {
        let mut rest = others;
        rest.remove(&k1);
        rest.remove(&k2);
        let with = |k: &str, v: &str| {
            let mut m = rest.clone();
            m.insert(k.to_string(), v.to_string());
            m
        };
        let (m1, m2) = (with(&k1, &v1), with(&k2, &v2));
        let as_bin = |m: &Data| m.iter().map(|(k, v)| (k.clone(), ByteString(v.clone().into_bytes()))).collect::<Binary>();
        if in_binary {
            prop_assert_ne!(cm_hash(&Data::new(), &as_bin(&m1)), cm_hash(&Data::new(), &as_bin(&m2)));
        } else {
            prop_assert_ne!(cm_hash(&m1, &Binary::new()), cm_hash(&m2, &Binary::new()));
        }
        prop_assert_ne!(secret_hash_parts(Some(&as_bin(&m1))), secret_hash_parts(Some(&as_bin(&m2))));
    }

    /// A ConfigMap and a Secret never share a hash, even with the same bytes.
    #[test]
    fn configmap_and_secret_hashes_never_collide(
        data in prop::collection::btree_map(small(), small(), 0..3),
        binary in prop::collection::btree_map(small(), small_bytes(), 0..3),
        secret in prop::collection::btree_map(small(), small_bytes(), 0..3),
    ) {
        let as_bin = |m: &Data| m.iter().map(|(k, v)| (k.clone(), ByteString(v.clone().into_bytes()))).collect::<Binary>();
        let s = secret_hash_parts(Some(&bin(&secret)));
        prop_assert_ne!(cm_hash(&data, &bin(&binary)), s);
        prop_assert_ne!(configmap_hash_parts(Some(&data), None), secret_hash_parts(Some(&as_bin(&data))));
        prop_assert_ne!(configmap_hash_parts(None, Some(&bin(&secret))), s);
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Records
// ---------------------------------------------------------------------------------------------

fn source_kind() -> impl Strategy<Value = SourceKind> {
    prop_oneof![Just(SourceKind::ConfigMap), Just(SourceKind::Secret)]
}

fn applied() -> impl Strategy<Value = Applied> {
    prop_oneof![Just(Applied::Absent), any::<[u8; 32]>().prop_map(|h| Applied::Hash(ContentHash(h)))]
}

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn records_round_trip(entries in prop::collection::vec(((source_kind(), ".+"), applied()), 0..6)) {
        let r: Record = entries.into_iter().map(|((k, n), a)| (SourceRef::new(k, n), a)).collect();
        let s = record::encode(&r);
        prop_assert_eq!(record::decode(&s), Ok(r));
    }

    /// Whatever decodes re-encodes to something that decodes the same.
    #[test]
    fn decoded_records_re_encode(s in any_text()) {
        if let Ok(r) = record::decode(&s) {
            prop_assert_eq!(record::decode(&record::encode(&r)), Ok(r));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 4 and 5. The decision
// ---------------------------------------------------------------------------------------------

const NS: &str = "ns";
/// The source names of the universe the workloads below live in, for both kinds.
const NAMES: [&str; 5] = ["a", "b", "app-config", "db.creds", "x-1"];
/// A ConfigMap and a Secret of this name always exist; no workload references them.
const OUTSIDER: &str = "zz-other";
/// Named-reload elements: literals, regexes (one matching every name), an invalid one.
const PATTERNS: [&str; 14] =
    ["a", "b", "app-config", "db.creds", "x-1", "a|b", "app-.*", ".*", "x-[0-9]", "db\\..*", "(", "nope", "A", " b "];
/// The wall clock of every decision: 2023-11-14T22:13:20Z.
const NOW: i64 = 1_700_000_000;

fn now() -> Timestamp {
    Timestamp::from_second(NOW).expect("valid")
}

fn universe(i: usize) -> SourceRef {
    let kind = if i < NAMES.len() { SourceKind::ConfigMap } else { SourceKind::Secret };
    SourceRef::new(kind, NAMES[i % NAMES.len()])
}

fn h(n: u8) -> ContentHash {
    ContentHash([n; 32])
}

fn kind() -> impl Strategy<Value = WorkloadKind> {
    select(WorkloadKind::ALL.to_vec())
}

/// How a container uses a source.
#[derive(Clone, Copy, Debug)]
enum Via {
    EnvFrom,
    EnvKeyRef,
    /// A volume the container mounts.
    Volume,
    /// A volume nobody mounts: not a use.
    Declared,
    /// `envFrom` of an init container: attributed to the first container.
    Init,
}

/// A pod template with these annotations and containers, each using these universe sources.
fn mk_template(annotations: &BTreeMap<String, String>, containers: &[Vec<(usize, Via)>]) -> PodTemplateSpec {
    let (mut list, mut init, mut volumes) = (Vec::new(), Vec::new(), Vec::new());
    for (ci, uses) in containers.iter().enumerate() {
        let (mut env, mut env_from, mut mounts) = (Vec::new(), Vec::new(), Vec::new());
        for (n, (i, via)) in uses.iter().enumerate() {
            let r = universe(*i);
            let cm = r.kind == SourceKind::ConfigMap;
            let volume = format!("v{ci}-{n}");
            match via {
                Via::EnvFrom | Via::Init => {
                    let e = if cm {
                        json!({"configMapRef": {"name": r.name}})
                    } else {
                        json!({"secretRef": {"name": r.name}})
                    };
                    if matches!(via, Via::Init) {
                        init.push(json!({"name": format!("init{ci}-{n}"), "image": "i", "envFrom": [e]}));
                    } else {
                        env_from.push(e);
                    }
                }
                Via::EnvKeyRef => {
                    let from = if cm {
                        json!({"configMapKeyRef": {"name": r.name, "key": "k"}})
                    } else {
                        json!({"secretKeyRef": {"name": r.name, "key": "k"}})
                    };
                    env.push(json!({"name": format!("E{n}"), "valueFrom": from}));
                }
                Via::Volume | Via::Declared => {
                    volumes.push(if cm {
                        json!({"name": volume, "configMap": {"name": r.name}})
                    } else {
                        json!({"name": volume, "secret": {"secretName": r.name}})
                    });
                    if matches!(via, Via::Volume) {
                        mounts.push(json!({"name": volume, "mountPath": format!("/{volume}")}));
                    }
                }
            }
        }
        list.push(
            json!({"name": format!("c{ci}"), "image": "app", "env": env, "envFrom": env_from, "volumeMounts": mounts}),
        );
    }
    serde_json::from_value(json!({
        "metadata": {"annotations": annotations},
        "spec": {"containers": list, "initContainers": init, "volumes": volumes},
    }))
    .expect("a valid pod template")
}

fn managed_by(manager: &str) -> ManagedFieldsEntry {
    ManagedFieldsEntry {
        manager: Some(manager.into()),
        operation: Some("Update".into()),
        fields_v1: Some(FieldsV1(json!({"f:metadata": {"f:annotations": {format!("f:{RECORD_ANNOTATION}"): {}}}}))),
        ..Default::default()
    }
}

/// A workload object of any kind, as the API server holds it.
#[derive(Clone, Debug)]
struct Obj {
    kind: WorkloadKind,
    meta: ObjectMeta,
    template: PodTemplateSpec,
    /// Deployment `spec.paused`.
    paused: bool,
    /// CronJob `spec.suspend`.
    suspended: bool,
}

impl Obj {
    fn new(kind: WorkloadKind, annotations: BTreeMap<String, String>, template: PodTemplateSpec) -> Obj {
        let meta = ObjectMeta {
            name: Some("web".into()),
            namespace: Some(NS.into()),
            uid: Some("uid-0".into()),
            resource_version: Some("100".into()),
            annotations: Some(annotations),
            ..Default::default()
        };
        Obj { kind, meta, template, paused: false, suspended: false }
    }

    fn project(&self, auto_all: bool) -> Workload {
        let keys = Keys::default();
        let controls = Controls { spec_paused: self.paused, suspended: self.suspended, ..Default::default() };
        let (meta, template) = (self.meta.clone(), self.template.clone());
        with_kind_type!(self.kind, K => project_object(&K::fixture(meta, template, &controls), &keys, auto_all))
    }

    fn annotations(&mut self) -> &mut BTreeMap<String, String> {
        self.meta.annotations.get_or_insert_default()
    }

    /// A write by this controller: the API server gives the object a new resourceVersion and
    /// this controller owns the record from then on.
    fn written(&mut self, rv: &mut u64) {
        *rv += 1;
        self.meta.resource_version = Some(rv.to_string());
        self.meta.managed_fields = Some(vec![managed_by(FIELD_MANAGER)]);
    }

    fn write_record(&mut self, r: &Record, rv: &mut u64) {
        self.annotations().insert(RECORD_ANNOTATION.into(), record::encode(r));
        self.written(rv);
    }

    /// What the controller does with a decision, as `reconcile` and `runtime::writer` do
    /// it: resume a paused Deployment first (and nothing else in that pass), else write the
    /// plan: the record alone, or the template change of a reload with the record.
    fn apply(&mut self, w: &Workload, d: &Decision, strategy: ReloadStrategy, rv: &mut u64) -> Pass {
        if d.resume == Some(Resume::Now) {
            self.meta.annotations.get_or_insert_default().remove(&Keys::default().paused_at);
            self.paused = false;
            self.written(rv);
            return Pass::Resumed;
        }
        let (changes, r) = match &d.plan {
            Plan::Nothing => return Pass::Nothing,
            Plan::Adopt(r) | Plan::Record(r) => {
                self.write_record(r, rv);
                return Pass::Planned;
            }
            Plan::Reload { changes, record } => (changes, record),
        };
        if d.record_only.is_some() {
            self.write_record(r, rv);
            return Pass::Planned;
        }
        let unix = NOW;
        match self.kind.info().write {
            Write::PatchTemplate => {
                if mutate_template(&mut self.template, w, changes, strategy, unix) && d.pause_for.is_some() {
                    let at = now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
                    self.annotations().insert(Keys::default().paused_at, at);
                    self.paused = true;
                }
            }
            // A Job is spawned from the job template; the CronJob gets the record only.
            Write::SpawnJob => {}
            Write::Recreate => {
                if mutate_template(&mut self.template, w, changes, strategy, unix) {
                    // Deleted and created again: a new object.
                    self.meta.uid = Some(format!("uid-{rv}"));
                }
            }
            Write::ArgoRollout => {
                if !w.controls.restart_strategy {
                    mutate_template(&mut self.template, w, changes, strategy, unix);
                }
            }
        }
        self.write_record(r, rv);
        Pass::Planned
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pass {
    Nothing,
    Resumed,
    Planned,
}

/// The record annotation a workload starts with.
#[derive(Clone, Debug)]
enum StartRecord {
    None,
    Malformed,
    /// These universe sources at these hashes (`None`: absent).
    Entries(Vec<(usize, Option<u8>)>),
}

/// One source of the universe: its content hash and its match/ignore flags.
#[derive(Clone, Copy, Debug)]
struct Src {
    hash: u8,
    matched: bool,
    ignored: bool,
}

impl Src {
    fn info(self) -> SourceInfo {
        SourceInfo {
            hash: h(self.hash),
            matched: self.matched,
            ignored: self.ignored,
            content_rv: None,
            reloader: Default::default(),
        }
    }
}

/// A workload, its namespace's sources and their recent history.
#[derive(Clone, Debug)]
struct World {
    kind: WorkloadKind,
    meta: BTreeMap<String, String>,
    template_annotations: BTreeMap<String, String>,
    containers: Vec<Vec<(usize, Via)>>,
    record: StartRecord,
    /// The record was last written by someone else (a rollout undo).
    foreign: bool,
    paused: bool,
    suspended: bool,
    auto_all: bool,
    opts: Options,
    strategy: ReloadStrategy,
    /// Per universe source; `None`: it does not exist.
    sources: Vec<Option<Src>>,
    outsiders: (Src, Src),
    /// Earlier changes: (universe source, resourceVersion, the source before; `None`: absent).
    /// The last change of a source that is absent now is its deletion, and its flags are the
    /// deleted object's.
    history: Vec<(usize, u64, Option<Src>)>,
}

fn opt_value(values: &'static [&'static str]) -> impl Strategy<Value = Option<String>> {
    prop::option::weighted(0.4, select(values).prop_map(String::from))
}

fn list_value(elements: &'static [&'static str]) -> impl Strategy<Value = Option<String>> {
    prop::option::weighted(
        0.4,
        (prop::collection::vec(select(elements), 0..3), select(vec![",", ", ", " ,"])).prop_map(|(v, sep)| v.join(sep)),
    )
}

const BOOLS: &[&str] = &["true", "false", "", "True", "1", "yes"];

/// The policy annotations, each absent or set to a meaningful (or malformed) value: auto,
/// typed auto, named lists with literals and regexes, search; and exclude lists.
fn policy_annotations(with_exclude: bool) -> impl Strategy<Value = BTreeMap<String, String>> {
    let k = Keys::default();
    let keys = [k.auto, k.configmap_auto, k.secret_auto, k.configmap_reload, k.secret_reload, k.search];
    (
        (opt_value(BOOLS), opt_value(BOOLS), opt_value(BOOLS)),
        (list_value(&PATTERNS), list_value(&PATTERNS), opt_value(&["true", "false", ""])),
        (list_value(&NAMES), list_value(&NAMES)),
    )
        .prop_map(move |((a, ca, sa), (cr, sr, s), (ce, se))| {
            let mut m = BTreeMap::new();
            for (key, v) in keys.iter().zip([a, ca, sa, cr, sr, s]) {
                if let Some(v) = v {
                    m.insert(key.clone(), v);
                }
            }
            if with_exclude {
                for (key, v) in [(CONFIGMAP_EXCLUDE, ce), (SECRET_EXCLUDE, se)] {
                    if let Some(v) = v {
                        m.insert(key.to_string(), v);
                    }
                }
            }
            m
        })
}

fn src() -> impl Strategy<Value = Src> {
    (0u8..4, prop::bool::weighted(0.3), prop::bool::weighted(0.15)).prop_map(|(hash, matched, ignored)| Src {
        hash,
        matched,
        ignored,
    })
}

fn via() -> impl Strategy<Value = Via> {
    prop_oneof![4 => Just(Via::EnvFrom), 2 => Just(Via::EnvKeyRef), 2 => Just(Via::Volume), 1 => Just(Via::Declared), 1 => Just(Via::Init)]
}

fn world() -> impl Strategy<Value = World> {
    let n = 2 * NAMES.len();
    let k = Keys::default();
    let (pause_period, paused_at) = (k.pause_period, k.paused_at);
    let controls = (
        opt_value(&["10s", "0", "-1s", "5m", "bogus", ""]),
        // 5 s and 2 h before now, 10 s after it, unreadable.
        opt_value(&["2023-11-14T22:13:15Z", "2023-11-14T20:13:20Z", "2023-11-14T22:13:30Z", "yesterday"]),
        opt_value(&["restart", "Restart", ""]),
    )
        .prop_map(move |(pp, pa, rs)| {
            let mut m = BTreeMap::new();
            for (key, v) in [(pause_period.clone(), pp), (paused_at.clone(), pa), (ROLLOUT_STRATEGY.to_string(), rs)] {
                if let Some(v) = v {
                    m.insert(key, v);
                }
            }
            m
        });
    let record = prop_oneof![
        1 => Just(StartRecord::None),
        1 => Just(StartRecord::Malformed),
        4 => prop::collection::vec((0..n, prop::option::weighted(0.8, 0u8..4)), 0..5).prop_map(StartRecord::Entries),
    ];
    let flags = (
        any::<bool>(),
        prop::bool::weighted(0.2),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    );
    (
        (kind(), policy_annotations(true), controls, prop::option::weighted(0.2, policy_annotations(false))),
        prop::collection::vec(prop::collection::vec((0..n, via()), 0..4), 1..3),
        (record, flags),
        (prop::collection::vec(prop::option::weighted(0.75, src()), n), src(), src()),
        prop::collection::vec((0..n, 1u64..200, prop::option::weighted(0.8, src())), 0..4),
    )
        .prop_map(
            |((kind, policy, controls, template), containers, (record, flags), (sources, o1, o2), history)| {
                let (foreign, paused, suspended, auto_all, create, delete, env_vars) = flags;
                let mut meta = policy;
                meta.extend(controls);
                World {
                    kind,
                    meta,
                    template_annotations: template.unwrap_or_default(),
                    containers,
                    record,
                    foreign,
                    paused,
                    suspended,
                    auto_all,
                    opts: Options { reload_on_create: create, reload_on_delete: delete },
                    strategy: if env_vars { ReloadStrategy::EnvVars } else { ReloadStrategy::Annotations },
                    sources,
                    outsiders: (o1, o2),
                    history,
                }
            },
        )
}

/// The world set up in an index as the watches would have filled it, and the workload object.
struct Run {
    world: World,
    st: Index,
    obj: Obj,
    /// The last resourceVersion handed out.
    rv: u64,
    key: WorkloadKey,
}

impl Run {
    fn new(world: World) -> Run {
        let mut st = Index::default();
        for (i, s) in world.sources.iter().enumerate() {
            if let Some(s) = s {
                let r = universe(i);
                st.upsert_source(NS, r.kind, &r.name, s.info());
            }
        }
        st.upsert_source(NS, SourceKind::ConfigMap, OUTSIDER, world.outsiders.0.info());
        st.upsert_source(NS, SourceKind::Secret, OUTSIDER, world.outsiders.1.info());
        let t = std::time::Instant::now();
        for (i, rv, before) in &world.history {
            st.note_change(NS, &universe(*i), Some(*rv), before.map(Src::info), t);
        }
        let mut meta = world.meta.clone();
        match &world.record {
            StartRecord::None => {}
            StartRecord::Malformed => {
                meta.insert(RECORD_ANNOTATION.into(), "{not json".into());
            }
            StartRecord::Entries(e) => {
                let r: Record =
                    e.iter().map(|(i, a)| (universe(*i), a.map_or(Applied::Absent, |n| Applied::Hash(h(n))))).collect();
                meta.insert(RECORD_ANNOTATION.into(), record::encode(&r));
            }
        }
        let mut obj = Obj::new(world.kind, meta, mk_template(&world.template_annotations, &world.containers));
        obj.paused = world.paused;
        obj.suspended = world.suspended;
        if world.foreign {
            obj.meta.managed_fields = Some(vec![managed_by("kubectl-rollout")]);
        }
        let w = obj.project(world.auto_all);
        let key = w.key.clone();
        st.upsert_workload(w);
        Run { world, st, obj, rv: 200, key }
    }

    fn workload(&self) -> Workload {
        self.st.workload(&self.key).expect("indexed").clone()
    }

    /// The decision as `reconcile` takes it, from the index.
    fn decide(&self) -> (BTreeMap<SourceRef, Considered>, Decision) {
        let w = self.workload();
        decide::decide(
            &w,
            self.st.sources(NS),
            Some(self.st.history()),
            self.world.opts,
            &Keys::default().pause_period,
            now(),
        )
    }

    /// One reconcile pass, and the watch delivering the written object to the index.
    fn pass(&mut self) -> (Decision, Pass) {
        let (_, d) = self.decide();
        let w = self.workload();
        let pass = self.obj.apply(&w, &d, self.world.strategy, &mut self.rv);
        if pass != Pass::Nothing {
            self.st.upsert_workload(self.obj.project(self.world.auto_all));
        }
        (d, pass)
    }

    /// Passes until a plan is written (a resume may come first) or there is nothing to do.
    fn settle(&mut self) -> Result<Vec<(Decision, Pass)>, TestCaseError> {
        let mut passes = Vec::new();
        loop {
            let (d, p) = self.pass();
            passes.push((d, p));
            match p {
                Pass::Resumed if passes.len() < 3 => {}
                Pass::Resumed => return Err(TestCaseError::fail(format!("resumed again and again: {passes:?}"))),
                Pass::Nothing | Pass::Planned => return Ok(passes),
            }
        }
    }

    /// A source event as the watches handle it: the index updated, a change of content noted
    /// in history; a deletion with the flags the source had (those of the deleted object).
    fn set_source(&mut self, r: &SourceRef, info: Option<SourceInfo>) {
        self.rv += 1;
        let now = std::time::Instant::now();
        let old = self.st.sources(NS).and_then(|s| s.get(r)).cloned();
        match info {
            Some(info) => {
                let changed = old.as_ref().map(|o| o.hash) != Some(info.hash);
                self.st.upsert_source(NS, r.kind, &r.name, info);
                if changed {
                    self.st.note_change(NS, r, Some(self.rv), old, now);
                }
            }
            None => {
                self.st.delete_source(NS, r, Some(self.rv), None, now);
            }
        }
    }

    /// Every source of the namespace, existing or not, that does not govern the workload now.
    fn not_governing(&self, considered: &BTreeMap<SourceRef, Considered>) -> Vec<SourceRef> {
        (0..2 * NAMES.len())
            .map(universe)
            .chain([SourceRef::new(SourceKind::ConfigMap, OUTSIDER), SourceRef::new(SourceKind::Secret, OUTSIDER)])
            .filter(|r| considered.get(r).is_none_or(|c| matches!(c.reason, Reason::Skipped(_))))
            .collect()
    }
}

proptest! {
    #![proptest_config(config(512))]

    /// Deciding again after the plan is applied (the record written, the template changed, the
    /// Deployment paused or the Job re-created, as the controller writes them) plans nothing.
    #[test]
    fn the_decision_is_idempotent(world in world()) {
        let mut run = Run::new(world);
        let passes = run.settle()?;
        let (considered, again) = run.decide();
        prop_assert_eq!(
            &again.plan, &Plan::Nothing,
            "after {:?}\nconsidered {:?}\nworkload {:?}", passes, considered, run.workload()
        );
        prop_assert_eq!(again.pause_for, None);
        prop_assert_eq!(again.record_only, None);
    }

    /// Once the record is up to date, a new content of a source that does not govern the
    /// workload plans nothing at all.
    #[test]
    fn a_source_that_does_not_govern_changes_nothing(world in world(), pick in any::<Pick>(), new_hash in 4u8..8) {
        let mut run = Run::new(world);
        run.settle()?;
        let (considered, d) = run.decide();
        prop_assert_eq!(&d.plan, &Plan::Nothing);
        let present: Vec<SourceRef> = run
            .not_governing(&considered)
            .into_iter()
            .filter(|r| run.st.sources(NS).is_some_and(|s| s.get(r).is_some()))
            .collect();
        if present.is_empty() {
            // Every source governs it (a `.*` pattern of each kind, say).
            return Ok(());
        }
        let r = pick.get(&present).clone();
        let old = run.st.sources(NS).and_then(|s| s.get(&r)).cloned().expect("present");
        run.set_source(&r, Some(SourceInfo { hash: h(new_hash), ..old }));
        let (after, d) = run.decide();
        prop_assert_eq!(&d.plan, &Plan::Nothing, "{} changed; considered before {:?}, after {:?}", r, considered, after);
    }
}

proptest! {
    #![proptest_config(config(512))]

    /// Once the record is up to date, deleting a source that does not govern the workload, or
    /// creating one that does not govern it once created, rolls nothing. (Whether a source
    /// governs is read where it has annotations: before a deletion, from the deleted object,
    /// after a creation.)
    #[test]
    fn creating_or_deleting_a_source_that_does_not_govern_rolls_nothing(
        world in world(),
        pick in any::<Pick>(),
        created in src(),
    ) {
        let mut run = Run::new(world);
        run.settle()?;
        let (considered, _) = run.decide();
        let candidates = run.not_governing(&considered);
        if candidates.is_empty() {
            return Ok(());
        }
        let r = pick.get(&candidates).clone();
        let old = run.st.sources(NS).and_then(|s| s.get(&r)).cloned();
        let new = if old.is_some() { None } else { Some(created.info()) };
        run.set_source(&r, new.clone());
        let (after, d) = run.decide();
        if new.is_some() && after.get(&r).is_some_and(|c| !matches!(c.reason, Reason::Skipped(_))) {
            // Created governing: a creation that counts.
            return Ok(());
        }
        prop_assert!(
            !matches!(d.plan, Plan::Reload { .. }),
            "{} {:?} -> {:?}: {:?}\nconsidered before {:?}\nafter {:?}", r, old, new, d.plan, considered, after
        );
    }
}

/// Reloader reads the ignore annotation from the deleted object itself, so it never rolls a
/// workload for the deletion of an ignored source. The index keeps the deleted object's flags
/// in its history, so the source does not look governed (auto, referenced) once it is gone,
/// although the deletion came after the workload was first seen.
#[test]
fn deleting_an_ignored_source_does_not_reload() {
    let world = World {
        kind: WorkloadKind::Deployment,
        meta: [(Keys::default().auto, "true".to_string())].into(),
        template_annotations: BTreeMap::new(),
        containers: vec![vec![(0, Via::EnvFrom)]],
        record: StartRecord::None,
        foreign: false,
        paused: false,
        suspended: false,
        auto_all: false,
        opts: Options { reload_on_create: false, reload_on_delete: true },
        strategy: ReloadStrategy::Annotations,
        sources: (0..2 * NAMES.len())
            .map(|i| (i == 0).then_some(Src { hash: 1, matched: false, ignored: true }))
            .collect(),
        outsiders: (Src { hash: 0, matched: false, ignored: false }, Src { hash: 0, matched: false, ignored: false }),
        history: vec![],
    };
    let mut run = Run::new(world);
    let passes = run.settle().expect("settles");
    assert_eq!(passes.last().map(|(d, _)| &d.plan), Some(&Plan::Nothing), "configmap/a is ignored: nothing governs");
    run.set_source(&universe(0), None);
    let (considered, d) = run.decide();
    assert_eq!(d.plan, Plan::Nothing, "considered {considered:?}");
}
