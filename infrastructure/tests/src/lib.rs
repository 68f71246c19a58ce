//! Reading `infrastructure/terraform` as HCL (hcl-rs), so the tests in `tests/` can hold it against
//! the rest of the workspace: the function folders, the ASL template and statelint.
//!
//! Everything here parses: the `.tf` files as HCL bodies, the ASL as an HCL template (what
//! Terraform's `templatefile` does with it). No pattern matching over file text. Variables and
//! locals can also be evaluated as Terraform would (`Config::input_values`,
//! `Config::evaluated_locals`), for what the functions' environment and the schedule's payload
//! end up holding.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use hcl::eval::{Context, Evaluate, FuncArgs, FuncDef, ParamType};
use hcl::expr::{Expression, ObjectKey, TraversalOperator};
use hcl::template::Element;
use hcl::{Block, Body, Map, Template, Value};

/// The workspace root (this crate lives in `infrastructure/tests`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the workspace root exists")
}

/// The reusable module and the example root that calls it.
pub fn module_dir() -> PathBuf {
    repo_root().join("infrastructure/terraform/modules/price-backfill")
}

pub fn example_dir() -> PathBuf {
    repo_root().join("infrastructure/terraform/example")
}

/// The state machine definition (with `${…}` placeholders).
pub fn asl_template_path() -> PathBuf {
    repo_root().join("statemachine/backfill.asl.json")
}

/// The Terraform configuration of one folder: every `*.tf` file in it, parsed.
pub struct Config {
    pub dir: PathBuf,
    pub files: Vec<(PathBuf, Body)>,
}

impl Config {
    /// Parses every `.tf` file of `dir` (not recursive: one Terraform module per folder).
    pub fn load(dir: &Path) -> Result<Self, String> {
        let mut paths: Vec<PathBuf> = fs::read_dir(dir)
            .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|ext| ext == "tf"))
            .collect();
        paths.sort();
        let mut files = Vec::new();
        for path in paths {
            let text = fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let body = hcl::parse(&text)
                .map_err(|e| format!("{} is not valid HCL: {e}", path.display()))?;
            files.push((path, body));
        }
        if files.is_empty() {
            return Err(format!("no .tf files in {}", dir.display()));
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            files,
        })
    }

    /// Top-level blocks of one kind (`resource`, `variable`, `locals`, `module`, …).
    pub fn blocks<'a>(&'a self, identifier: &'a str) -> impl Iterator<Item = &'a Block> + 'a {
        self.files
            .iter()
            .flat_map(|(_, body)| body.blocks())
            .filter(move |b| b.identifier() == identifier)
    }

    /// `resource "<kind>" "<name>"` blocks of one resource type, by name.
    pub fn resources(&self, kind: &str) -> BTreeMap<String, &Block> {
        self.blocks("resource")
            .filter(|b| label(b, 0) == Some(kind))
            .filter_map(|b| label(b, 1).map(|name| (name.to_string(), b)))
            .collect()
    }

    /// Every `locals` attribute, by name.
    pub fn locals(&self) -> BTreeMap<String, &Expression> {
        self.blocks("locals")
            .flat_map(|b| b.body().attributes())
            .map(|a| (a.key().to_string(), a.expr()))
            .collect()
    }

    /// Every `variable` block, by name.
    pub fn variables(&self) -> BTreeMap<String, &Block> {
        self.blocks("variable")
            .filter_map(|b| label(b, 0).map(|name| (name.to_string(), b)))
            .collect()
    }
}

impl Config {
    /// What Terraform gives `var.*`: every variable's default (null when it has none), then
    /// `inputs` on top, as a caller's arguments would.
    pub fn input_values(&self, inputs: &[(&str, Value)]) -> Result<Map<String, Value>, String> {
        let empty = Context::new();
        let mut values = Map::new();
        for (name, block) in self.variables() {
            let value = match attribute(block, "default") {
                Some(default) => default
                    .evaluate(&empty)
                    .map_err(|e| format!("variable {name}: cannot evaluate its default: {e}"))?,
                None => Value::Null,
            };
            values.insert(name, value);
        }
        for (name, value) in inputs {
            if !values.contains_key(*name) {
                return Err(format!("the module declares no variable {name}"));
            }
            values.insert(name.to_string(), value.clone());
        }
        Ok(values)
    }

