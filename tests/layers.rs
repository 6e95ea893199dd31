//! The library's layering (docs/ARCHITECTURE.md, "Layers"): a top-level module imports only
//! from the layers below it, so dependencies run one way and no import cycle can form.
//! Read from the source text: every `crate::MODULE` named outside test code.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Each top-level module of `src/` and its layer; a module may use only lower layers.
const LAYERS: &[(&str, u8)] = &[
    ("error", 0),
    ("sync", 0),
    ("constraints", 1),
    ("frame", 1),
    ("media", 2),
    ("track", 3),
    ("devices", 4),
    ("encode", 4),
    ("analysis", 5),
    ("peer", 6),
    ("record", 6),
    ("bench", 7),
    ("client", 7),
    ("server", 7),
    ("fuzzing", 8),
];

fn layer(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Files that are test-only modules (`#[cfg(test)] mod name;`).
fn test_only_files(files: &[PathBuf]) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(file).unwrap();
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        for pair in lines.windows(2) {
            if pair[0] == "#[cfg(test)]" {
                if let Some(name) = pair[1]
                    .trim_start_matches("pub(crate) ")
                    .strip_prefix("mod ")
                    .and_then(|r| r.strip_suffix(';'))
                {
                    let dir = file.parent().unwrap();
                    out.insert(dir.join(format!("{name}.rs")));
                    out.insert(dir.join(name).join("mod.rs"));
                }
            }
        }
    }
    out
}

/// The code of a file before its first inline test module.
fn non_test_code(text: &str) -> &str {
    let mut offset = 0;
    let mut previous = "";
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        if previous == "#[cfg(test)]" && trimmed.starts_with("mod ") && trimmed.ends_with('{') {
            return &text[..offset];
        }
        if !trimmed.is_empty() {
            previous = trimmed;
        }
        offset += line.len();
    }
    text
}

#[test]
fn modules_use_only_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let tests = test_only_files(&files);
    let mut seen = BTreeSet::new();
    let mut wrong = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let module = first.trim_end_matches(".rs").to_owned();
        // The binary is outside the library; lib.rs only declares and re-exports.
        if module == "bin" || module == "lib" || tests.contains(file) {
            continue;
        }
        let own = layer(&module)
            .unwrap_or_else(|| panic!("{}: module {module} has no layer in LAYERS", rel.display()));
        seen.insert(module.clone());
        let text = std::fs::read_to_string(file).unwrap();
        let code = non_test_code(&text);
        for (at, _) in code.match_indices("crate::") {
            let used: String = code[at + 7..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if used == module {
                continue;
            }
            match layer(&used) {
                Some(l) if l < own => {}
                // `crate::{X, Y}` or `crate::X`: the root's re-exports hide which layer is
                // used; name the module.
                _ if used.is_empty() || used.starts_with(char::is_uppercase) => {
                    wrong.push(format!(
                        "{}: {module} uses the crate root; name the module",
                        rel.display()
                    ))
                }
                _ => wrong.push(format!("{}: {module} uses crate::{used}", rel.display())),
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layers:\n{}",
        wrong.join("\n")
    );
    // Every module in LAYERS exists: the table follows the tree.
    for (module, _) in LAYERS {
        assert!(
            seen.contains(*module),
            "LAYERS names {module}, which src/ lacks"
        );
    }
}
