//! `RESULTS.md` has two parts written by two programs: the runtime figures (`bench --out`)
//! and, last, the compile-cost section (`compile_cost --out`). Each rewrites its own part and
//! keeps the other's.

use std::path::Path;

use crate::Result;

/// The heading that starts the compile-cost section.
pub const COMPILE_HEADING: &str = "## Compile cost";

/// Writes the runtime figures, keeping the compile-cost section of an existing file.
pub fn write_runtime(path: &Path, text: &str) -> Result<()> {
    let existing = std::fs::read_to_string(path).unwrap_or_default();
    let kept = existing.find(COMPILE_HEADING).map_or("", |at| &existing[at..]);
    let separator = if kept.is_empty() { "" } else { "\n" };
    std::fs::write(path, format!("{}{separator}{kept}", text.trim_end().to_owned() + "\n"))?;
    Ok(())
}

/// Writes the compile-cost section (which starts with [`COMPILE_HEADING`]), keeping the
/// runtime figures of an existing file.
pub fn write_compile(path: &Path, section: &str) -> Result<()> {
    let existing = std::fs::read_to_string(path).unwrap_or_default();
    let kept = existing
        .find(COMPILE_HEADING)
        .map_or(existing.as_str(), |at| &existing[..at]);
    let kept = kept.trim_end();
    let separator = if kept.is_empty() { "" } else { "\n\n" };
    std::fs::write(path, format!("{kept}{separator}{}\n", section.trim_end()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_program_keeps_the_others_part() {
        let dir = std::env::temp_dir().join(format!("ws-channels-results-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let path = dir.join("RESULTS.md");
        let read = || std::fs::read_to_string(&path).expect("written");
        write_compile(&path, "## Compile cost\n\nc1").expect("writes");
        write_runtime(&path, "# Results\n\nr1").expect("writes");
        assert_eq!(read(), "# Results\n\nr1\n\n## Compile cost\n\nc1\n");
        write_compile(&path, "## Compile cost\n\nc2").expect("writes");
        write_runtime(&path, "# Results\n\nr2\n").expect("writes");
        assert_eq!(read(), "# Results\n\nr2\n\n## Compile cost\n\nc2\n");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
