//! The reference docs against the code: every close and error code the server sends is in
//! `docs/protocol.md`, every HTTP status in `docs/http-api.md`, and no file of the project
//! points outside the repository.

use ringcast::http::STATUSES;
use ringcast::protocol::ErrorCode;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{ROOT}/{path}")).unwrap()
}

#[test]
fn every_error_code_is_in_the_protocol_reference() {
    let doc = read("docs/protocol.md");
    for code in ErrorCode::ALL {
        let row = format!(
            "| {} | {} |",
            code.code(),
            if code.closes() { "yes" } else { "no" }
        );
        assert!(doc.contains(&row), "docs/protocol.md: no row `{row}`");
    }
    for ws_code in [1000, 1002, 1007, 1009] {
        assert!(doc.contains(&format!("| {ws_code} |")), "{ws_code}");
    }
}

#[test]
fn every_status_is_in_the_http_api_reference() {
    let doc = read("docs/http-api.md");
    for status in STATUSES {
        assert!(
            doc.contains(&format!("| {status} |")),
            "docs/http-api.md: no row for {status}"
        );
    }
}

#[test]
fn no_file_points_outside_the_repository() {
    let out = std::process::Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(ROOT)
        .output()
        .unwrap();
    let files = String::from_utf8(out.stdout).unwrap();
    // Built from parts, so that this file does not contain what it looks for.
    let shared = format!("{}/{}", "..", "shared");
    let outside = [
        shared.as_str(),
        "SPEC.md",
        "SPEC §",
        "PEERS.md",
        "CLUSTER-NOTES",
        "ARCHITECTURE.md",
    ];
    let mut found = Vec::new();
    for file in files
        .split('\0')
        .filter(|f| !f.is_empty() && !f.starts_with("vendor/"))
    {
        let Ok(text) = std::fs::read_to_string(format!("{ROOT}/{file}")) else {
            continue;
        };
        // This file names the others to look for them.
        if file == "tests/docs.rs" {
            continue;
        }
        for needle in outside {
            if text.contains(needle) {
                found.push(format!("{file}: {needle}"));
            }
        }
    }
    assert!(
        found.is_empty(),
        "references outside the repository:\n{}",
        found.join("\n")
    );
}
