//! docs/errors.md and docs/files.md list every code of the file store with its HTTP status.

use hub_files::FileErrorCode;

#[test]
fn every_file_code_is_catalogued_with_its_status() {
    let errors = include_str!("../../../docs/errors.md");
    let files = include_str!("../../../docs/files.md");
    for code in FileErrorCode::ALL {
        let row = format!("| {} | `{}` |", code.status(), code.code());
        assert!(
            errors.contains(&row),
            "docs/errors.md lacks the row `{row}`"
        );
        assert!(
            files.contains(&format!("`{}`", code.code())),
            "docs/files.md does not mention {}",
            code.code()
        );
    }
    // Nothing in the files table that the code does not know.
    let known: Vec<&str> = FileErrorCode::ALL.iter().map(|c| c.code()).collect();
    let section = errors
        .split("## Files and SFTP")
        .nth(1)
        .expect("the section exists");
    for line in section
        .lines()
        .filter(|l| l.starts_with("| 4") || l.starts_with("| 5"))
    {
        let code = line.split('`').nth(1).unwrap();
        assert!(
            known.contains(&code),
            "docs/errors.md lists `{code}`, which hub-files never returns"
        );
    }
}
