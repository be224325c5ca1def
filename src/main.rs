//! The `engine` command. See `engine --help`; each subcommand's options are in src/cli.rs.

fn main() {
    if let Err(e) = engine::cli::main() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
