//! `--help` is part of the interface: Reloader's flags keep their names, env names and text
//! whatever the code's shape. The binary's help, run with an empty environment (clap shows
//! an environment variable's value when one is set), must match the committed text exactly.

use std::process::Command;

fn help(args: &[&str]) -> String {
    let out =
        Command::new(env!("CARGO_BIN_EXE_reloader")).args(args).env_clear().output().expect("run the reloader binary");
    assert!(out.status.success(), "reloader {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8 help")
}

fn golden(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

#[test]
fn help_text_is_unchanged() {
    for (args, file) in [
        (&["--help"][..], "help.txt"),
        (&["run", "--help"][..], "help-run.txt"),
        (&["explain", "--help"][..], "help-explain.txt"),
    ] {
        let (got, want) = (help(args), golden(file));
        if got != want {
            let diff: Vec<String> = got
                .lines()
                .zip(want.lines())
                .enumerate()
                .filter(|(_, (g, w))| g != w)
                .take(5)
                .map(|(i, (g, w))| format!("line {}:\n  now:  {g}\n  was:  {w}", i + 1))
                .collect();
            panic!(
                "reloader {} differs from tests/golden/{file} ({} lines now, {} before):\n{}",
                args.join(" "),
                got.lines().count(),
                want.lines().count(),
                diff.join("\n")
            );
        }
    }
}
