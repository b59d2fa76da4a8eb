use clap::Parser;

fn main() {
    let cli = keysweep::cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")))
        .with_writer(std::io::stderr)
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let code = rt.block_on(keysweep::cli::main(cli));
    // Don't wait for blocking tasks (e.g. a stuck connection) once the answer is known.
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    std::process::exit(code);
}
