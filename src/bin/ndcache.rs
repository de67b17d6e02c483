//! The `ndcache` command-line program (work in progress).

fn main() {
    eprintln!("ndcache: the command-line interface is not built yet");
    std::process::exit(2);
}
