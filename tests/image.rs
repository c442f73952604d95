//! The image's inputs: the Dockerfile's build stage copies exactly what `hack/image-inputs`
//! lists (`hack/image.sh` builds from that list), and every target `Cargo.toml` declares lives
//! in them, so `cargo build` in the build stage finds all it reads. (It once did not: the bench
//! targets were not copied.) `hack/image.sh --run` builds and runs the image in CI.

use std::path::Path;

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

fn inputs() -> Vec<String> {
    read("hack/image-inputs")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

#[test]
fn the_dockerfile_copies_exactly_the_listed_inputs() {
    let copies: Vec<String> = read("Dockerfile")
        .lines()
        .filter_map(|l| l.strip_prefix("COPY "))
        .filter(|l| !l.starts_with("--from"))
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect();
    assert_eq!(copies, inputs(), "the Dockerfile's COPY lines against hack/image-inputs");
}

#[test]
fn every_target_of_the_manifest_is_among_the_inputs() {
    let inputs = inputs();
    let manifest = read("Cargo.toml");
    // Target files: explicit `path = "…"`, and `benches/<name>` for a bench without one.
    let mut files: Vec<String> = Vec::new();
    let mut section = String::new();
    let mut name = String::new();
    let mut path_seen = false;
    fn close(section: &str, name: &str, path_seen: bool, files: &mut Vec<String>) {
        if section == "[[bench]]" && !path_seen && !name.is_empty() {
            files.push(format!("benches/{name}"));
        }
    }
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            close(&section, &name, path_seen, &mut files);
            (section, name, path_seen) = (line.to_string(), String::new(), false);
        } else if let Some(v) = line.strip_prefix("name = ") {
            name = v.trim_matches('"').to_string();
        } else if let Some(v) = line.strip_prefix("path = ") {
            files.push(v.trim_matches('"').to_string());
            path_seen = true;
        }
    }
    close(&section, &name, path_seen, &mut files);
    assert!(files.iter().any(|f| f.starts_with("benches/")), "the check reads the bench targets: {files:?}");
    for f in files {
        let top = f.split('/').next().unwrap();
        assert!(inputs.iter().any(|i| i == top), "{f} is a target but {top} is not copied into the image's build");
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        assert!(repo.join(&f).exists() || repo.join(format!("{f}.rs")).exists(), "{f} does not exist");
    }
}
