//! `completions <shell>` and the hidden `man`: both generated from the clap
//! definition, so they never drift from the command line.

use std::io::Write;

use clap::CommandFactory;

use super::{exit, Cli};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// bash, zsh, fish, elvish or powershell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

pub fn run(a: Args) -> anyhow::Result<i32> {
    let mut cmd = Cli::command();
    clap_complete::generate(a.shell, &mut cmd, "keysweep", &mut std::io::stdout());
    Ok(exit::OK)
}

#[derive(clap::Args, Debug)]
pub struct ManArgs {
    /// Write keysweep.1 and one page per subcommand (keysweep-run.1, ...) into
    /// this directory instead of printing keysweep.1.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<std::path::PathBuf>,
}

/// The man page (section 1) in roff.
pub fn man(a: ManArgs) -> anyhow::Result<i32> {
    if let Some(dir) = a.out_dir {
        std::fs::create_dir_all(&dir)?;
        clap_mangen::generate_to(Cli::command(), &dir)?;
        return Ok(exit::OK);
    }
    let mut buf = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut buf)?;
    std::io::stdout().write_all(&buf)?;
    Ok(exit::OK)
}
