//! docs/ARCHITECTURE.md's module map names every source file: each `.rs` and `.html` file
//! under `src/` and `signaling/src/` appears (in backticks) after its folder's heading in
//! the "Modules" section, before the next folder's.

use std::path::{Path, PathBuf};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("rs") | Some("html")
        ) {
            out.push(path);
        }
    }
}

/// A single folder's name in backticks (`peer/`), not a path (`tests/fixtures/`).
fn is_folder(inner: &str) -> bool {
    inner.ends_with('/') && !inner.trim_end_matches('/').contains('/')
}

/// The text after the folder's marker (`` `DIR/` ``) up to the next folder marker.
fn folder_text<'a>(modules: &'a str, marker: &str) -> Option<&'a str> {
    let start = modules.find(&format!("`{marker}`"))? + marker.len() + 2;
    let rest = &modules[start..];
    let end = rest
        .match_indices('`')
        .collect::<Vec<_>>()
        .chunks(2)
        .filter_map(|pair| match pair {
            [(a, _), (b, _)] if is_folder(&rest[a + 1..*b]) => Some(*a),
            _ => None,
        })
        .next()
        .unwrap_or(rest.len());
    Some(&rest[..end])
}

#[test]
fn every_source_file_is_in_the_module_map() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/ARCHITECTURE.md")).unwrap();
    let modules = doc
        .split("## Modules")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("a Modules section");
    let mut all = Vec::new();
    files(&root.join("src"), &mut all);
    files(&root.join("signaling/src"), &mut all);
    let mut missing = Vec::new();
    for path in all {
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let parent = rel.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
        let marker = match parent {
            "src" => None,
            "signaling/src" => Some("signaling/".to_string()),
            "src/bin/usermedia" => Some("src/bin/usermedia/".to_string()),
            p => Some(format!("{}/", p.rsplit('/').next().unwrap())),
        };
        let text = match &marker {
            None => Some(modules),
            Some(m) => folder_text(modules, m),
        };
        if !text.is_some_and(|t| t.contains(&format!("`{name}`"))) {
            missing.push(rel);
        }
    }
    assert!(
        missing.is_empty(),
        "not in docs/ARCHITECTURE.md's module map: {missing:?}"
    );
}
