//! `infrastructure/terraform` held against the workspace (part of `make infra-check` and
//! `make test`). `terraform validate` cannot run here (no provider registry), so these parse the
//! HCL and check what would otherwise only fail at deploy time.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::PathBuf;
use std::process::Command;

use hcl::eval::{Context, Evaluate};
use hcl::expr::Expression;
use hcl::{Map, Value};
use infrastructure_tests::{
    asl_template, asl_template_path, attribute, example_dir, function_folders,
    function_of_placeholder, label, module_dir, nested_block, object_keys, object_value, repo_root,
    template_variables, terraform_context, traversal_path, Config,
};

fn module() -> Config {
    Config::load(&module_dir()).unwrap_or_else(|e| panic!("{e}"))
}

fn example() -> Config {
    Config::load(&example_dir()).unwrap_or_else(|e| panic!("{e}"))
}

/// Resolves `local.<name>` to the local's expression; any other expression is returned as is.
fn resolve_local<'a>(config: &'a Config, expr: &'a Expression) -> &'a Expression {
    match traversal_path(expr)
        .as_deref()
        .and_then(|p| p.strip_prefix("local."))
    {
        Some(name) => config
            .locals()
            .get(name)
            .copied()
            .unwrap_or_else(|| panic!("local.{name} is used but not defined")),
        None => expr,
    }
}

/// The one `aws_sfn_state_machine` and the arguments of its `definition = templatefile(…)`.
fn templatefile_args(config: &Config) -> (&Expression, &Expression) {
    let machines = config.resources("aws_sfn_state_machine");
    assert_eq!(
        machines.len(),
        1,
        "one state machine, found {:?}",
        machines.keys()
    );
    let machine = machines.values().next().unwrap();
    let definition = attribute(machine, "definition").expect("the state machine has a definition");
    let Expression::FuncCall(call) = definition else {
        panic!("definition must be templatefile(<asl>, {{…}}), found {definition:?}");
    };
    assert_eq!(
        call.name.to_string(),
        "templatefile",
        "definition must use templatefile"
    );
    assert_eq!(
        call.args.len(),
        2,
        "templatefile takes a path and a variables object"
    );
    (&call.args[0], &call.args[1])
}

/// Function name -> the `aws_lambda_function` address that deploys it (`aws_lambda_function.this[fetch-batch]`).
fn lambda_addresses(config: &Config) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (name, block) in config.resources("aws_lambda_function") {
        match attribute(block, "for_each") {
            Some(for_each) => {
                let keys = object_keys(resolve_local(config, for_each)).unwrap_or_else(|| {
                    panic!("aws_lambda_function.{name}: for_each must be an object (or a local holding one)")
                });
                for key in keys {
                    out.push((key.clone(), format!("aws_lambda_function.{name}[{key}]")));
                }
            }
            None => out.push((
                name.replace('_', "-"),
                format!("aws_lambda_function.{name}"),
            )),
        }
    }
    out
}

#[test]
fn every_terraform_file_parses_as_hcl() {
    let module = module();
    let example = example();
    assert!(
        module.files.len() >= 5,
        "module files: {}",
        module.files.len()
    );
    assert!(!example.files.is_empty());
}

#[test]
fn every_function_folder_has_its_lambda_function_resource() {
    let folders = function_folders();
    assert_eq!(
        folders,
        ["fetch-batch", "finalize-run", "select-tickers"],
        "the function folders changed: update infrastructure/terraform and this list"
    );
    let deployed: BTreeSet<String> = lambda_addresses(&module())
        .into_iter()
        .map(|(f, _)| f)
        .collect();
    let folders: BTreeSet<String> = folders.into_iter().collect();
    assert_eq!(
        deployed, folders,
        "functions/ and the aws_lambda_function resources of the module differ"
    );
}

