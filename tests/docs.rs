//! The documentation holds together, with no cluster: every Markdown file of the repository
//! (outside `target/`, `.git/` and the local control planes' state) is read, and every inline
//! link or image `[text](target)` and every reference-style definition `[label]: target` outside
//! fenced code blocks and inline code is checked. `http://`, `https://` and `mailto:` targets are
//! left alone; any other target must exist, relative to the file that links to it and inside the
//! repository, and an `#anchor` (also a bare one, to the same file) must be the GitHub slug of a
//! heading of the Markdown file it points to. All failures are reported at once, each with its
//! file, line and link. README.md stays at most 400 lines, links to every page of docs/, and
//! every page links back to it.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Component, Path, PathBuf};

const README_MAX_LINES: usize = 400;

/// Directories at the top of the repository that hold no documentation: build output, git's
/// data, and the local control planes' state (all in .gitignore).
const SKIPPED_TOP_DIRS: &[&str] = &["target", ".git", ".cluster", ".cluster-bench", ".cluster-soak"];

/// Stands in for a character of inline code or a backslash escape, so that it is never taken
/// for markup. A private-use character: neither whitespace nor a bracket.
const HIDDEN: char = '\u{E000}';

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn shown(root: &Path, path: &Path) -> String {
    path.strip_prefix(root).unwrap_or(path).display().to_string()
}

fn is_markdown(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("md") || e.eq_ignore_ascii_case("markdown"))
}

/// Every Markdown file under `root`, sorted; symbolic links are not followed.
fn markdown_files(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
        for entry in entries {
            let entry = entry.unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
            let kind = entry.file_type().unwrap_or_else(|e| panic!("{}: {e}", entry.path().display()));
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if kind.is_dir() {
                let skipped = name == ".git" || (dir == root && SKIPPED_TOP_DIRS.contains(&name.as_ref()));
                if !skipped {
                    dirs.push(entry.path());
                }
            } else if kind.is_file() && is_markdown(&entry.path()) {
                found.push(entry.path());
            }
        }
    }
    found.sort();
    found
}

/// An opening or closing code fence: its character, its length and what follows it.
fn fence(line: &str) -> Option<(char, usize, &str)> {
    let trimmed = line.trim_start();
    let c = trimmed.chars().next().filter(|&c| c == '`' || c == '~')?;
    let len = trimmed.chars().take_while(|&x| x == c).count();
    let info = &trimmed[len..];
    // Three backticks followed by more backticks on the line are inline code, not a fence.
    (len >= 3 && !(c == '`' && info.contains('`'))).then_some((c, len, info))
}

/// The lines outside fenced code blocks, numbered from 1; the fences themselves are left out.
fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut lines = Vec::new();
    let mut open: Option<(char, usize)> = None;
    for (i, line) in text.lines().enumerate() {
        match (open, fence(line)) {
            (None, Some((c, len, _))) => open = Some((c, len)),
            (Some((c, len)), Some((d, n, info))) if d == c && n >= len && info.trim().is_empty() => open = None,
            (None, None) => lines.push((i + 1, line)),
            (Some(_), _) => {}
        }
    }
    lines
}

fn atx_heading(line: &str) -> Option<&str> {
    let indent = line.len() - line.trim_start_matches(' ').len();
    if indent > 3 {
        return None;
    }
    let t = &line[indent..];
    let level = t.chars().take_while(|&c| c == '#').count();
    let rest = &t[level..];
    if level == 0 || level > 6 || !(rest.is_empty() || rest.starts_with([' ', '\t'])) {
        return None;
    }
    let text = rest.trim();
    let unclosed = text.trim_end_matches('#');
    Some(if unclosed.is_empty() {
        ""
    } else if unclosed.ends_with([' ', '\t']) {
        unclosed.trim_end()
    } else {
        text
    })
}

fn is_table_row(line: &str) -> bool {
    line.trim_start().starts_with('|')
}

