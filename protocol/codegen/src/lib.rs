//! Generator of Riffle's Kafka message codec from Apache Kafka's JSON message definitions.
//!
//! `protocol/build.rs` calls [`generate`]; the output is Rust source using the runtime
//! primitives of `riffle_protocol::codec` (bounds-checked readers, chunked `Encoder`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

/// One API the codec serves: its name as in the JSON file names (e.g. "Produce") and the
/// lowest version we decode. The highest is the JSON's (minus one if the latest is unstable).
pub struct ApiSpec {
    pub name: &'static str,
    pub min_version: i16,
    /// The codec also reads and writes versions below the JSON's `validVersions`, from this one:
    /// for versions Kafka removed but clients may still send (their fields keep their version
    /// ranges in the JSON), so that the broker can answer them with an error.
    pub codec_from: Option<i16>,
}

/// Generated sources: `messages` (one module per message) and `api` (ApiKey, RequestBody).
pub struct Generated {
    pub messages: String,
    pub api: String,
}

type Result<T> = std::result::Result<T, String>;

#[derive(Clone, Copy, Debug, PartialEq)]
struct Range {
    lo: i16,
    hi: i16, // inclusive; i16::MAX for "N+"
}

impl Range {
    const NONE: Range = Range { lo: 1, hi: 0 };

    fn parse(s: &str) -> Result<Range> {
        let s = s.trim();
        if s == "none" || s.is_empty() {
            return Ok(Range::NONE);
        }
        let num = |t: &str| {
            t.trim()
                .parse::<i16>()
                .map_err(|e| format!("bad version {s:?}: {e}"))
        };
        if let Some(lo) = s.strip_suffix('+') {
            return Ok(Range {
                lo: num(lo)?,
                hi: i16::MAX,
            });
        }
        if let Some((lo, hi)) = s.split_once('-') {
            return Ok(Range {
                lo: num(lo)?,
                hi: num(hi)?,
            });
        }
        let v = num(s)?;
        Ok(Range { lo: v, hi: v })
    }

    fn is_empty(self) -> bool {
        self.lo > self.hi
    }

    fn intersect(self, o: Range) -> Range {
        Range {
            lo: self.lo.max(o.lo),
            hi: self.hi.min(o.hi),
        }
    }

    fn contains_range(self, o: Range) -> bool {
        o.is_empty() || (self.lo <= o.lo && o.hi <= self.hi)
    }

