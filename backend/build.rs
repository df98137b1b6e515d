//! Rebuilds the backend when a migration is added or changed: `sqlx::migrate!` embeds
//! the migration folders at build time and cannot see a new file on its own.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