/// Runs of lines that inline markup can span: a paragraph, or a heading or a table row alone.
fn blocks(text: &str) -> Vec<Vec<(usize, &str)>> {
    let mut blocks: Vec<Vec<(usize, &str)>> = Vec::new();
    let mut current: Vec<(usize, &str)> = Vec::new();
    for (number, line) in prose_lines(text) {
        let follows = current.last().is_some_and(|&(n, _)| n + 1 == number);
        if !follows || line.trim().is_empty() {
            blocks.extend((!current.is_empty()).then(|| std::mem::take(&mut current)));
        }
        if line.trim().is_empty() {
            continue;
        }
        if atx_heading(line).is_some() || is_table_row(line) {
            blocks.extend((!current.is_empty()).then(|| std::mem::take(&mut current)));
            blocks.push(vec![(number, line)]);
        } else {
            current.push((number, line));
        }
    }
    blocks.extend((!current.is_empty()).then_some(current));
    blocks
}

/// `chars` with inline code (delimiters included) and backslash escapes hidden.
fn mask(chars: &[char]) -> Vec<char> {
    let mut out = chars.to_vec();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' if chars.get(i + 1).is_some_and(|c| c.is_ascii_punctuation()) => {
                out[i..i + 2].fill(HIDDEN);
                i += 2;
            }
            '`' => {
                let run = chars[i..].iter().take_while(|&&c| c == '`').count();
                // A code span ends at the next run of exactly as many backticks; without one,
                // the backticks are literal.
                let mut j = i + run;
                let mut close = None;
                while j < chars.len() {
                    if chars[j] == '`' {
                        let n = chars[j..].iter().take_while(|&&c| c == '`').count();
                        if n == run {
                            close = Some(j + n);
                            break;
                        }
                        j += n;
                    } else {
                        j += 1;
                    }
                }
                match close {
                    Some(end) => {
                        out[i..end].fill(HIDDEN);
                        i = end;
                    }
                    None => i += run,
                }
            }
            _ => i += 1,
        }
    }
    out
}

/// An inline link or image, as positions in its block: the `[` (or `!` of an image), the text
/// between the brackets, the destination, and the closing `)`.
struct Inline {
    start: usize,
    text: (usize, usize),
    dest: (usize, usize),
    end: usize,
}

fn skip_whitespace(m: &[char], mut k: usize) -> usize {
    while k < m.len() && m[k].is_whitespace() {
        k += 1;
    }
    k
}

/// The destination and the closing `)` of `(destination "title")` starting at `k`, just after
/// the `(`.
fn destination(m: &[char], k: usize) -> Option<((usize, usize), usize)> {
    let mut k = skip_whitespace(m, k);
    let dest;
    if m.get(k) == Some(&'<') {
        let end = (k + 1..m.len()).find(|&j| matches!(m[j], '>' | '<' | '\n'))?;
        if m[end] != '>' {
            return None;
        }
        dest = (k + 1, end);
        k = end + 1;
    } else {
        let mut depth = 0usize;
        let mut j = k;
        while j < m.len() && !m[j].is_whitespace() && !m[j].is_control() {
            match m[j] {
                '(' => depth += 1,
                ')' if depth == 0 => break,
                ')' => depth -= 1,
                _ => {}
            }
            j += 1;
        }
        dest = (k, j);
        k = j;
    }
    let after = skip_whitespace(m, k);
    if after > k && matches!(m.get(after), Some('"' | '\'' | '(')) {
        let close = if m[after] == '(' { ')' } else { m[after] };
        let end = (after + 1..m.len()).find(|&j| m[j] == close)?;
        k = skip_whitespace(m, end + 1);
    } else {
        k = after;
    }
    (m.get(k) == Some(&')')).then_some((dest, k))
}

