//! Rebuilds the crate when a migration changes: `embed_migrations!` reads
//! the folders at compile time, which cargo does not track on its own.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
