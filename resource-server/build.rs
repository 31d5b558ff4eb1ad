// A new migration folder must rebuild the binary that embeds them.
fn main() {
    println!("cargo:rerun-if-changed=../migrations/resource-server");
}