/// The inline links and images of a block, with its markup already masked.
fn inline_links(m: &[char]) -> Vec<Inline> {
    let mut found = Vec::new();
    for close in 0..m.len().saturating_sub(1) {
        if m[close] != ']' || m[close + 1] != '(' {
            continue;
        }
        let mut depth = 0usize;
        let mut open = None;
        for j in (0..close).rev() {
            match m[j] {
                ']' => depth += 1,
                '[' if depth == 0 => {
                    open = Some(j);
                    break;
                }
                '[' => depth -= 1,
                _ => {}
            }
        }
        let Some(open) = open else { continue };
        let Some((dest, end)) = destination(m, close + 2) else { continue };
        let start = if open > 0 && m[open - 1] == '!' { open - 1 } else { open };
        found.push(Inline { start, text: (open + 1, close), dest, end });
    }
    found
}

/// A reference-style link definition, `[label]: destination "title"`: its destination.
fn definition(line: &str) -> Option<&str> {
    let indent = line.len() - line.trim_start_matches(' ').len();
    if indent > 3 {
        return None;
    }
    let rest = line[indent..].strip_prefix('[')?;
    let close = rest.find("]:")?;
    let label = &rest[..close];
    // `[^1]: …` is a footnote, not a link.
    if label.trim().is_empty() || label.starts_with('^') || label.contains(['[', ']']) {
        return None;
    }
    let after = rest[close + 2..].trim_start();
    match after.strip_prefix('<') {
        Some(inner) => inner.find('>').map(|end| &inner[..end]),
        None => after.split_whitespace().next(),
    }
}

/// A link found in a Markdown file.
#[derive(Debug)]
struct Link {
    line: usize,
    /// The link as written, on one line.
    written: String,
    target: String,
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match chars.peek() {
            Some(&next) if c == '\\' && next.is_ascii_punctuation() => {
                out.push(next);
                chars.next();
            }
            _ => out.push(c),
        }
    }
    out
}

fn links(text: &str) -> Vec<Link> {
    let mut found = Vec::new();
    for block in blocks(text) {
        // Definitions open a block; they cannot interrupt a paragraph.
        for &(number, line) in block.iter().take_while(|(_, line)| definition(line).is_some()) {
            let target = definition(line).unwrap_or_default();
            found.push(Link { line: number, written: line.trim().to_string(), target: unescape(target) });
        }
        let mut chars = Vec::new();
        let mut line_of = Vec::new();
        for (i, &(number, line)) in block.iter().enumerate() {
            if i > 0 {
                chars.push('\n');
                line_of.push(number);
            }
            for c in line.chars() {
                chars.push(c);
                line_of.push(number);
            }
        }
        for link in inline_links(&mask(&chars)) {
            let target: String = chars[link.dest.0..link.dest.1].iter().collect();
            let written: String =
                chars[link.start..=link.end].iter().map(|&c| if c == '\n' { ' ' } else { c }).collect();
            found.push(Link { line: line_of[link.dest.0.min(link.end)], written, target: unescape(&target) });
        }
    }
    found
}