    /// The locals Terraform would compute from `vars` alone, by name. Locals that need a resource,
    /// a data source or `path` are left out (they cannot be known without a plan), and so are
    /// those that depend on them.
    pub fn evaluated_locals(&self, vars: &Map<String, Value>) -> Map<String, Value> {
        let pending = self.locals();
        let mut done = Map::new();
        loop {
            let ctx = terraform_context(vars, &done);
            let newly: Vec<(String, Value)> = pending
                .iter()
                .filter(|(name, _)| !done.contains_key(name.as_str()))
                .filter_map(|(name, expr)| expr.evaluate(&ctx).ok().map(|v| (name.clone(), v)))
                .collect();
            if newly.is_empty() {
                return done;
            }
            done.extend(newly);
        }
    }
}

/// An evaluation context with `var`, `local` and the Terraform functions the module's locals
/// call (`merge`, `tomap`, `compact`, `tostring`, `jsonencode`, `replace`, `concat`, `length`,
/// `ceil`), with Terraform's semantics for the values used.
pub fn terraform_context(
    vars: &Map<String, Value>,
    locals: &Map<String, Value>,
) -> Context<'static> {
    let mut ctx = Context::new();
    ctx.declare_var("var", Value::Object(vars.clone()));
    ctx.declare_var("local", Value::Object(locals.clone()));
    ctx.declare_func(
        "merge",
        FuncDef::builder()
            .variadic_param(ParamType::nullable(ParamType::object_of(ParamType::Any)))
            .build(tf_merge),
    );
    ctx.declare_func(
        "tomap",
        FuncDef::builder()
            .param(ParamType::object_of(ParamType::Any))
            .build(|args| Ok(args[0].clone())),
    );
    ctx.declare_func(
        "compact",
        FuncDef::builder()
            .param(ParamType::array_of(ParamType::nullable(ParamType::String)))
            .build(tf_compact),
    );
    ctx.declare_func(
        "tostring",
        FuncDef::builder().param(ParamType::Any).build(tf_tostring),
    );
    ctx.declare_func(
        "jsonencode",
        FuncDef::builder()
            .param(ParamType::nullable(ParamType::Any))
            .build(|args| Ok(Value::from(json_encode(&args[0])))),
    );
    ctx.declare_func(
        "replace",
        FuncDef::builder()
            .params([ParamType::String, ParamType::String, ParamType::String])
            .build(tf_replace),
    );
    ctx.declare_func(
        "concat",
        FuncDef::builder()
            .variadic_param(ParamType::array_of(ParamType::Any))
            .build(|args| {
                Ok(Value::Array(
                    args.iter()
                        .flat_map(|list| list.as_array().cloned().unwrap_or_default())
                        .collect(),
                ))
            }),
    );
    ctx.declare_func(
        "length",
        FuncDef::builder().param(ParamType::Any).build(tf_length),
    );
    ctx.declare_func(
        "ceil",
        FuncDef::builder().param(ParamType::Number).build(tf_ceil),
    );
    ctx
}

/// `length(x)`: the elements of a list, the keys of an object, the characters of a string.
fn tf_length(args: FuncArgs) -> Result<Value, String> {
    match &args[0] {
        Value::Array(items) => Ok(Value::from(items.len() as u64)),
        Value::Object(object) => Ok(Value::from(object.len() as u64)),
        Value::String(s) => Ok(Value::from(s.chars().count() as u64)),
        other => Err(format!("length: cannot take the length of {other:?}")),
    }
}

