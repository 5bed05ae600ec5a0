//! The pgwarm binary: everything it does is in the library's [`pgwarm::app`], so that the
//! library's modules can stay private to it.

fn main() -> std::process::ExitCode {
    pgwarm::app::run()
}
