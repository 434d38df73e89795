//! Writes the man pages and shell completions (see the crate's doc) into
//! the workspace: `cargo run -p hapgent-docgen`.

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for (path, content) in hapgent_docgen::outputs() {
        let file = root.join(&path);
        let written = file
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&file, content));
        if let Err(e) = written {
            eprintln!("docgen: cannot write {path}: {e}");
            return ExitCode::FAILURE;
        }
        println!("wrote {path}");
    }
    ExitCode::SUCCESS
}