/// `ceil(n)`: the smallest whole number not below `n` (a whole number, as Terraform prints it).
fn tf_ceil(args: FuncArgs) -> Result<Value, String> {
    let n = args[0]
        .as_number()
        .and_then(|n| n.as_f64())
        .expect("checked by the parameter type");
    let ceiling = n.ceil();
    if ceiling.abs() > 9.0e15 {
        return Err(format!(
            "ceil: {n} is beyond what this model computes exactly"
        ));
    }
    Ok(Value::from(ceiling as i64))
}

/// `merge(a, b, …)`: later keys win; null arguments are skipped.
fn tf_merge(args: FuncArgs) -> Result<Value, String> {
    let mut merged = Map::new();
    for arg in args.iter() {
        if let Value::Object(object) = arg {
            merged.extend(object.clone());
        }
    }
    Ok(Value::Object(merged))
}

/// `compact(list)`: the list without nulls and empty strings.
fn tf_compact(args: FuncArgs) -> Result<Value, String> {
    let list = args[0].as_array().expect("checked by the parameter type");
    Ok(Value::Array(
        list.iter()
            .filter(|v| !v.is_null() && v.as_str() != Some(""))
            .cloned()
            .collect(),
    ))
}

/// `tostring(x)`: strings as they are, numbers and booleans as text, null stays null.
fn tf_tostring(args: FuncArgs) -> Result<Value, String> {
    match &args[0] {
        Value::Null => Ok(Value::Null),
        Value::String(s) => Ok(Value::from(s.clone())),
        Value::Number(n) => Ok(Value::from(n.to_string())),
        Value::Bool(b) => Ok(Value::from(b.to_string())),
        other => Err(format!("tostring: cannot convert {other:?}")),
    }
}

/// `replace(string, substring, replacement)`: every occurrence of a plain substring. Terraform's
/// `/regex/` form is not modelled, and is refused rather than taken literally.
fn tf_replace(args: FuncArgs) -> Result<Value, String> {
    let [string, substring, replacement] =
        [0, 1, 2].map(|i| args[i].as_str().expect("checked by the parameter type"));
    if substring.len() > 1 && substring.starts_with('/') && substring.ends_with('/') {
        return Err(format!(
            "replace: the regular expression {substring} is not modelled here"
        ));
    }
    Ok(Value::from(string.replace(substring, replacement)))
}

/// What Terraform's `jsonencode` writes (Go's `encoding/json`): object keys sorted, no spaces, and
/// `<`, `>`, `&`, U+2028 and U+2029 escaped as `\u003c`, `\u003e`, `\u0026`, `\u2028`, `\u2029`.
fn json_encode(value: &Value) -> String {
    let mut out = String::new();
    write_json(value, &mut out);
    out
}

fn write_json(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => out.push_str(&i.to_string()),
            (None, Some(u), _) => out.push_str(&u.to_string()),
            (None, None, Some(f)) => out.push_str(&f.to_string()),
            (None, None, None) => out.push_str("null"),
        },
        Value::String(s) => write_json_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(item, out);
            }
            out.push(']');
        }
        Value::Object(object) => {
            let sorted: BTreeMap<&str, &Value> =
                object.iter().map(|(k, v)| (k.as_str(), v)).collect();
            out.push('{');
            for (i, (key, item)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_string(key, out);
                out.push(':');
                write_json(item, out);
            }
            out.push('}');
        }
    }
}

fn write_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A block's n-th label.
pub fn label(block: &Block, n: usize) -> Option<&str> {
    block.labels().get(n).map(|l| l.as_str())
}

/// The expression of a block's attribute.
pub fn attribute<'a>(block: &'a Block, key: &str) -> Option<&'a Expression> {
    block
        .body()
        .attributes()
        .find(|a| a.key() == key)
        .map(|a| a.expr())
}

