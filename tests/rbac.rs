//! Every workload kind the controller knows (`reloader::kinds::rbac_rules`, read from the
//! kind registry) has its RBAC rules in the chart — cluster-wide and namespaced, with its opt-in
//! value set when it has one — and in `deploy/`, so a new kind cannot ship without its rules.
//! (`chart.rs` proves the rules work by running the controller under them.)

mod common;

use std::process::Command;

use common::*;
use reloader::kinds::{KindRule, rbac_rules};

/// One rule of a rendered Role or ClusterRole.
#[derive(Debug)]
struct Granted {
    api_groups: Vec<String>,
    resources: Vec<String>,
    verbs: Vec<String>,
}

/// The rules in rendered manifests. The chart writes each as three lines of JSON arrays
/// (`- apiGroups: [...]`, `resources: [...]`, `verbs: [...]`); anything else is a failure here.
/// A rule limited to some objects (`resourceNames: [...]` after them) grants no kind-wide
/// access, so it is left out.
fn rules(manifests: &str) -> Vec<Granted> {
    let lines: Vec<&str> = manifests.lines().map(str::trim).collect();
    let list = |line: &str, key: &str| -> Vec<String> {
        let v = line.strip_prefix(key).unwrap_or_else(|| panic!("expected {key} after apiGroups, got {line:?}"));
        serde_json::from_str(v.trim()).unwrap_or_else(|e| panic!("{key} is not a JSON list: {line:?} ({e})"))
    };
    lines
        .iter()
        .enumerate()
        .filter(|(i, l)| {
            l.starts_with("- apiGroups:") && !lines.get(i + 3).is_some_and(|n| n.starts_with("resourceNames:"))
        })
        .map(|(i, l)| Granted {
            api_groups: list(l, "- apiGroups:"),
            resources: list(lines[i + 1], "resources:"),
            verbs: list(lines[i + 2], "verbs:"),
        })
        .collect()
}

fn grants(rules: &[Granted], want: &KindRule) -> bool {
    rules.iter().any(|r| {
        let has = |l: &[String], v: &str| l.iter().any(|x| x == v || x == "*");
        has(&r.api_groups, want.api_group)
            && has(&r.resources, want.resource)
            && want.verbs.iter().all(|v| has(&r.verbs, v))
    })
}

/// The pinned helm that `make tools` builds; rendering needs no cluster.
fn helm() -> std::path::PathBuf {
    let out = Command::new("bash").arg(repo().join("hack/tools.sh")).arg("--check").output().expect("run tools.sh");
    assert!(out.status.success(), "the pinned tools are not built: run make tools");
    std::path::PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("helm")
}

fn render(sets: &[String]) -> String {
    let chart = repo().join("charts/reloader");
    let mut args = vec!["template".to_string(), "reloader".into(), chart.display().to_string(), "-n".into()];
    args.push("common-service".into());
    for s in sets {
        args.extend(["--set".to_string(), s.clone()]);
    }
    let out = Command::new(helm()).args(&args).output().expect("run helm");
    assert!(out.status.success(), "helm {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

/// The rules `rendered` lacks, in words.
fn missing(rendered: &str, wanted: impl Iterator<Item = KindRule>) -> Vec<String> {
    let granted = rules(rendered);
    assert!(!granted.is_empty(), "no RBAC rules found in the render");
    wanted
        .filter(|w| !grants(&granted, w))
        .map(|w| format!("{}: {:?} {} {:?}", w.kind, w.api_group, w.resource, w.verbs))
        .collect()
}

#[test]
fn every_workload_kind_has_its_rules_in_the_chart_and_in_deploy() {
    let all = rbac_rules();
    assert!(all.iter().any(|r| r.resource == "deployments"), "the registry lists the kinds: {all:?}");
    let default_kinds = || all.iter().filter(|r| r.chart_value.is_none()).cloned();
    let opt_in: Vec<String> = all.iter().filter_map(|r| r.chart_value).map(|v| format!("{v}=true")).collect::<Vec<_>>();
    let namespaced = |mut sets: Vec<String>| {
        sets.push("reloader.watchGlobally=false".into());
        sets
    };

    let mut problems = Vec::new();
    for (what, rendered, wanted) in [
        ("the chart's defaults", render(&[]), default_kinds().collect::<Vec<_>>()),
        ("the chart's defaults, namespaced", render(&namespaced(vec![])), default_kinds().collect()),
        ("the chart with every opt-in kind on", render(&opt_in), all.clone()),
        ("the chart with every opt-in kind on, namespaced", render(&namespaced(opt_in.clone())), all.clone()),
        (
            "deploy/reloader.yaml",
            std::fs::read_to_string(repo().join("deploy/reloader.yaml")).expect("read deploy/reloader.yaml"),
            default_kinds().collect(),
        ),
    ] {
        for m in missing(&rendered, wanted.into_iter()) {
            problems.push(format!("{what} does not grant {m}"));
        }
    }
    assert!(problems.is_empty(), "RBAC rules missing for workload kinds:\n{}", problems.join("\n"));
}

/// The check finds a rule that is missing.
#[test]
fn a_missing_rule_is_found() {
    let rendered =
        "rules:\n  - apiGroups: [\"apps\"]\n    resources: [\"deployments\"]\n    verbs: [\"get\", \"list\"]\n";
    let want = |resource, verbs| KindRule { kind: "X", api_group: "apps", resource, verbs, chart_value: None };
    assert_eq!(missing(rendered, [want("deployments", &["get"][..])].into_iter()), Vec::<String>::new());
    assert_eq!(missing(rendered, [want("deployments", &["patch"][..])].into_iter()).len(), 1);
    assert_eq!(missing(rendered, [want("statefulsets", &["get"][..])].into_iter()).len(), 1);
}