#[test]
fn every_asl_placeholder_is_filled_with_its_functions_arn() {
    let config = module();
    let (path_arg, vars_arg) = templatefile_args(&config);

    // The template path is the one ASL file.
    let path_expr = resolve_local(&config, path_arg);
    let mut path = Map::new();
    path.insert(
        "module".to_string(),
        Value::from(module_dir().to_string_lossy().into_owned()),
    );
    let mut ctx = Context::new();
    ctx.declare_var("path", Value::Object(path));
    let template_path = path_expr
        .evaluate(&ctx)
        .unwrap_or_else(|e| panic!("cannot evaluate the template path {path_expr:?}: {e}"));
    let template_path = PathBuf::from(template_path.as_str().expect("the path is a string"));
    assert_eq!(
        template_path
            .canonicalize()
            .expect("the template path exists"),
        asl_template_path(),
        "templatefile must render statemachine/backfill.asl.json"
    );

    let placeholders: BTreeSet<String> = template_variables(&asl_template().unwrap())
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .collect();
    assert!(!placeholders.is_empty(), "the ASL has no placeholders?");
    let provided: BTreeSet<String> = object_keys(vars_arg)
        .expect("templatefile's variables are an object")
        .into_iter()
        .collect();
    assert_eq!(
        placeholders, provided,
        "the ASL's ${{…}} placeholders and the variables Terraform passes to templatefile differ"
    );

    let addresses = lambda_addresses(&config);
    for placeholder in &placeholders {
        let function = function_of_placeholder(placeholder)
            .unwrap_or_else(|| panic!("placeholder {placeholder} is not <function>_function_arn"));
        let (_, address) = addresses
            .iter()
            .find(|(f, _)| *f == function)
            .unwrap_or_else(|| panic!("{placeholder}: no aws_lambda_function deploys {function}"));
        let value = object_value(vars_arg, placeholder).unwrap();
        assert_eq!(
            traversal_path(value).as_deref(),
            Some(format!("{address}.arn").as_str()),
            "{placeholder} must be the ARN of {function}"
        );
    }
}

/// The ARN `scripts/render-asl` uses for a function (its defaults: us-east-1, moto's account).
fn local_arn(function: &str) -> String {
    format!("arn:aws:lambda:us-east-1:123456789012:function:{function}")
}

#[test]
fn the_definition_terraform_renders_passes_statelint_and_matches_the_local_render() {
    let config = module();
    let (_, vars_arg) = templatefile_args(&config);
    let mut ctx = Context::new();
    for name in object_keys(vars_arg).unwrap() {
        let function = function_of_placeholder(&name).unwrap();
        ctx.declare_var(name.as_str(), local_arn(&function));
    }
    // What templatefile does: evaluate the file as an HCL template with those variables.
    let rendered = asl_template()
        .unwrap()
        .evaluate(&ctx)
        .unwrap_or_else(|e| panic!("templatefile would fail on the ASL: {e}"));
    let definition: serde_json::Value =
        serde_json::from_str(&rendered).expect("the rendered definition is JSON");

    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let terraform_render = out_dir.join("backfill.asl.terraform.json");
    fs::write(&terraform_render, &rendered).unwrap();

    // The local stack and `make lint` use scripts/render-asl: it must give the same definition.
    let local_render = out_dir.join("backfill.asl.render-asl.json");
    let status = Command::new(repo_root().join("scripts/render-asl"))
        .arg(&local_render)
        .env_remove("ASL_REGION")
        .env_remove("ASL_ACCOUNT_ID")
        .status()
        .expect("scripts/render-asl runs");
    assert!(status.success(), "scripts/render-asl failed");
    let local: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&local_render).unwrap()).unwrap();
    assert_eq!(
        definition, local,
        "Terraform's templatefile and scripts/render-asl render the ASL differently"
    );

    let statelint = repo_root().join("node_modules/.bin/statelint");
    assert!(
        statelint.is_file(),
        "{} is missing: run scripts/ensure-tools npm (make tools)",
        statelint.display()
    );
    let output = Command::new(&statelint)
        .arg(&terraform_render)
        .output()
        .expect("statelint runs");
    assert!(
        output.status.success(),
        "statelint rejects the definition Terraform deploys:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_example_root_passes_only_module_variables_and_every_required_one() {
    let module = module();
    let example = example();
    let module_vars = module.variables();
    let example_vars = example.variables();
    let call = example
        .blocks("module")
        .find(|b| label(b, 0) == Some("price_backfill"))
        .expect("the example root calls module \"price_backfill\"");
    let meta = [
        "source",
        "version",
        "providers",
        "depends_on",
        "count",
        "for_each",
    ];
    let mut passed = BTreeSet::new();
    for attr in call.body().attributes() {
        let key = attr.key().to_string();
        if meta.contains(&key.as_str()) {
            continue;
        }
        assert!(
            module_vars.contains_key(&key),
            "the example passes {key}, which the module does not declare"
        );
        if let Some(var) = traversal_path(attr.expr())
            .as_deref()
            .and_then(|p| p.strip_prefix("var."))
        {
            assert!(
                example_vars.contains_key(var),
                "the example uses var.{var} without declaring it"
            );
        }
        passed.insert(key);
    }
    for (name, block) in &module_vars {
        if attribute(block, "default").is_none() {
            assert!(
                passed.contains(name),
                "the example does not pass the required variable {name}"
            );
        }
    }
}