    /// A boolean Rust expression testing `version` against this range, within `valid`.
    fn cond(self, valid: Range) -> String {
        let r = self.intersect(valid);
        if r.is_empty() {
            return "false".into();
        }
        let lo = r.lo > valid.lo;
        let hi = r.hi < valid.hi;
        match (lo, hi) {
            (false, false) => "true".into(),
            (true, false) => format!("version >= {}", r.lo),
            (false, true) => format!("version <= {}", r.hi),
            (true, true) => format!("({} ..= {}).contains(&version)", r.lo, r.hi),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Ty {
    Bool,
    I8,
    I16,
    U16,
    I32,
    I64,
    F64,
    Uuid,
    Str,
    Bytes,
    Records,
    Struct(String),
    Array(Box<Ty>),
}

impl Ty {
    fn parse(s: &str) -> Result<Ty> {
        Ok(match s {
            "bool" => Ty::Bool,
            "int8" => Ty::I8,
            "int16" => Ty::I16,
            "uint16" => Ty::U16,
            "int32" => Ty::I32,
            "int64" => Ty::I64,
            "float64" => Ty::F64,
            "uuid" => Ty::Uuid,
            "string" => Ty::Str,
            "bytes" => Ty::Bytes,
            "records" => Ty::Records,
            _ => {
                if let Some(inner) = s.strip_prefix("[]") {
                    Ty::Array(Box::new(Ty::parse(inner)?))
                } else if s.chars().next().is_some_and(|c| c.is_ascii_uppercase()) {
                    Ty::Struct(s.to_string())
                } else {
                    return Err(format!("unknown type {s}"));
                }
            }
        })
    }

    fn rust(&self) -> String {
        match self {
            Ty::Bool => "bool".into(),
            Ty::I8 => "i8".into(),
            Ty::I16 => "i16".into(),
            Ty::U16 => "u16".into(),
            Ty::I32 => "i32".into(),
            Ty::I64 => "i64".into(),
            Ty::F64 => "f64".into(),
            Ty::Uuid => "Uuid".into(),
            Ty::Str => "String".into(),
            Ty::Bytes => "Bytes".into(),
            Ty::Records => "Records".into(),
            Ty::Struct(s) => s.clone(),
            Ty::Array(t) => format!("Vec<{}>", t.rust()),
        }
    }

    fn is_int(&self) -> bool {
        matches!(self, Ty::I8 | Ty::I16 | Ty::U16 | Ty::I32 | Ty::I64)
    }

    fn is_copy(&self) -> bool {
        self.is_int() || matches!(self, Ty::Bool | Ty::F64 | Ty::Uuid)
    }
}

#[derive(Clone, Debug)]
struct Field {
    name: String,
    rust_name: String,
    ty: Ty,
    versions: Range,
    nullable: Range,
    tagged: Range,
    tag: Option<u32>,
    ignorable: bool,
    default: Option<String>,
    about: String,
}

impl Field {
    /// Option<..> in Rust when nullable in any version (records always are).
    fn optional(&self) -> bool {
        !self.nullable.is_empty() || self.ty == Ty::Records
    }

    fn rust_type(&self) -> String {
        let t = self.ty.rust();
        if self.optional() {
            format!("Option<{t}>")
        } else {
            t
        }
    }

    fn default_expr(&self) -> Result<String> {
        let d = self.default.as_deref();
        Ok(match &self.ty {
            t if t.is_int() => match d {
                None | Some("") => "0".into(),
                Some(v) => {
                    let n: i64 = if let Some(h) = v.strip_prefix("0x") {
                        i64::from_str_radix(h, 16).map_err(|e| e.to_string())?
                    } else {
                        v.parse()
                            .map_err(|e| format!("{}: bad default {v}: {e}", self.name))?
                    };
                    n.to_string()
                }
            },
            Ty::Bool => match d {
                Some("true") => "true".into(),
                None | Some("false") => "false".into(),
                Some(v) => return Err(format!("bad bool default {v}")),
            },
            Ty::F64 => match d {
                None => "0.0".into(),
                Some(v) => format!("{:?}", v.parse::<f64>().map_err(|e| e.to_string())?),
            },
            Ty::Uuid => "Uuid::ZERO".into(),
            Ty::Str => {
                // As Kafka: a nullable string is null by default only if the JSON says so.
                if self.optional() {
                    match d {
                        Some("null") => "None".into(),
                        None | Some("") => "Some(String::new())".into(),
                        Some(v) => format!("Some(String::from({v:?}))"),
                    }
                } else {
                    match d {
                        None | Some("") => "String::new()".into(),
                        Some(v) => format!("String::from({v:?})"),
                    }
                }
            }
            Ty::Records => "None".into(),
            Ty::Bytes => {
                if !self.optional() {
                    "Bytes::new()".into()
                } else if d == Some("null") {
                    "None".into()
                } else {
                    "Some(Bytes::new())".into()
                }
            }
            Ty::Array(_) => {
                if self.optional() {
                    if d == Some("null") {
                        "None".into()
                    } else {
                        "Some(Vec::new())".into()
                    }
                } else {
                    "Vec::new()".into()
                }
            }
            Ty::Struct(s) => {
                if self.optional() {
                    "None".into()
                } else {
                    format!("{s}::default()")
                }
            }
            _ => unreachable!("integers are handled above"),
        })
    }

    /// Expression: true when `self.<field>` differs from its default (a value would be lost).
    fn non_default(&self) -> Result<String> {
        let f = format!("self.{}", self.rust_name);
        Ok(match &self.ty {
            Ty::Records => format!("{f}.as_ref().is_some_and(|v| !v.is_empty())"),
            Ty::Array(_) if !self.optional() => format!("!{f}.is_empty()"),
            Ty::Struct(s) if !self.optional() => format!("{f} != {s}::default()"),
            _ => format!("{f} != {}", self.default_expr()?),
        })
    }
}

#[derive(Clone, Debug)]
struct StructDef {
    name: String,
    about: String,
    fields: Vec<Field>,
}

struct Message {
    name: String,
    api_key: i16,
    is_request: bool,
    valid: Range,
    flexible: Range,
    latest_unstable: bool,
    structs: Vec<StructDef>, // structs[0] is the message itself
}

fn strip_comments(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let mut in_str = false;
    let mut escaped = false;
    let mut chars = src.chars().peekable();
    while let Some(c) = chars.next() {
        if in_str {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_str = false;
            }
        } else if c == '"' {
            in_str = true;
            out.push(c);
        } else if c == '/' && chars.peek() == Some(&'/') {
            for c in chars.by_ref() {
                if c == '\n' {
                    out.push('\n');
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

pub fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() {
            let prev = if i > 0 { Some(chars[i - 1]) } else { None };
            let next = chars.get(i + 1).copied();
            let boundary = match prev {
                None => false,
                Some(p) if p.is_ascii_lowercase() || p.is_ascii_digit() => true,
                Some(p) if p.is_ascii_uppercase() => next.is_some_and(|n| n.is_ascii_lowercase()),
                _ => false,
            };
            if boundary {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn rust_ident(name: &str) -> String {
    let s = snake_case(name);
    match s.as_str() {
        "type" | "match" | "ref" | "mod" | "move" | "loop" | "async" | "await" | "fn" | "impl"
        | "self" | "use" | "where" | "static" | "const" | "crate" | "super" | "trait"
        | "struct" | "enum" | "box" | "in" | "for" => {
            format!("{s}_")
        }
        _ => s,
    }
}

fn str_attr<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn parse_fields(
    owner: &str,
    fields: &Value,
    structs: &mut Vec<StructDef>,
    common: &BTreeMap<String, ()>,
) -> Result<Vec<Field>> {
    let arr = fields
        .as_array()
        .ok_or_else(|| format!("{owner}: fields is not an array"))?;
    let mut out = Vec::new();
    for f in arr {
        let name = str_attr(f, "name").ok_or("field without name")?.to_string();
        let ty = Ty::parse(str_attr(f, "type").ok_or("field without type")?)?;
        let versions =
            Range::parse(str_attr(f, "versions").ok_or_else(|| format!("{name}: no versions"))?)?;
        let nullable = Range::parse(str_attr(f, "nullableVersions").unwrap_or("none"))?;
        let tagged = Range::parse(str_attr(f, "taggedVersions").unwrap_or("none"))?;
        let tag = f.get("tag").and_then(Value::as_u64).map(|t| t as u32);
        if tag.is_some() == tagged.is_empty() {
            return Err(format!(
                "{owner}.{name}: tag and taggedVersions must come together"
            ));
        }
        let ignorable = f.get("ignorable").and_then(Value::as_bool).unwrap_or(false);
        let default = match f.get("default") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => Some(other.to_string()),
        };
        let about = str_attr(f, "about").unwrap_or("").to_string();
        let struct_name = match &ty {
            Ty::Struct(s) => Some(s.clone()),
            Ty::Array(inner) => match inner.as_ref() {
                Ty::Struct(s) => Some(s.clone()),
                _ => None,
            },
            _ => None,
        };
        if let Some(sn) = struct_name {
            if let Some(sub) = f.get("fields") {
                let fields = parse_fields(&sn, sub, structs, common)?;
                if structs.iter().any(|s| s.name == sn) {
                    return Err(format!("struct {sn} defined twice"));
                }
                structs.push(StructDef {
                    name: sn,
                    about: about.clone(),
                    fields,
                });
            } else if !common.contains_key(&sn) {
                return Err(format!(
                    "{owner}.{name}: struct {sn} has no fields and is not a common struct"
                ));
            }
        }
        out.push(Field {
            rust_name: rust_ident(&name),
            name,
            ty,
            versions,
            nullable,
            tagged,
            tag,
            ignorable,
            default,
            about,
        });
    }
    Ok(out)
}

fn parse_message(src: &str) -> Result<Message> {
    let v: Value = serde_json::from_str(&strip_comments(src)).map_err(|e| e.to_string())?;
    let name = str_attr(&v, "name").ok_or("no name")?.to_string();
    let kind = str_attr(&v, "type").ok_or("no type")?;
    let api_key = v.get("apiKey").and_then(Value::as_i64).ok_or("no apiKey")? as i16;
    let valid = Range::parse(str_attr(&v, "validVersions").ok_or("no validVersions")?)?;
    // Absent means no flexible version (OffsetDeleteResponse at Kafka 4.0 leaves it out).
    let flexible = Range::parse(str_attr(&v, "flexibleVersions").unwrap_or("none"))?;
    let latest_unstable = v
        .get("latestVersionUnstable")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut structs = Vec::new();
    let mut common = BTreeMap::new();
    if let Some(cs) = v.get("commonStructs").and_then(Value::as_array) {
        for c in cs {
            common.insert(
                str_attr(c, "name")
                    .ok_or("common struct without name")?
                    .to_string(),
                (),
            );
        }
        for c in cs {
            let cname = str_attr(c, "name").unwrap_or_default().to_string();
            let fields = parse_fields(
                &cname,
                c.get("fields").ok_or("common struct without fields")?,
                &mut structs,
                &common,
            )?;
            structs.push(StructDef {
                name: cname,
                about: String::new(),
                fields,
            });
        }
    }
    let fields = parse_fields(
        &name,
        v.get("fields").ok_or("no fields")?,
        &mut structs,
        &common,
    )?;
    let about = format!(
        "Kafka's {name} (API key {api_key}), versions {}-{}.",
        valid.lo, valid.hi
    );
    structs.insert(
        0,
        StructDef {
            name: name.clone(),
            about,
            fields,
        },
    );
    Ok(Message {
        name,
        api_key,
        is_request: kind == "request",
        valid,
        flexible,
        latest_unstable,
        structs,
    })
}

/// Context for generating one struct's code.
struct Ctx<'a> {
    valid: Range,
    flexible: Range,
    sname: &'a str,
}

impl Ctx<'_> {
    fn field_ctx(&self, f: &Field) -> String {
        format!("{:?}", format!("{}.{}", self.sname, f.name))
    }
}

/// Expression decoding one non-nullable value of `ty` from `buf` (a `&mut Bytes` variable), without `?`.
fn dec_elem(ty: &Ty, buf: &str, ctx: &str) -> String {
    match ty {
        Ty::Bool => format!("read_bool({buf}, {ctx})"),
        Ty::I8 => format!("read_i8({buf}, {ctx})"),
        Ty::I16 => format!("read_i16({buf}, {ctx})"),
        Ty::U16 => format!("read_u16({buf}, {ctx})"),
        Ty::I32 => format!("read_i32({buf}, {ctx})"),
        Ty::I64 => format!("read_i64({buf}, {ctx})"),
        Ty::F64 => format!("read_f64({buf}, {ctx})"),
        Ty::Uuid => format!("read_uuid({buf}, {ctx})"),
        Ty::Str => format!("read_string({buf}, flexible, {ctx})"),
        Ty::Bytes => format!("read_bytes({buf}, flexible, {ctx})"),
        Ty::Records => format!("read_nullable_records({buf}, flexible, {ctx}).and_then(|r| r.ok_or(DecodeError::UnexpectedNull {{ field: {ctx} }}))"),
        Ty::Struct(s) => format!("{s}::decode_v({buf}, version)"),
        Ty::Array(inner) => format!("read_array({buf}, flexible, {ctx}, |b| {})", dec_elem(inner, "b", ctx)),
    }
}

/// Statement(s) assigning the decoded field to `this.<field>`.
fn dec_field(c: &Ctx, f: &Field, buf: &str) -> String {
    let ctx = c.field_ctx(f);
    let target = format!("this.{}", f.rust_name);
    if !f.optional() {
        return format!("{target} = {}?;", dec_elem(&f.ty, buf, &ctx));
    }
    let nullable_dec = match &f.ty {
        Ty::Str => format!("read_nullable_string({buf}, flexible, {ctx})?"),
        Ty::Bytes => format!("read_nullable_bytes({buf}, flexible, {ctx})?"),
        Ty::Records => format!("read_nullable_records({buf}, flexible, {ctx})?"),
        Ty::Array(inner) => format!("read_nullable_array({buf}, flexible, {ctx}, |b| {})?", dec_elem(inner, "b", &ctx)),
        Ty::Struct(s) => format!("if read_i8({buf}, {ctx})? < 0 {{ None }} else {{ Some({s}::decode_v({buf}, version)?) }}"),
        _ => unreachable!("only strings, bytes, records, arrays and structs are nullable"),
    };
    let present = f.versions.intersect(c.valid);
    let nullable = f.nullable.intersect(present);
    if f.ty == Ty::Records || f.nullable.contains_range(present) {
        format!("{target} = {nullable_dec};")
    } else if nullable.is_empty() {
        format!("{target} = Some({}?);", dec_elem(&f.ty, buf, &ctx))
    } else {
        format!(
            "{target} = if {} {{ {nullable_dec} }} else {{ Some({}?) }};",
            f.nullable.cond(c.valid),
            dec_elem(&f.ty, buf, &ctx)
        )
    }
}

/// Statements encoding one non-null value (a reference expression `val`) into `out`.
fn enc_elem(ty: &Ty, val: &str, out: &str, ctx: &str) -> String {
    let deref = val
        .strip_prefix('&')
        .map(str::to_string)
        .unwrap_or_else(|| format!("*{val}"));
    // For method calls: auto-deref, and no `*x.f()` precedence trap.
    let place = val.strip_prefix('&').unwrap_or(val);
    match ty {
        Ty::Bool => format!("{out}.put_bool({deref});"),
        Ty::I8 => format!("{out}.put_i8({deref});"),
        Ty::I16 => format!("{out}.put_i16({deref});"),
        Ty::U16 => format!("{out}.put_u16({deref});"),
        Ty::I32 => format!("{out}.put_i32({deref});"),
        Ty::I64 => format!("{out}.put_i64({deref});"),
        Ty::F64 => format!("{out}.put_f64({deref});"),
        Ty::Uuid => format!("{out}.put_uuid({val});"),
        Ty::Str => format!("{out}.put_string({val}, flexible, {ctx})?;"),
        Ty::Bytes => format!("{out}.put_bytes({val}, flexible, {ctx})?;"),
        Ty::Records => format!("{out}.put_nullable_records(Some({val}), flexible, {ctx})?;"),
        Ty::Struct(_) => format!("{place}.encode_v({out}, version)?;"),
        Ty::Array(inner) => format!(
            "{out}.put_array_len(Some({place}.len()), flexible, {ctx})?; for e in {val} {{ {} }}",
            enc_elem(inner, "e", out, ctx)
        ),
    }
}

fn enc_field(c: &Ctx, f: &Field, out: &str) -> String {
    let ctx = c.field_ctx(f);
    let val = format!("&self.{}", f.rust_name);
    if !f.optional() {
        return enc_elem(&f.ty, &val, out, &ctx);
    }
    let null_stmt = match &f.ty {
        Ty::Str => format!("{out}.put_nullable_string(None, flexible, {ctx})?;"),
        Ty::Bytes => format!("{out}.put_nullable_bytes(None, flexible, {ctx})?;"),
        Ty::Records => format!("{out}.put_nullable_records(None, flexible, {ctx})?;"),
        Ty::Array(_) => format!("{out}.put_array_len(None, flexible, {ctx})?;"),
        Ty::Struct(_) => format!("{out}.put_i8(-1);"),
        _ => unreachable!("only strings, bytes, records, arrays and structs are nullable"),
    };
    let present = f.versions.intersect(c.valid);
    if f.nullable.contains_range(present) {
        let field = &f.rust_name;
        let direct = match &f.ty {
            Ty::Str => Some(format!(
                "{out}.put_nullable_string(self.{field}.as_deref(), flexible, {ctx})?;"
            )),
            Ty::Bytes => Some(format!(
                "{out}.put_nullable_bytes(self.{field}.as_deref(), flexible, {ctx})?;"
            )),
            Ty::Records => Some(format!(
                "{out}.put_nullable_records(self.{field}.as_ref(), flexible, {ctx})?;"
            )),
            _ => None,
        };
        if let Some(d) = direct {
            return d;
        }
    }
    let err = format!("return Err(EncodeError::NullNotAllowed {{ field: {ctx}, version }});");
    let null_branch = if f.nullable.contains_range(present) {
        null_stmt
    } else if f.nullable.intersect(present).is_empty() {
        err
    } else {
        format!(
            "if {} {{ {null_stmt} }} else {{ {err} }}",
            f.nullable.cond(c.valid)
        )
    };
    let some_stmt = match &f.ty {
        Ty::Struct(_) => format!("{out}.put_i8(1); {}", enc_elem(&f.ty, "v", out, &ctx)),
        _ => enc_elem(&f.ty, "v", out, &ctx),
    };
    format!(
        "match &self.{} {{ Some(v) => {{ {some_stmt} }} None => {{ {null_branch} }} }}",
        f.rust_name
    )
}

/// Expression building a non-default sample value for tests.
fn sample_elem(ty: &Ty, default: &str) -> String {
    match ty {
        Ty::Bool => format!("!{default}"),
        t if t.is_int() => {
            let r = t.rust();
            format!("({default} as {r}).wrapping_add(1 + (next(seed) % 100) as {r})")
        }
        Ty::F64 => format!("{default} + 1.5 + f64::from((next(seed) % 10) as u8)"),
        Ty::Uuid => "Uuid([next(seed) as u8 | 1; 16])".into(),
        Ty::Str => "format!(\"s{}\", next(seed))".into(),
        Ty::Bytes => "Bytes::from(vec![next(seed) as u8; 3])".into(),
        Ty::Records => "Records::from_bytes(Bytes::from(vec![next(seed) as u8; 5]))".into(),
        Ty::Struct(s) => format!("{s}::sample(version, seed)"),
        Ty::Array(inner) => {
            let d = match inner.as_ref() {
                Ty::Bool => "false",
                t if t.is_int() => "0",
                Ty::F64 => "0.0",
                _ => "",
            };
            format!("vec![{}, {}]", sample_elem(inner, d), sample_elem(inner, d))
        }
        _ => unreachable!(),
    }
}

fn gen_struct(out: &mut String, msg: &Message, s: &StructDef) -> Result<()> {
    let c = Ctx {
        valid: msg.valid,
        flexible: msg.flexible,
        sname: &s.name,
    };
    let _ = c.flexible;
    let flexible_expr = if msg.flexible.intersect(msg.valid).is_empty() {
        "false".to_string()
    } else {
        format!("version >= {}", msg.flexible.lo)
    };
    // Struct definition.
    if !s.about.is_empty() {
        writeln!(out, "/// {}", s.about.replace('\n', " ")).ok();
    }
    writeln!(
        out,
        "#[derive(Debug, Clone, PartialEq)]\npub struct {} {{",
        s.name
    )
    .ok();
    for f in &s.fields {
        let mut doc = f.about.replace('\n', " ");
        write!(doc, " (versions {}", fmt_range(f.versions)).ok();
        if !f.nullable.is_empty() {
            write!(doc, ", nullable {}", fmt_range(f.nullable)).ok();
        }
        if let Some(t) = f.tag {
            write!(doc, ", tag {t} in {}", fmt_range(f.tagged)).ok();
        }
        doc.push(')');
        writeln!(
            out,
            "    /// {}\n    pub {}: {},",
            doc.trim(),
            f.rust_name,
            f.rust_type()
        )
        .ok();
    }
    writeln!(out, "}}\n").ok();
    // Default.
    writeln!(
        out,
        "impl Default for {} {{\n    fn default() -> Self {{\n        {} {{",
        s.name, s.name
    )
    .ok();
    for f in &s.fields {
        writeln!(out, "            {}: {},", f.rust_name, f.default_expr()?).ok();
    }
    writeln!(out, "        }}\n    }}\n}}\n").ok();

    let regular = |f: &Field| -> String {
        // Present as a regular (non-tagged) field.
        let present = f.versions.intersect(msg.valid);
        let tagged = f.tagged.intersect(present);
        if tagged.is_empty() {
            f.versions.cond(msg.valid)
        } else if tagged == present {
            "false".into()
        } else {
            format!(
                "{} && !({})",
                f.versions.cond(msg.valid),
                f.tagged.cond(msg.valid)
            )
        }
    };
    let mut tagged: Vec<&Field> = s.fields.iter().filter(|f| f.tag.is_some()).collect();
    tagged.sort_by_key(|f| f.tag);

    writeln!(out, "impl {} {{", s.name).ok();
    // Decode.
    writeln!(
        out,
        "    pub(crate) fn decode_v(buf: &mut Bytes, version: i16) -> Result<Self, DecodeError> {{"
    )
    .ok();
    writeln!(
        out,
        "        let _ = version;\n        let flexible = {flexible_expr};"
    )
    .ok();
    writeln!(out, "        let mut this = Self::default();").ok();
    for f in &s.fields {
        let cond = regular(f);
        if cond == "false" {
            continue;
        }
        let stmt = dec_field(&c, f, "buf");
        if cond == "true" {
            writeln!(out, "        {stmt}").ok();
        } else {
            writeln!(out, "        if {cond} {{ {stmt} }}").ok();
        }
    }
    if flexible_expr != "false" {
        writeln!(out, "        if flexible {{").ok();
        let tag_ctx = format!("{:?}", format!("{}.<tagged fields>", s.name));
        if tagged.is_empty() {
            writeln!(out, "            skip_tagged_fields(buf, {tag_ctx})?;").ok();
        } else {
            writeln!(out, "            read_tagged_fields(buf, {tag_ctx}, |tag, b| {{\n                match tag {{").ok();
            for f in &tagged {
                let cond = f.tagged.intersect(f.versions).cond(msg.valid);
                let guard = if cond == "true" {
                    String::new()
                } else {
                    format!(" if {cond}")
                };
                writeln!(
                    out,
                    "                    {}{guard} => {{ {} }}",
                    f.tag.unwrap_or(0),
                    dec_field(&c, f, "b")
                )
                .ok();
            }
            writeln!(out, "                    _ => {{}}\n                }}\n                Ok(())\n            }})?;").ok();
        }
        writeln!(out, "        }}").ok();
    } else {
        writeln!(out, "        let _ = flexible;").ok();
    }
    writeln!(out, "        Ok(this)\n    }}\n").ok();

    // Encode.
    writeln!(out, "    pub(crate) fn encode_v(&self, out: &mut Encoder, version: i16) -> Result<(), EncodeError> {{").ok();
    writeln!(
        out,
        "        let _ = version;\n        let flexible = {flexible_expr};"
    )
    .ok();
    for f in &s.fields {
        let cond = regular(f);
        let present = f.versions.cond(msg.valid);
        let absent_check = if f.ignorable || present == "true" {
            None
        } else {
            Some(format!(
                "if out.is_strict() && {} {{ return Err(EncodeError::FieldNotInVersion {{ field: {}, version }}); }}",
                f.non_default()?,
                c.field_ctx(f)
            ))
        };
        let stmt = enc_field(&c, f, "out");
        match (cond.as_str(), absent_check) {
            ("true", _) => writeln!(out, "        {stmt}").ok(),
            ("false", Some(chk)) => writeln!(out, "        if !({present}) {{ {chk} }}").ok(),
            ("false", None) => None,
            (_, Some(chk)) if cond == present => {
                writeln!(out, "        if {cond} {{ {stmt} }} else {{ {chk} }}").ok()
            }
            (_, Some(chk)) => writeln!(
                out,
                "        if {cond} {{ {stmt} }} else if !({present}) {{ {chk} }}"
            )
            .ok(),
            (_, None) => writeln!(out, "        if {cond} {{ {stmt} }}").ok(),
        };
    }
    if flexible_expr != "false" {
        writeln!(out, "        if flexible {{").ok();
        if tagged.is_empty() {
            writeln!(out, "            out.put_uvarint(0);").ok();
        } else {
            writeln!(out, "            let mut count = 0u32;").ok();
            let conds: Vec<String> = tagged
                .iter()
                .map(|f| {
                    let cond = f.tagged.intersect(f.versions).cond(msg.valid);
                    let nd = f.non_default()?;
                    Ok(if cond == "true" {
                        nd
                    } else {
                        format!("({cond}) && {nd}")
                    })
                })
                .collect::<Result<_>>()?;
            // Each tagged field is written only when it differs from its default.
            for (i, cnd) in conds.iter().enumerate() {
                writeln!(out, "            let write_tag_{i} = {cnd};").ok();
                writeln!(out, "            count += u32::from(write_tag_{i});").ok();
            }
            writeln!(out, "            out.put_uvarint(count);").ok();
            for (i, f) in tagged.iter().enumerate() {
                writeln!(
                    out,
                    "            if write_tag_{i} {{ let mut sub = Encoder::new(); {{ let out = &mut sub; {} }} out.put_tagged({}, &sub.into_contiguous(), {})?; }}",
                    enc_field(&c, f, "out"),
                    f.tag.unwrap_or(0),
                    c.field_ctx(f)
                )
                .ok();
            }
        }
        writeln!(out, "        }}").ok();
    } else {
        writeln!(out, "        let _ = flexible;").ok();
    }
    writeln!(out, "        Ok(())\n    }}\n").ok();

    // Test samples: a non-default value in every field present at `version`.
    writeln!(
        out,
        "    #[cfg(test)]\n    pub(crate) fn sample(version: i16, seed: &mut u64) -> Self {{"
    )
    .ok();
    writeln!(
        out,
        "        let _ = (version, &seed);\n        let mut this = Self::default();"
    )
    .ok();
    for f in &s.fields {
        let cond = f.versions.cond(msg.valid);
        if cond == "false" {
            continue;
        }
        let d = f.default_expr()?;
        let base = if f.ty.is_copy() { d } else { String::new() };
        let mut v = sample_elem(&f.ty, &base);
        if f.optional() {
            v = format!("Some({v})");
        }
        writeln!(out, "        if {cond} {{ this.{} = {v}; }}", f.rust_name).ok();
    }
    writeln!(out, "        this\n    }}").ok();
    writeln!(out, "}}\n").ok();
    Ok(())
}

fn fmt_range(r: Range) -> String {
    if r.is_empty() {
        "none".into()
    } else if r.hi == i16::MAX {
        format!("{}+", r.lo)
    } else if r.lo == r.hi {
        r.lo.to_string()
    } else {
        format!("{}-{}", r.lo, r.hi)
    }
}

fn gen_message(out: &mut String, msg: &Message, api_name: &str) -> Result<()> {
    let module = snake_case(&msg.name);
    writeln!(
        out,
        "/// Kafka's `{}` message.\npub mod {module} {{",
        msg.name
    )
    .ok();
    writeln!(out, "use super::*;\n").ok();
    for s in &msg.structs {
        gen_struct(out, msg, s)?;
    }
    let flex = if msg.flexible.intersect(msg.valid).is_empty() {
        "None".to_string()
    } else {
        format!("Some({})", msg.flexible.lo)
    };
    writeln!(
        out,
        "impl {n} {{\n    /// Versions defined by Kafka's JSON for this message.\n    pub const VALID_VERSIONS: (i16, i16) = ({lo}, {hi});\n    /// First flexible (tagged fields, compact encodings) version, if any.\n    pub const FIRST_FLEXIBLE_VERSION: Option<i16> = {flex};\n}}\n",
        n = msg.name,
        lo = msg.valid.lo,
        hi = msg.valid.hi
    )
    .ok();
    writeln!(
        out,
        "impl Message for {n} {{
    const API_KEY: ApiKey = ApiKey::{api_name};
    fn decode(buf: &mut Bytes, version: i16) -> Result<Self, DecodeError> {{
        if !({lo}..={hi}).contains(&version) {{
            return Err(DecodeError::UnsupportedVersion {{ message: {n:?}, version }});
        }}
        Self::decode_v(buf, version)
    }}
    fn encode(&self, out: &mut Encoder, version: i16) -> Result<(), EncodeError> {{
        if !({lo}..={hi}).contains(&version) {{
            return Err(EncodeError::UnsupportedVersion {{ message: {n:?}, version }});
        }}
        self.encode_v(out, version)
    }}
}}",
        n = msg.name,
        lo = msg.valid.lo,
        hi = msg.valid.hi
    )
    .ok();
    writeln!(out, "}}\npub use {module}::{};\n", msg.name).ok();
    Ok(())
}

/// Reads `<schema_dir>/<Api>Request.json` and `<Api>Response.json` for each API and generates the codec.
pub fn generate(schema_dir: &Path, apis: &[ApiSpec]) -> Result<Generated> {
    let mut messages = String::new();
    let mut api = String::new();
    struct ApiInfo {
        name: &'static str,
        key: i16,
        min: i16,
        max: i16,
        req_flex: Option<i16>,
        resp_flex: Option<i16>,
    }
    let mut infos = Vec::new();
    for spec in apis {
        let mut parsed = Vec::new();
        for kind in ["Request", "Response"] {
            let path = schema_dir.join(format!("{}{kind}.json", spec.name));
            let src =
                std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let mut msg = parse_message(&src).map_err(|e| format!("{}: {e}", path.display()))?;
            if let Some(from) = spec.codec_from {
                msg.valid.lo = msg.valid.lo.min(from);
            }
            if msg.is_request != (kind == "Request") {
                return Err(format!("{}: unexpected message type", path.display()));
            }
            gen_message(&mut messages, &msg, spec.name)?;
            parsed.push(msg);
        }
        let (req, resp) = (&parsed[0], &parsed[1]);
        let max = req.valid.hi.min(resp.valid.hi)
            - i16::from(req.latest_unstable || resp.latest_unstable);
        let flex =
            |m: &Message| (!m.flexible.intersect(m.valid).is_empty()).then_some(m.flexible.lo);
        infos.push(ApiInfo {
            name: spec.name,
            key: req.api_key,
            min: spec.min_version.max(req.valid.lo),
            max,
            req_flex: flex(req),
            resp_flex: flex(resp),
        });
    }

    let w = &mut api;
    writeln!(w, "/// The Kafka APIs this codec serves.\n#[repr(i16)]\n#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]\npub enum ApiKey {{").ok();
    for i in &infos {
        writeln!(w, "    {} = {},", i.name, i.key).ok();
    }
    writeln!(w, "}}\n\nimpl ApiKey {{").ok();
    writeln!(w, "    /// Every API the codec serves, in API key order.\n    pub const ALL: &'static [ApiKey] = &[").ok();
    let mut sorted: Vec<&ApiInfo> = infos.iter().collect();
    sorted.sort_by_key(|i| i.key);
    for i in &sorted {
        writeln!(w, "        ApiKey::{},", i.name).ok();
    }
    writeln!(
        w,
        "    ];\n\n    pub fn from_i16(key: i16) -> Option<ApiKey> {{\n        match key {{"
    )
    .ok();
    for i in &infos {
        writeln!(w, "            {} => Some(ApiKey::{}),", i.key, i.name).ok();
    }
    writeln!(w, "            _ => None,\n        }}\n    }}\n\n    pub fn name(self) -> &'static str {{\n        match self {{").ok();
    for i in &infos {
        writeln!(w, "            ApiKey::{0} => {0:?},", i.name).ok();
    }
    writeln!(w, "        }}\n    }}\n\n    /// Versions this codec decodes and encodes (request and response).\n    pub fn versions(self) -> (i16, i16) {{\n        match self {{").ok();
    for i in &infos {
        writeln!(
            w,
            "            ApiKey::{} => ({}, {}),",
            i.name, i.min, i.max
        )
        .ok();
    }
    writeln!(w, "        }}\n    }}\n\n    /// 2 for flexible request versions, else 1.\n    pub fn request_header_version(self, version: i16) -> i16 {{\n        match self {{").ok();
    for i in &infos {
        match i.req_flex {
            Some(f) => writeln!(
                w,
                "            ApiKey::{} => if version >= {f} {{ 2 }} else {{ 1 }},",
                i.name
            )
            .ok(),
            None => writeln!(w, "            ApiKey::{} => 1,", i.name).ok(),
        };
    }
    writeln!(w, "        }}\n    }}\n\n    /// 1 for flexible response versions, else 0; ApiVersions is always 0 (KIP-511).\n    pub fn response_header_version(self, version: i16) -> i16 {{\n        match self {{").ok();
    for i in &infos {
        match (i.name, i.resp_flex) {
            ("ApiVersions", _) | (_, None) => {
                writeln!(w, "            ApiKey::{} => 0,", i.name).ok()
            }
            (_, Some(f)) => writeln!(
                w,
                "            ApiKey::{} => if version >= {f} {{ 1 }} else {{ 0 }},",
                i.name
            )
            .ok(),
        };
    }
    writeln!(w, "        }}\n    }}\n}}\n").ok();

    writeln!(w, "/// A decoded request body, one variant per API.\n#[derive(Debug, Clone, PartialEq)]\npub enum RequestBody {{").ok();
    for i in &infos {
        writeln!(w, "    {0}({0}Request),", i.name).ok();
    }
    writeln!(
        w,
        "}}\n\nimpl RequestBody {{\n    pub fn api_key(&self) -> ApiKey {{\n        match self {{"
    )
    .ok();
    for i in &infos {
        writeln!(w, "            RequestBody::{0}(_) => ApiKey::{0},", i.name).ok();
    }
    writeln!(w, "        }}\n    }}\n\n    /// Decodes the body of `key` at `version` (which the caller has checked against `key.versions()`).\n    pub(crate) fn decode(key: ApiKey, buf: &mut Bytes, version: i16) -> Result<RequestBody, DecodeError> {{\n        Ok(match key {{").ok();
    for i in &infos {
        writeln!(
            w,
            "            ApiKey::{0} => RequestBody::{0}({0}Request::decode(buf, version)?),",
            i.name
        )
        .ok();
    }
    writeln!(w, "        }})\n    }}\n\n    /// Encodes the body (without header) at `version`.\n    pub fn encode(&self, out: &mut Encoder, version: i16) -> Result<(), EncodeError> {{\n        match self {{").ok();
    for i in &infos {
        writeln!(
            w,
            "            RequestBody::{0}(m) => m.encode(out, version),",
            i.name
        )
        .ok();
    }
    writeln!(w, "        }}\n    }}\n}}").ok();

    writeln!(w, "\n/// Calls `$m!(ApiName, Request, Response)` for every API (tests).\n#[cfg(test)]\nmacro_rules! for_all_apis {{\n    ($m:ident) => {{").ok();
    for i in &infos {
        writeln!(w, "        $m!({0}, {0}Request, {0}Response);", i.name).ok();
    }
    writeln!(w, "    }};\n}}\n#[cfg(test)]\npub(crate) use for_all_apis;").ok();

    Ok(Generated { messages, api })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_case_follows_kafka_names() {
        assert_eq!(snake_case("ThrottleTimeMs"), "throttle_time_ms");
        assert_eq!(snake_case("TopicData"), "topic_data");
        assert_eq!(snake_case("ProduceRequest"), "produce_request");
        assert_eq!(snake_case("IsrNodes"), "isr_nodes");
        assert_eq!(rust_ident("Type"), "type_");
    }

    #[test]
    fn version_ranges_parse() {
        assert_eq!(
            Range::parse("3+").unwrap(),
            Range {
                lo: 3,
                hi: i16::MAX
            }
        );
        assert_eq!(Range::parse("0-11").unwrap(), Range { lo: 0, hi: 11 });
        assert!(Range::parse("none").unwrap().is_empty());
    }

    #[test]
    fn comments_are_stripped_outside_strings() {
        let s = strip_comments("// licence\n{\"a\": \"http://x\"} // tail\n");
        assert_eq!(s.trim(), "{\"a\": \"http://x\"}");
    }
}
