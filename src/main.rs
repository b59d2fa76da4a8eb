use clap::Parser;

fn main() {
    // Everything keysweep writes (state dir, journal and its -wal/-shm, reports,
    // drafts, the lock file) is for the invoking user only: files 0600,
    // directories 0700. Files are also created with explicit modes; the umask
    // covers what libraries (SQLite) create on their own.
    keysweep::lock::private_umask();
    // `keysweep discover … | head`: end quietly when the reader of stdout goes
    // away, as command-line tools do. (SIGPIPE stays ignored, so a peer closing
    // a connection mid-rotation is an error to handle, never a kill.)
    // Panic messages may quote a server's answer: they are redacted like any
    // other text that leaves keysweep.
    std::panic::set_hook(Box::new(move |info| {
        let msg =
            info.payload().downcast_ref::<String>().map(String::as_str).or_else(|| info.payload().downcast_ref::<&str>().copied()).unwrap_or("");
        if msg.starts_with("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(141);
        }
        let thread = std::thread::current();
        let at = info.location().map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column())).unwrap_or_default();
        eprintln!("thread '{}' panicked at {at}:\n{}", thread.name().unwrap_or("<unnamed>"), keysweep::secret::scrub(&keysweep::secret::redact(msg)));
        // Frames name functions, never data: printed as they are when asked for.
        let bt = std::backtrace::Backtrace::capture();
        if bt.status() == std::backtrace::BacktraceStatus::Captured {
            eprintln!("stack backtrace:\n{bt}");
        } else {
            eprintln!("note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace");
        }
    }));
    let cli = keysweep::cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")))
        .with_writer(|| keysweep::secret::RedactingWriter::new(std::io::stderr()))
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let code = rt.block_on(keysweep::cli::main(cli));
    // Don't wait for blocking tasks (e.g. a stuck connection) once the answer is known.
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    std::process::exit(code);
}
