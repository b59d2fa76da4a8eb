use std::path::PathBuf;

use super::exit;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The playbook file (includes are followed).
    pub playbook: PathBuf,
    /// Check the structure only, without the environment the playbook runs in
    /// (a pull request's CI): an unset `${env:VAR}` is listed as not checked
    /// instead of being an error; every other error still is one.
    #[arg(long)]
    pub no_env: bool,
}

pub fn run(a: Args) -> anyhow::Result<i32> {
    let loaded = if a.no_env {
        crate::playbook::load_structure(&a.playbook, &|k| std::env::var(k).ok())
    } else {
        crate::playbook::load(&a.playbook).map(|pb| (pb, vec![]))
    };
    match loaded {
        Ok((pb, unchecked)) => {
            let providers = pb.providers.len();
            println!(
                "{}: valid{} — {} credential(s), {} provider(s), {} file(s)",
                a.playbook.display(),
                if a.no_env { " (structure)" } else { "" },
                pb.credentials.len(),
                providers,
                pb.files.len()
            );
            if !unchecked.is_empty() {
                let mut vars: Vec<&str> = unchecked.iter().map(|u| u.var.as_str()).collect();
                vars.sort_unstable();
                vars.dedup();
                println!("not checked: {} unset environment variable(s): {}", vars.len(), vars.join(", "));
                for u in &unchecked {
                    println!("  {}: ${{env:{}}} (not set; not checked)", u.location, u.var);
                }
            }
            Ok(exit::OK)
        }
        Err(d) => {
            eprintln!("{d}");
            Ok(exit::INVALID)
        }
    }
}
