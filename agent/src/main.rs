//! `sitewatch-agent`: see the library's documentation.

use std::process::ExitCode;

use clap::Parser;
use sitewatch_agent::{cli, logging};

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    logging::init(args.log_format);
    match cli::execute(args) {
        Ok(code) => code,
        Err(e) => {
            let code = e.exit_code();
            eprintln!("sitewatch-agent: {e}");
            code
        }
    }
}