#[test]
fn every_module_variable_is_described_and_in_the_readme_variables_table() {
    let readme = fs::read_to_string(repo_root().join("README.md")).unwrap();
    let deployment = readme
        .split_once("\n## Deployment")
        .map(|(_, rest)| rest)
        .expect("README.md has a ## Deployment section");
    for (name, block) in module().variables() {
        let description = attribute(block, "description");
        assert!(
            matches!(description, Some(Expression::String(s)) if !s.is_empty()),
            "variable {name} has no description"
        );
        assert!(
            deployment.contains(&format!("| `{name}` |")),
            "README ## Deployment: the variables table lacks `{name}`"
        );
    }
}

/// Each deployed function's environment as Terraform computes it for the module called with
/// `inputs`: the `environment { variables = each.value.<field> }` of every `aws_lambda_function`,
/// evaluated for each entry of its `for_each`.
fn function_environments(inputs: &[(&str, Value)]) -> BTreeMap<String, Map<String, Value>> {
    let config = module();
    let vars = config
        .input_values(inputs)
        .unwrap_or_else(|e| panic!("{e}"));
    let ctx = terraform_context(&vars, &config.evaluated_locals(&vars));
    let mut out = BTreeMap::new();
    for (name, block) in config.resources("aws_lambda_function") {
        let variables = nested_block(block, "environment")
            .and_then(|env| attribute(env, "variables"))
            .unwrap_or_else(|| {
                panic!("aws_lambda_function.{name} has no environment {{ variables = … }}")
            });
        let path = traversal_path(variables).unwrap_or_default();
        let field = path.strip_prefix("each.value.").unwrap_or_else(|| {
            panic!("aws_lambda_function.{name}: environment variables must be each.value.<field>, found {variables:?}")
        });
        let for_each =
            attribute(block, "for_each").expect("the functions are one for_each resource");
        let functions = resolve_local(&config, for_each);
        for function in object_keys(functions).expect("for_each is an object") {
            let expr = object_value(functions, &function)
                .and_then(|entry| object_value(entry, field))
                .unwrap_or_else(|| panic!("{function} has no {field}"));
            let value = expr
                .evaluate(&ctx)
                .unwrap_or_else(|e| panic!("cannot evaluate the environment of {function}: {e}"));
            let Value::Object(env) = value else {
                panic!("the environment of {function} is not a map: {value:?}");
            };
            out.insert(function, env);
        }
    }
    assert_eq!(
        out.keys().cloned().collect::<Vec<_>>(),
        function_folders(),
        "every function has an environment"
    );
    out
}

const DATABASE_SECRET: (&str, &str) = (
    "database_secret_arn",
    "arn:aws:secretsmanager:us-east-1:123456789012:secret:price-backfill/database-AbCdEf",
);

#[test]
fn by_default_every_function_requires_tls_to_the_database_without_a_ca_bundle() {
    let envs = function_environments(&[(DATABASE_SECRET.0, Value::from(DATABASE_SECRET.1))]);
    for (function, env) in &envs {
        assert_eq!(
            env.get("PGSSLMODE"),
            Some(&Value::from("require")),
            "{function}: a deployed function must never fall back to plaintext"
        );
        assert_eq!(
            env.get("PGSSLROOTCERT"),
            None,
            "{function}: no CA bundle was packaged"
        );
    }
}

#[test]
fn every_function_verifies_against_the_packaged_ca_bundle_when_one_is_named() {
    let envs = function_environments(&[
        (DATABASE_SECRET.0, Value::from(DATABASE_SECRET.1)),
        ("database_ssl_mode", Value::from("verify-full")),
        ("database_ca_bundle_file", Value::from("global-bundle.pem")),
    ]);
    for (function, env) in &envs {
        assert_eq!(
            env.get("PGSSLMODE"),
            Some(&Value::from("verify-full")),
            "{function}"
        );
        assert_eq!(
            env.get("PGSSLROOTCERT"),
            Some(&Value::from("/var/task/global-bundle.pem")),
            "{function}: Lambda unpacks the zip (and the bundle at its root) into /var/task"
        );
    }
}

#[test]
fn an_empty_ca_bundle_file_name_means_no_bundle() {
    let envs = function_environments(&[
        (DATABASE_SECRET.0, Value::from(DATABASE_SECRET.1)),
        ("database_ca_bundle_file", Value::from("")),
    ]);
    for (function, env) in &envs {
        assert_eq!(env.get("PGSSLROOTCERT"), None, "{function}");
    }
}
