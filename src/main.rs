//! The `engine` command. See `engine --help`; each subcommand's options are in src/cli/<command>.rs.

fn main() {
    engine::host_memory::keep_freed_memory();
    if let Err(e) = engine::cli::main() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
