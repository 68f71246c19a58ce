//! `infrastructure/terraform` held against the workspace (part of `make infra-check` and
//! `make test`). `terraform validate` cannot run here (no provider registry), so these parse the
//! HCL and check what would otherwise only fail at deploy time.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::PathBuf;
use std::process::Command;

use hcl::eval::{Context, Evaluate};
use hcl::expr::{Expression, FuncCall};
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

/// The `input` of the schedule's universal target (the StartExecution request).
fn schedule_target_input(config: &Config) -> &Expression {
    let schedules = config.resources("aws_scheduler_schedule");
    let schedule = schedules
        .get("backfill")
        .expect("the module has aws_scheduler_schedule.backfill");
    nested_block(schedule, "target")
        .and_then(|target| attribute(target, "input"))
        .expect("the schedule's target has an input")
}

/// `expr` as a call of the function `name`.
fn call<'a>(expr: &'a Expression, name: &str) -> &'a FuncCall {
    match expr {
        Expression::FuncCall(call) if call.name.to_string() == name => call,
        other => panic!("expected a call of {name}(…), found {other:?}"),
    }
}

/// The object a `replace(replace(jsonencode({…}), …), …)` encodes, through locals.
fn encoded_object<'a>(config: &'a Config, expr: &'a Expression) -> &'a Expression {
    let mut expr = resolve_local(config, expr);
    while let Expression::FuncCall(c) = expr {
        if c.name.to_string() != "replace" {
            break;
        }
        expr = resolve_local(config, &c.args[0]);
    }
    resolve_local(config, &call(expr, "jsonencode").args[0])
}

#[test]
fn the_scheduled_execution_is_named_by_the_one_local_its_input_stores_as_execution_name() {
    let config = module();
    let request = encoded_object(&config, schedule_target_input(&config));
    let name = object_value(request, "Name").expect("StartExecution gets a Name");
    let name = traversal_path(name)
        .filter(|p| p.starts_with("local."))
        .unwrap_or_else(|| panic!("the execution Name must be a local, found {name:?}"));

    let input = object_value(request, "Input").expect("StartExecution gets an Input");
    let merge = call(encoded_object(&config, input), "merge");
    // The last argument wins: var.schedule_input (earlier) cannot replace it.
    let fixed = merge.args.last().expect("merge has arguments");
    let execution_name = object_value(fixed, "execution_name")
        .expect("the last merge argument of the execution input sets execution_name");
    assert_eq!(
        traversal_path(execution_name),
        Some(name.clone()),
        "the execution input's execution_name and the execution's Name must be the same local"
    );
}

const STATE_MACHINE_ARN: &str = "arn:aws:states:us-east-1:123456789012:stateMachine:price-backfill";

/// The StartExecution request Scheduler is given, as Terraform renders it for the module called
/// with `inputs`: the raw string and its parsed JSON.
fn rendered_schedule_request(inputs: &[(&str, Value)]) -> (String, serde_json::Value) {
    let config = module();
    let vars = config
        .input_values(inputs)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut ctx = terraform_context(&vars, &config.evaluated_locals(&vars));
    ctx.declare_var(
        "aws_sfn_state_machine",
        hcl::value!({ this = { arn = (STATE_MACHINE_ARN) } }),
    );
    let rendered = schedule_target_input(&config)
        .evaluate(&ctx)
        .unwrap_or_else(|e| panic!("cannot evaluate the schedule's target input: {e}"));
    let rendered = rendered
        .as_str()
        .expect("the target input is a string")
        .to_string();
    let json = serde_json::from_str(&rendered)
        .unwrap_or_else(|e| panic!("the target input is not JSON ({e}): {rendered}"));
    (rendered, json)
}

/// The execution input inside the request: the raw string and its parsed JSON.
fn execution_input(request: &serde_json::Value) -> (String, serde_json::Value) {
    let raw = request["Input"]
        .as_str()
        .expect("Input is a JSON string")
        .to_string();
    let json = serde_json::from_str(&raw)
        .unwrap_or_else(|e| panic!("the execution input is not JSON ({e}): {raw}"));
    (raw, json)
}

const SCHEDULED_NAME: &str = "scheduled-<aws.scheduler.execution-id>";