/// A heading's text as GitHub renders it, near enough for its slug: links and images give
/// their text, HTML tags outside inline code are dropped.
fn rendered(heading: &str) -> String {
    let chars: Vec<char> = heading.chars().collect();
    let m = mask(&chars);
    let links: HashMap<usize, Inline> = inline_links(&m).into_iter().map(|l| (l.start, l)).collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        if let Some(link) = links.get(&i) {
            out.push_str(&rendered(&chars[link.text.0..link.text.1].iter().collect::<String>()));
            i = link.end + 1;
        } else if m[i] == '<' && m.get(i + 1).is_some_and(|&c| c.is_ascii_alphabetic() || c == '/') {
            match (i..m.len()).find(|&j| m[j] == '>') {
                Some(end) => i = end + 1,
                None => {
                    out.push('<');
                    i += 1;
                }
            }
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

/// GitHub's slug of a heading: lower-case, each space a `-`, every other character that is
/// not a letter, a digit, `-` or `_` removed.
fn slug(heading: &str) -> String {
    rendered(heading)
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of a Markdown file: its headings' slugs, a repeated one suffixed `-1`, `-2`…
/// as GitHub does, and the names and ids of its HTML anchors.
fn anchors(text: &str) -> HashSet<String> {
    let mut count: HashMap<String, usize> = HashMap::new();
    let mut anchors = HashSet::new();
    for (_, line) in prose_lines(text) {
        let Some(heading) = atx_heading(line) else { continue };
        let base = slug(heading);
        let mut anchor = base.clone();
        while count.contains_key(&anchor) {
            let n = count.get_mut(&base).expect("a taken slug counts its repeats");
            *n += 1;
            anchor = format!("{base}-{n}");
        }
        count.insert(anchor.clone(), 0);
        anchors.insert(anchor);
    }
    for (_, line) in prose_lines(text) {
        for tag in line.split("<a ").skip(1) {
            let tag = tag.split('>').next().unwrap_or_default();
            for attribute in ["name=\"", "id=\""] {
                if let Some(value) = tag.split(attribute).nth(1).and_then(|v| v.split('"').next()) {
                    anchors.insert(value.to_string());
                }
            }
        }
    }
    anchors
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).filter(|h| h.iter().all(u8::is_ascii_hexdigit));
            let hex = hex.ok_or_else(|| format!("bad percent-encoding in {s:?}"))?;
            let hex = std::str::from_utf8(hex).map_err(|e| e.to_string())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|e| e.to_string())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("the percent-encoding of {s:?} is not UTF-8"))
}

/// `path` with `.` and `..` resolved without looking at the file system.
fn normalize(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    Some(out)
}

/// `L12` or `L12-L20`: GitHub's anchors for lines of a file that is not rendered.
fn is_line_anchor(anchor: &str) -> bool {
    let number = |s: &str| s.strip_prefix('L').is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    match anchor.split_once('-') {
        Some((from, to)) => number(from) && number(to),
        None => number(anchor),
    }
}

/// Why `target`, linked from `file`, does not resolve, if it does not.
fn unresolved(root: &Path, file: &Path, target: &str, cache: &mut HashMap<PathBuf, HashSet<String>>) -> Option<String> {
    let target = target.trim();
    if target.is_empty() {
        return Some("the target is empty".to_string());
    }
    let lower = target.to_ascii_lowercase();
    if ["http://", "https://", "mailto:"].iter().any(|scheme| lower.starts_with(scheme)) {
        return None;
    }
    let (path, anchor) = match target.split_once('#') {
        Some((path, anchor)) => (path, Some(anchor)),
        None => (target, None),
    };
    let path = path.split_once('?').map_or(path, |(path, _)| path);
    let path = match percent_decode(path) {
        Ok(path) => path,
        Err(e) => return Some(e),
    };
    let joined = if path.is_empty() {
        file.to_path_buf()
    } else if let Some(from_root) = path.strip_prefix('/') {
        root.join(from_root)
    } else {
        file.parent().unwrap_or(root).join(&path)
    };
    let resolved = match normalize(&joined) {
        Some(resolved) if resolved.starts_with(root) => resolved,
        _ => return Some(format!("{path} is outside the repository")),
    };
    if !resolved.exists() {
        return Some(format!("{} does not exist", shown(root, &resolved)));
    }
    let anchor = match percent_decode(anchor?) {
        Ok(anchor) if anchor.is_empty() => return None,
        Ok(anchor) => anchor,
        Err(e) => return Some(e),
    };
    let page = if resolved.is_dir() { resolved.join("README.md") } else { resolved };
    if !is_markdown(&page) {
        return (!is_line_anchor(&anchor))
            .then(|| format!("#{anchor} points into {}, which is not Markdown", shown(root, &page)));
    }
    if !page.is_file() {
        return Some(format!("#{anchor} points into {}, which does not exist", shown(root, &page)));
    }
    let anchors = cache.entry(page.clone()).or_insert_with(|| anchors(&read(&page)));
    (!anchors.contains(&anchor)).then(|| format!("no heading of {} has the anchor #{anchor}", shown(root, &page)))
}