/// `a.b.c` of a traversal starting at a variable, with `["key"]` indexes written as `[key]`:
/// `aws_lambda_function.this["fetch-batch"].arn` reads `aws_lambda_function.this[fetch-batch].arn`.
pub fn traversal_path(expr: &Expression) -> Option<String> {
    match expr {
        Expression::Variable(v) => Some(v.to_string()),
        Expression::Traversal(t) => {
            let mut out = traversal_path(&t.expr)?;
            for op in &t.operators {
                match op {
                    TraversalOperator::GetAttr(id) => {
                        out.push('.');
                        out.push_str(id.as_str());
                    }
                    TraversalOperator::Index(Expression::String(s)) => {
                        out.push('[');
                        out.push_str(s);
                        out.push(']');
                    }
                    _ => return None,
                }
            }
            Some(out)
        }
        _ => None,
    }
}

/// The keys of an object expression (`{ a = …, "b-c" = … }`), in order.
pub fn object_keys(expr: &Expression) -> Option<Vec<String>> {
    match expr {
        Expression::Object(object) => Some(
            object
                .iter()
                .map(|(key, _)| match key {
                    ObjectKey::Identifier(id) => id.to_string(),
                    ObjectKey::Expression(Expression::String(s)) => s.clone(),
                    ObjectKey::Expression(other) => format!("{other:?}"),
                    _ => format!("{key:?}"),
                })
                .collect(),
        ),
        _ => None,
    }
}

/// The first nested block of one kind (`environment`, `logging_config`, …) in a block's body.
pub fn nested_block<'a>(block: &'a Block, identifier: &str) -> Option<&'a Block> {
    block.body().blocks().find(|b| b.identifier() == identifier)
}

/// The value of one key of an object expression.
pub fn object_value<'a>(expr: &'a Expression, wanted: &str) -> Option<&'a Expression> {
    match expr {
        Expression::Object(object) => object.iter().find_map(|(key, value)| {
            let name = match key {
                ObjectKey::Identifier(id) => id.as_str(),
                ObjectKey::Expression(Expression::String(s)) => s.as_str(),
                _ => return None,
            };
            (name == wanted).then_some(value)
        }),
        _ => None,
    }
}

/// The ASL file as Terraform's `templatefile` reads it: an HCL template.
pub fn asl_template() -> Result<Template, String> {
    let path = asl_template_path();
    let text =
        fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    text.parse::<Template>()
        .map_err(|e| format!("{} is not a valid HCL template: {e}", path.display()))
}

/// What the template interpolates: each `${…}` must be a plain variable (an ARN placeholder);
/// anything else (an expression, a `%{…}` directive) is reported as an error.
pub fn template_variables(template: &Template) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    for element in template.elements() {
        match element {
            Element::Literal(_) => {}
            Element::Interpolation(interpolation) => match &interpolation.expr {
                Expression::Variable(v) => {
                    if !names.iter().any(|n| n == v.as_str()) {
                        names.push(v.to_string());
                    }
                }
                other => return Err(format!("unexpected interpolation in the ASL: {other:?}")),
            },
            Element::Directive(d) => return Err(format!("unexpected directive in the ASL: {d:?}")),
        }
    }
    Ok(names)
}

/// The function folder a placeholder names: `fetch_batch_function_arn` → `fetch-batch`.
pub fn function_of_placeholder(placeholder: &str) -> Option<String> {
    placeholder
        .strip_suffix("_function_arn")
        .map(|f| f.replace('_', "-"))
}

/// The function whose Task timeout a placeholder is: `fetch_batch_task_timeout_seconds` →
/// `fetch-batch`.
pub fn function_of_task_timeout(placeholder: &str) -> Option<String> {
    placeholder
        .strip_suffix("_task_timeout_seconds")
        .map(|f| f.replace('_', "-"))
}

/// The folders under `functions/` that are crates (one Lambda each).
pub fn function_folders() -> Vec<String> {
    let dir = repo_root().join("functions");
    let mut names: Vec<String> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.join("Cargo.toml").is_file())
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    names.sort();
    names
}
