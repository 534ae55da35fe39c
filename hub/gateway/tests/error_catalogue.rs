//! docs/errors.md lists every code the gateway can answer, with its HTTP status.

use hub_gateway::ErrorCode;

#[test]
fn the_catalogue_lists_every_code_with_its_status() {
    let page = include_str!("../../../docs/errors.md");
    for code in ErrorCode::ALL {
        let row = format!("| `{}` | {} |", code.code(), code.status().as_u16());
        assert!(page.contains(&row), "docs/errors.md lacks the row `{row}`");
        let (zh, en) = code.messages();
        assert!(!zh.is_empty() && !en.is_empty());
    }
    // And nothing in the table that the code does not know.
    let known: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.code()).collect();
    for line in page.lines().filter(|l| l.starts_with("| `")) {
        let code = line.trim_start_matches("| `").split('`').next().unwrap();
        assert!(
            known.contains(&code),
            "docs/errors.md lists `{code}`, which the gateway never answers"
        );
    }
}