/// Every link of `files` that does not resolve, as `file:line: link: why`.
fn broken_links(root: &Path, files: &[PathBuf]) -> Vec<String> {
    let mut cache = HashMap::new();
    let mut problems = Vec::new();
    for file in files {
        for link in links(&read(file)) {
            if let Some(why) = unresolved(root, file, &link.target, &mut cache) {
                problems.push(format!("{}:{}: {}: {why}", shown(root, file), link.line, link.written));
            }
        }
    }
    problems
}

#[test]
fn every_link_in_the_markdown_files_resolves() {
    let root = root();
    let files = markdown_files(&root);
    for expected in ["README.md", "examples/README.md", "bench/README.md"] {
        assert!(files.contains(&root.join(expected)), "{expected} was not found among {files:?}");
    }
    let problems = broken_links(&root, &files);
    assert!(
        problems.is_empty(),
        "{} broken links in {} Markdown files:\n{}",
        problems.len(),
        files.len(),
        problems.join("\n")
    );
}

#[test]
fn the_readme_has_at_most_400_lines() {
    let lines = read(&root().join("README.md")).lines().count();
    assert!(lines <= README_MAX_LINES, "README.md has {lines} lines, more than {README_MAX_LINES}: move text to docs/");
}

#[test]
fn the_readme_links_to_every_page_of_docs_and_each_links_back() {
    let root = root();
    let readme: HashSet<String> = links(&read(&root.join("README.md"))).into_iter().map(|l| l.target).collect();
    let mut problems = Vec::new();
    for page in markdown_files(&root).into_iter().filter(|p| p.parent() == Some(root.join("docs").as_path())) {
        let name = shown(&root, &page);
        if !readme.iter().any(|t| t == &name || t.starts_with(&format!("{name}#"))) {
            problems.push(format!("README.md does not link to {name}"));
        }
        if !links(&read(&page)).iter().any(|l| l.target == "../README.md" || l.target.starts_with("../README.md#")) {
            problems.push(format!("{name} does not link back to ../README.md"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn slugs_are_githubs() {
    assert_eq!(slug("Secrets Store CSI (SecretProviderClasses)"), "secrets-store-csi-secretproviderclasses");
    assert_eq!(slug("Memory: what was found"), "memory-what-was-found");
    assert_eq!(slug("Why a 50 ms quiet window, capped at 500 ms"), "why-a-50-ms-quiet-window-capped-at-500-ms");
    assert_eq!(slug("`reloader explain <kind>`"), "reloader-explain-kind");
    assert_eq!(slug("A [linked](other.md#x) <em>word</em>"), "a-linked-word");
    assert_eq!(slug("snake_case, C++ & co."), "snake_case-c--co");
    assert_eq!(slug("Ünïcode Straße"), "ünïcode-straße");
    let text = "# Title #\n## Same\n```\n## Not a heading\n```\n## Same\n## Same\n### same-1\n";
    let expected: HashSet<String> = ["title", "same", "same-1", "same-2", "same-1-1"].map(String::from).into();
    assert_eq!(anchors(text), expected);
}

#[test]
fn links_in_code_are_left_out_and_every_form_is_found() {
    let text = "\
A [link](a.md) and ![an image](b.svg \"title\"), `[code](c.md)` and ``[more `code`](d.md)``.
A [multi-line
link](e.md#x) and [nested [brackets]](f.md), \\[escaped](g.md), [angle](<h i.md>).

[label]: j.md \"title\"
[^note]: not a link

~~~
[fenced](k.md)
~~~
    ```sh
    [indented fence](l.md)
    ```
| [in a](m.md) | table `with code |
| [second](n.md) | row` |
";
    let found: Vec<(usize, String)> = links(text).into_iter().map(|l| (l.line, l.target)).collect();
    let expected =
        [(1, "a.md"), (1, "b.svg"), (3, "e.md#x"), (3, "f.md"), (3, "h i.md"), (5, "j.md"), (14, "m.md"), (15, "n.md")];
    assert_eq!(found, expected.map(|(line, target)| (line, target.to_string())));
}

#[test]
fn broken_links_and_anchors_are_all_reported() {
    let dir = std::env::temp_dir().join(format!("kube-reloader-docs-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("sub")).expect("a temporary directory");
    let page = "\
# Page

## Part

[fine](sub/other.md#other-heading), [fine](#part), [fine](sub/), [fine](https://example.com/#x),
[fine](mailto:someone@example.com), [fine](sub/code.rs#L3-L5), [fine](sub/other.md#anchor)

[missing file](sub/missing.md) and [missing anchor](sub/other.md#nope)
[missing bare anchor](#nowhere), [outside](../../../../../../../../../../../../../../../../x.md)
[anchor into code](sub/code.rs#main)

[broken definition]: gone.md

```md
[in a fence](gone.md)
```
";
    fs::write(dir.join("page.md"), page).expect("page.md");
    fs::write(dir.join("sub/other.md"), "# Other heading\n\n<a name=\"anchor\"></a>\n").expect("other.md");
    fs::write(dir.join("sub/code.rs"), "fn main() {}\n").expect("code.rs");
    let files = markdown_files(&dir);
    let problems = broken_links(&dir, &files);
    fs::remove_dir_all(&dir).expect("removing the temporary directory");
    let expected = [
        "page.md:8: [missing file](sub/missing.md): sub/missing.md does not exist",
        "page.md:8: [missing anchor](sub/other.md#nope): no heading of sub/other.md has the anchor #nope",
        "page.md:9: [missing bare anchor](#nowhere): no heading of page.md has the anchor #nowhere",
        "page.md:9: [outside](../../../../../../../../../../../../../../../../x.md): ../../../../../../../../../../../../../../../../x.md is outside the repository",
        "page.md:10: [anchor into code](sub/code.rs#main): #main points into sub/code.rs, which is not Markdown",
        "page.md:12: [broken definition]: gone.md: gone.md does not exist",
    ];
    assert_eq!(problems, expected, "got:\n{}", problems.join("\n"));
}

/// The repository paths a text names in inline code (`src/…`, `tests/…`, `hack/…`, `benches/…`,
/// `charts/…`, `deploy/…`), as (line, path).
fn named_paths(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        for code in line.split('`').skip(1).step_by(2) {
            let p = code.split([' ', ':', '#', '(']).next().unwrap_or("");
            let known = ["src/", "tests/", "hack/", "benches/", "charts/", "deploy/"].iter().any(|d| p.starts_with(d));
            if known && !p.contains(['<', '*', '…']) {
                out.push((n + 1, p.trim_end_matches(['.', ',', ';']).to_string()));
            }
        }
    }
    out
}

/// Module paths move; the docs that name them must follow.
#[test]
fn every_path_named_in_the_docs_exists() {
    let root = root();
    let mut missing = Vec::new();
    for file in markdown_files(&root) {
        for (n, p) in named_paths(&read(&file)) {
            if !root.join(&p).exists() {
                missing.push(format!("{}:{n}: `{p}` does not exist", shown(&root, &file)));
            }
        }
    }
    assert!(missing.is_empty(), "paths named in the docs that do not exist:\n{}", missing.join("\n"));
    let sample = "see `src/lib.rs`, `tests/docs.rs:12` and `src/<module>.rs`, not `src/*`";
    assert_eq!(named_paths(sample), [(1, "src/lib.rs".to_string()), (1, "tests/docs.rs".to_string())]);
}