#[test]
fn jsonencode_is_modelled_as_terraform_writes_it() {
    // Terraform 1.11: echo 'jsonencode({…})' | terraform console
    let expr: Expression = r#"jsonencode({ b = "<x> & \"q\" \\ \n", a = [1.5, 7, true, null] })"#
        .parse()
        .unwrap();
    let encoded = expr
        .evaluate(&terraform_context(&Map::new(), &Map::new()))
        .unwrap();
    assert_eq!(
        encoded,
        Value::from(r#"{"a":[1.5,7,true,null],"b":"\u003cx\u003e \u0026 \"q\" \\ \n"}"#)
    );
}

#[test]
fn the_schedule_request_carries_the_scheduler_keyword_literally_on_both_levels() {
    let (raw, request) = rendered_schedule_request(&[]);
    assert!(
        !raw.contains("\\u003c") && !raw.contains("\\u003e"),
        "Scheduler must get <aws.scheduler.…> keywords literally, not JSON escapes: {raw}"
    );
    assert_eq!(request["Name"], SCHEDULED_NAME, "{raw}");
    assert_eq!(request["StateMachineArn"], STATE_MACHINE_ARN);

    let (input_raw, input) = execution_input(&request);
    assert!(
        input_raw.contains(&format!("\"execution_name\":\"{SCHEDULED_NAME}\"")),
        "the execution input must carry the keyword literally: {input_raw}"
    );
    assert_eq!(input["execution_name"], request["Name"]);
    assert_eq!(input["lookback_days"], 7);
}

#[test]
fn schedule_input_cannot_override_the_execution_name_or_the_window() {
    let (_, request) = rendered_schedule_request(&[
        ("schedule_lookback_days", Value::from(3)),
        (
            "schedule_input",
            hcl::value!({ execution_name = "mine", lookback_days = 99, top_n = 100 }),
        ),
    ]);
    let (_, input) = execution_input(&request);
    assert_eq!(input["execution_name"], SCHEDULED_NAME);
    assert_eq!(input["lookback_days"], 3);
    assert_eq!(input["top_n"], 100, "other fields pass through");
}

/// The text between the fences of the first ``` block of a README `### <heading>` section.
fn readme_code_block(heading: &str) -> String {
    let readme = fs::read_to_string(repo_root().join("README.md")).unwrap();
    let section = readme
        .split_once(&format!("\n### {heading}\n"))
        .map(|(_, rest)| rest.split("\n### ").next().unwrap_or(rest))
        .unwrap_or_else(|| panic!("README.md has no ### {heading} section"));
    let mut fences = section.split("\n```");
    fences.next();
    let block = fences
        .next()
        .unwrap_or_else(|| panic!("README ### {heading} has no code block"));
    block
        .split_once('\n')
        .map_or("", |(_, body)| body)
        .to_string()
}

#[test]
fn the_readme_shows_the_notification_line_the_rule_sends() {
    let config = module();
    let targets = config.resources("aws_cloudwatch_event_target");
    let transformer = targets
        .get("execution_status")
        .and_then(|t| nested_block(t, "input_transformer"))
        .expect("aws_cloudwatch_event_target.execution_status has an input_transformer");
    let Some(Expression::String(template)) = attribute(transformer, "input_template") else {
        panic!("input_template must be a literal string");
    };
    // A JSON string: SNS gets the line without the quotes.
    let template: String = serde_json::from_str(template)
        .unwrap_or_else(|e| panic!("input_template must be one JSON string ({e}): {template}"));
    let paths = attribute(transformer, "input_paths").expect("input_paths");
    let placeholders = object_keys(paths).expect("input_paths is an object");
    for placeholder in &placeholders {
        assert!(
            template.contains(&format!("<{placeholder}>")),
            "the message leaves out <{placeholder}>"
        );
    }

    // The README's example, its <placeholders> filled the way the README shows them.
    let example = readme_code_block("Notifications");
    let example = example.trim_end();
    assert!(!example.contains('\n'), "the message is one line");
    let status = "FAILED";
    let name = example
        .strip_prefix("price-backfill: execution ")
        .and_then(|rest| rest.split_once(&format!(" ended {status}.")))
        .map(|(name, _)| name)
        .unwrap_or_else(|| {
            panic!("README example: not `…execution <name> ended {status}…`: {example}")
        });
    let arn = example
        .rsplit_once("Execution ARN: ")
        .map(|(_, arn)| arn)
        .expect("the README example ends with the execution ARN");
    let rendered = template
        .replace("<name>", name)
        .replace("<status>", status)
        .replace("<execution>", arn);
    assert_eq!(
        example, rendered,
        "README ### Notifications shows another line than input_template sends"
    );
}
