use std::path::PathBuf;

use super::exit;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The playbook file (includes are followed).
    pub playbook: PathBuf,
}

pub fn run(a: Args) -> anyhow::Result<i32> {
    match crate::playbook::load(&a.playbook) {
        Ok(pb) => {
            let providers = pb.providers.len();
            println!(
                "{}: valid — {} credential(s), {} provider(s), {} file(s)",
                a.playbook.display(),
                pb.credentials.len(),
                providers,
                pb.files.len()
            );
            Ok(exit::OK)
        }
        Err(d) => {
            eprintln!("{d}");
            Ok(exit::INVALID)
        }
    }
}
