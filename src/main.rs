#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    repowire::cli::main()
}
