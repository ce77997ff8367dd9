//! `hisn-example-server`: see `--help`.

use std::process::ExitCode;

use hisn_example_server::{Command, app, config, logging};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match config::parse_args() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    // The demo prints a tour on stdout: keep the log to warnings there.
    let filter = if cli.command == Some(Command::Demo) {
        "warn"
    } else {
        cli.config.log.as_str()
    };
    logging::init(filter);
    let listen = cli.config.listen;
    let data_dir = cli.config.data_dir.clone();
    let built = match app::build(cli.config).await {
        Ok(a) => a,
        Err(e) => {
            eprintln!("hisn-example-server: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    if built.keys_generated {
        eprintln!(
            "\n  WARNING: generated local keys in {}/local-keys.json.\n  They are for local use only: anyone with that file can read every encrypted field,\n  forge session tokens and sign audit checkpoints. Production supplies keys from a KMS.\n",
            data_dir.display()
        );
    }
    if cli.command == Some(Command::Demo) {
        return match hisn_example_server::demo::run(&built).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("demo failed: {e}");
                ExitCode::from(1)
            }
        };
    }
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("hisn-example-server: cannot listen on {listen}: {e}");
            return ExitCode::from(1);
        }
    };
    eprintln!(
        "hisn-example-server listening on http://{listen} (data in {})",
        data_dir.display()
    );
    match app::serve(built, listener).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("server error: {e}");
            ExitCode::from(1)
        }
    }
}
