use clap::Parser;

fn main() {
    // `keysweep discover … | head`: end quietly when the reader of stdout goes
    // away, as command-line tools do. (SIGPIPE stays ignored, so a peer closing
    // a connection mid-rotation is an error to handle, never a kill.)
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg =
            info.payload().downcast_ref::<String>().map(String::as_str).or_else(|| info.payload().downcast_ref::<&str>().copied()).unwrap_or("");
        if msg.starts_with("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(141);
        }
        default_hook(info)
    }));
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
