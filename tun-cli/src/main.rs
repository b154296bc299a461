//! The `tun` command-line tool: create, delete, show, dump, relay and bench
//! TUN devices. Its commands arrive with the CLI issue; until then it says
//! so and exits with status 2.

#![forbid(unsafe_code)]

fn main() {
    eprintln!(
        "tun {}: no commands yet; see README.md",
        env!("CARGO_PKG_VERSION")
    );
    std::process::exit(2);
}
