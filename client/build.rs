//! Names every Kafka error code from `riffle-protocol`'s `error_code.rs`, so that messages say
//! `TOPIC_ALREADY_EXISTS` and not 36, without a second hand-written copy of Kafka's table.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../protocol/src/error_code.rs");
    println!("cargo:rerun-if-changed={}", source.display());
    let text = std::fs::read_to_string(&source).expect("read protocol/src/error_code.rs");
    let mut table = String::from("pub(crate) const ERROR_NAMES: &[(i16, &str, &str)] = &[\n");
    let mut doc = String::new();
    for line in text.lines().map(str::trim) {
        if let Some(d) = line.strip_prefix("///") {
            if !doc.is_empty() {
                doc.push(' ');
            }
            doc.push_str(d.trim());
            continue;
        }
        if let Some(rest) = line.strip_prefix("pub const ") {
            let (name, value) = rest
                .split_once(": i16 = ")
                .expect("pub const NAME: i16 = N;");
            let value = value.trim_end_matches(';');
            writeln!(table, "    ({value}, {name:?}, {doc:?}),").expect("write to a String");
        }
        doc.clear();
    }
    table.push_str("];\n");
    let out =
        Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("error_names.rs");
    std::fs::write(out, table).expect("write error_names.rs");
}
