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
    function_of_placeholder, function_of_task_timeout, label, module_dir, nested_block,
    object_keys, object_value, repo_root, template_variables, terraform_context, traversal_path,
    Config,
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

/// The placeholders of the ASL that are not function ARNs, and the local Terraform fills each with.
const VALUE_PLACEHOLDERS: [(&str, &str); 4] = [
    (
        "select_tickers_task_timeout_seconds",
        "local.task_timeout_seconds[select-tickers]",
    ),
    (
        "fetch_batch_task_timeout_seconds",
        "local.task_timeout_seconds[fetch-batch]",
    ),
    (
        "finalize_run_task_timeout_seconds",
        "local.task_timeout_seconds[finalize-run]",
    ),
    (
        "transient_retry_max_attempts",
        "local.transient_retry_max_attempts",
    ),
];

#[test]
fn every_asl_placeholder_is_filled_by_templatefile_with_what_it_names() {
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
    let folders = function_folders();
    for placeholder in &placeholders {
        let value = object_value(vars_arg, placeholder).unwrap();
        let expected = if let Some(function) = function_of_placeholder(placeholder) {
            let (_, address) = addresses
                .iter()
                .find(|(f, _)| *f == function)
                .unwrap_or_else(|| {
                    panic!("{placeholder}: no aws_lambda_function deploys {function}")
                });
            format!("{address}.arn")
        } else {
            if let Some(function) = function_of_task_timeout(placeholder) {
                assert!(
                    folders.contains(&function),
                    "{placeholder}: there is no function {function}"
                );
            }
            VALUE_PLACEHOLDERS
                .iter()
                .find(|(name, _)| name == placeholder)
                .map(|(_, local)| local.to_string())
                .unwrap_or_else(|| {
                    panic!("placeholder {placeholder} is neither <function>_function_arn nor one of {VALUE_PLACEHOLDERS:?}")
                })
        };
        assert_eq!(
            traversal_path(value).as_deref(),
            Some(expected.as_str()),
            "{placeholder} must be {expected}"
        );
    }
}

/// The ARN `scripts/render-asl` uses for a function (its defaults: us-east-1, moto's account).
fn local_arn(function: &str) -> String {
    format!("arn:aws:lambda:us-east-1:123456789012:function:{function}")
}

/// The definition as Terraform's templatefile renders it for the module called with `inputs`
/// (the function ARNs as `scripts/render-asl` writes them, since they need a real deployment).
fn terraform_definition(inputs: &[(&str, Value)]) -> String {
    let config = module();
    let (_, vars_arg) = templatefile_args(&config);
    let vars = config
        .input_values(inputs)
        .unwrap_or_else(|e| panic!("{e}"));
    let terraform = terraform_context(&vars, &config.evaluated_locals(&vars));
    let mut ctx = Context::new();
    for name in object_keys(vars_arg).unwrap() {
        let value = match function_of_placeholder(&name) {
            Some(function) => Value::from(local_arn(&function)),
            None => object_value(vars_arg, &name)
                .unwrap()
                .evaluate(&terraform)
                .unwrap_or_else(|e| panic!("templatefile's {name}: cannot evaluate it: {e}")),
        };
        ctx.declare_var(name.as_str(), value);
    }
    // What templatefile does: evaluate the file as an HCL template with those variables.
    asl_template()
        .unwrap()
        .evaluate(&ctx)
        .unwrap_or_else(|e| panic!("templatefile would fail on the ASL: {e}"))
}

/// `scripts/render-asl` with `env` (and none of the caller's ASL_* settings).
fn render_asl(out: &std::path::Path, env: &[(&str, &str)]) -> serde_json::Value {
    let mut command = Command::new(repo_root().join("scripts/render-asl"));
    command.arg(out);
    for (key, _) in std::env::vars() {
        if key.starts_with("ASL_") {
            command.env_remove(key);
        }
    }
    let status = command
        .envs(env.iter().copied())
        .status()
        .expect("scripts/render-asl runs");
    assert!(status.success(), "scripts/render-asl failed");
    serde_json::from_str(&fs::read_to_string(out).unwrap()).unwrap()
}

#[test]
fn the_definition_terraform_renders_passes_statelint_and_matches_the_local_render() {
    let rendered = terraform_definition(&[(DATABASE_SECRET.0, Value::from(DATABASE_SECRET.1))]);
    let definition: serde_json::Value =
        serde_json::from_str(&rendered).expect("the rendered definition is JSON");

    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let terraform_render = out_dir.join("backfill.asl.terraform.json");
    fs::write(&terraform_render, &rendered).unwrap();

    // The local stack and `make lint` use scripts/render-asl: it must give the same definition.
    let local = render_asl(&out_dir.join("backfill.asl.render-asl.json"), &[]);
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
fn render_asl_takes_the_timeouts_and_the_retry_budget_as_terraform_does() {
    let rendered = terraform_definition(&[
        (DATABASE_SECRET.0, Value::from(DATABASE_SECRET.1)),
        ("select_tickers_timeout_seconds", Value::from(30)),
        ("fetch_batch_timeout_seconds", Value::from(300)),
        ("finalize_run_timeout_seconds", Value::from(45)),
        ("transient_fault_retry_budget_seconds", Value::from(90)),
    ]);
    let definition: serde_json::Value = serde_json::from_str(&rendered).unwrap();
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("backfill.asl.render-asl-env.json");
    let local = render_asl(
        &out,
        &[
            ("ASL_SELECT_TICKERS_TIMEOUT_SECONDS", "30"),
            ("ASL_FETCH_BATCH_TIMEOUT_SECONDS", "300"),
            ("ASL_FINALIZE_RUN_TIMEOUT_SECONDS", "45"),
            ("ASL_RETRY_BUDGET_SECONDS", "90"),
        ],
    );
    assert_eq!(definition, local);
    let fetch = &task_states(&definition)["FetchBatch"];
    assert_eq!(fetch["TimeoutSeconds"], 360, "{fetch}");
}

/// Every Task state of a definition, nested ones included, by name.
fn task_states(definition: &serde_json::Value) -> BTreeMap<String, serde_json::Value> {
    fn walk(states: &serde_json::Value, out: &mut BTreeMap<String, serde_json::Value>) {
        for (name, state) in states.as_object().into_iter().flatten() {
            if state["Type"] == "Task" {
                out.insert(name.clone(), state.clone());
            }
            for processor in ["ItemProcessor", "Iterator"] {
                walk(&state[processor]["States"], out);
            }
            for branch in state["Branches"].as_array().into_iter().flatten() {
                walk(&branch["States"], out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(&definition["States"], &mut out);
    out
}

/// The error names a Task's retriers match, each with the retrier's MaxAttempts.
fn retried(task: &serde_json::Value) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for retrier in task["Retry"].as_array().into_iter().flatten() {
        for name in retrier["ErrorEquals"].as_array().into_iter().flatten() {
            out.entry(name.as_str().unwrap().to_string())
                .or_insert(retrier["MaxAttempts"].as_u64().unwrap_or(3));
        }
    }
    out
}

#[test]
fn every_task_times_out_after_its_function_and_retries_dead_functions_but_never_refusals() {
    let definition: serde_json::Value = serde_json::from_str(&terraform_definition(&[(
        DATABASE_SECRET.0,
        Value::from(DATABASE_SECRET.1),
    )]))
    .unwrap();
    let tasks = task_states(&definition);
    let timeouts = [
        ("SelectTickers", 60 + 60),
        ("FetchBatch", 900 + 60),
        ("FinalizeRun", 60 + 60),
    ];
    assert_eq!(
        tasks.keys().collect::<Vec<_>>(),
        ["FetchBatch", "FinalizeRun", "SelectTickers"]
    );
    for (name, timeout) in timeouts {
        let task = &tasks[name];
        assert_eq!(
            task["TimeoutSeconds"], timeout,
            "{name}: the function's timeout (module default) plus 60 s"
        );
        assert!(
            task.get("HeartbeatSeconds").is_none() && task.get("HeartbeatSecondsPath").is_none(),
            "{name}: a synchronous lambda:invoke sends no heartbeats"
        );
        let retried = retried(task);
        for dead in [
            "States.Timeout",
            "Sandbox.Timedout",
            "Lambda.Unknown",
            "Runtime.ExitError",
            "Lambda.ServiceException",
            "Lambda.TooManyRequestsException",
            "DatabaseUnavailable",
        ] {
            assert!(
                retried.get(dead).is_some_and(|&attempts| attempts > 0),
                "{name} does not retry {dead}: {retried:?}"
            );
        }
        for refused in [
            "DatabaseRejected",
            "InvalidInput",
            "RunNotFound",
            "ProviderRejected",
            "ConfigurationError",
            "States.ALL",
            "States.TaskFailed",
        ] {
            assert!(
                !retried.contains_key(refused),
                "{name} retries {refused}, which is never retried"
            );
        }
        // The long budget is the module's: 1800 s on average is 64 attempts.
        assert_eq!(retried["DatabaseUnavailable"], 64, "{name}");
    }
    assert_eq!(retried(&tasks["FetchBatch"])["ProviderUnavailable"], 64);
}

/// Mean total wait of `attempts` retries with IntervalSeconds 2, BackoffRate 2,
/// MaxDelaySeconds 60 and full jitter (each wait uniform between 0 and its delay).
fn mean_wait(attempts: u64) -> f64 {
    (1..=attempts)
        .map(|k| 2f64.powi(k as i32).min(60.0) / 2.0)
        .sum()
}

#[test]
fn the_retry_budget_becomes_the_fewest_attempts_whose_waits_average_the_budget() {
    let config = module();
    for budget in [0u64, 1, 2, 3, 7, 30, 31, 32, 60, 61, 300, 1800, 3600] {
        let vars = config
            .input_values(&[
                (DATABASE_SECRET.0, Value::from(DATABASE_SECRET.1)),
                ("transient_fault_retry_budget_seconds", Value::from(budget)),
            ])
            .unwrap();
        let locals = config.evaluated_locals(&vars);
        let attempts = locals
            .get("transient_retry_max_attempts")
            .and_then(|v| v.as_u64())
            .unwrap_or_else(|| panic!("budget {budget}: no whole transient_retry_max_attempts"));
        assert!(
            mean_wait(attempts) >= budget as f64,
            "budget {budget}: {attempts} attempts wait {} s on average",
            mean_wait(attempts)
        );
        if attempts > 0 {
            assert!(
                mean_wait(attempts - 1) < budget as f64,
                "budget {budget}: {attempts} attempts are more than needed"
            );
        }
        // scripts/render-asl computes the same count.
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("backfill.asl.budget-{budget}.json"));
        let local = render_asl(&out, &[("ASL_RETRY_BUDGET_SECONDS", &budget.to_string())]);
        assert_eq!(
            retried(&task_states(&local)["FinalizeRun"])["DatabaseUnavailable"],
            attempts,
            "budget {budget}: scripts/render-asl disagrees"
        );
    }
}

#[test]
fn a_run_that_needs_a_person_fails_the_execution_which_the_rule_and_the_alarm_report() {
    let definition: serde_json::Value = serde_json::from_str(&terraform_definition(&[(
        DATABASE_SECRET.0,
        Value::from(DATABASE_SECRET.1),
    )]))
    .unwrap();
    let states = &definition["States"];
    let choice = &states["DidTheRunDoItsJob"];
    let target = |status: &str| -> String {
        choice["Choices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|rule| rule["Variable"] == "$.status" && rule["StringEquals"] == status)
            .map_or(&choice["Default"], |rule| &rule["Next"])
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(states[target("succeeded")]["Type"], "Succeed");
    for (status, error) in [
        ("completed_with_failures", "RunCompletedWithFailures"),
        ("incomplete", "RunIncomplete"),
        ("anything else", "RunIncomplete"),
    ] {
        let end = &states[target(status)];
        assert_eq!(end["Type"], "Fail", "{status}");
        assert_eq!(end["Error"], error, "{status}");
        let cause = end["CausePath"].as_str().unwrap_or_default();
        assert!(
            cause.contains("$.run_id") && cause.contains("backfill "),
            "{status}: the cause names the run and a command: {cause}"
        );
    }

    // FAILED executions reach the topic by the rule and the alarm, whatever notify_on_success.
    let config = module();
    for notify_on_success in [false, true] {
        let vars = config
            .input_values(&[
                (DATABASE_SECRET.0, Value::from(DATABASE_SECRET.1)),
                ("notify_on_success", Value::from(notify_on_success)),
            ])
            .unwrap();
        let statuses = config
            .evaluated_locals(&vars)
            .get("notify_statuses")
            .cloned()
            .expect("local.notify_statuses");
        assert!(
            statuses
                .as_array()
                .unwrap()
                .contains(&Value::from("FAILED")),
            "{statuses:?}"
        );
    }
    let alarms = config.resources("aws_cloudwatch_metric_alarm");
    let alarm = alarms
        .get("executions_failed")
        .expect("the ExecutionsFailed alarm");
    assert_eq!(
        attribute(alarm, "metric_name"),
        Some(&Expression::String("ExecutionsFailed".into()))
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

/// The deployment guide, `infrastructure/README.md`.
const GUIDE: &str = "infrastructure/README.md";

/// The text of the guide's `## <heading>` section, up to the next `## ` heading.
fn guide_section(heading: &str) -> String {
    let guide = fs::read_to_string(repo_root().join(GUIDE)).unwrap();
    guide
        .split_once(&format!("\n## {heading}\n"))
        .map(|(_, rest)| rest.split("\n## ").next().unwrap_or(rest).to_string())
        .unwrap_or_else(|| panic!("{GUIDE} has no ## {heading} section"))
}

#[test]
fn every_module_variable_is_described_and_in_the_readme_variables_table() {
    let variables = guide_section("Variables");
    for (name, block) in module().variables() {
        let description = attribute(block, "description");
        assert!(
            matches!(description, Some(Expression::String(s)) if !s.is_empty()),
            "variable {name} has no description"
        );
        assert!(
            variables.contains(&format!("| `{name}` |")),
            "{GUIDE} ## Variables: the variables table lacks `{name}`"
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

/// The ``` blocks of the guide's `## <heading>` section, in order: (info string, text between
/// the fences).
fn guide_code_blocks(heading: &str) -> Vec<(String, String)> {
    let section = guide_section(heading);
    let blocks: Vec<(String, String)> = section
        .split("\n```")
        .skip(1)
        .step_by(2)
        .map(|block| {
            let (info, body) = block.split_once('\n').unwrap_or((block, ""));
            (info.trim().to_string(), body.to_string())
        })
        .collect();
    assert!(!blocks.is_empty(), "{GUIDE} ## {heading} has no code block");
    blocks
}

/// The text between the fences of the first ``` block of the guide's `## <heading>` section.
fn readme_code_block(heading: &str) -> String {
    guide_code_blocks(heading).swap_remove(0).1
}

#[test]
fn the_readme_tfvars_example_parses_and_sets_only_variables_of_the_example_root() {
    let example = example();
    let example_vars = example.variables();
    let (_, tfvars) = guide_code_blocks("Database TLS")
        .into_iter()
        .find(|(info, _)| info == "hcl")
        .unwrap_or_else(|| panic!("{GUIDE} ## Database TLS has no ```hcl block"));
    let body = hcl::parse(&tfvars).unwrap_or_else(|e| {
        panic!("{GUIDE} ## Database TLS: the tfvars block does not parse: {e}")
    });
    assert!(
        body.blocks().next().is_none(),
        "a tfvars file holds attributes only"
    );
    let keys: Vec<String> = body.attributes().map(|a| a.key().to_string()).collect();
    assert!(!keys.is_empty(), "the tfvars block sets nothing");
    for key in keys {
        assert!(
            example_vars.contains_key(&key),
            "{GUIDE} ## Database TLS sets {key}, which the example root does not declare"
        );
    }
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

    // The guide's example, its <placeholders> filled the way the guide shows them.
    let example = readme_code_block("Notifications");
    let example = example.trim_end();
    assert!(!example.contains('\n'), "the message is one line");
    let status = "FAILED";
    let name = example
        .strip_prefix("price-backfill: execution ")
        .and_then(|rest| rest.split_once(&format!(" ended {status}.")))
        .map(|(name, _)| name)
        .unwrap_or_else(|| {
            panic!("{GUIDE} example: not `…execution <name> ended {status}…`: {example}")
        });
    let arn = example
        .rsplit_once("Execution ARN: ")
        .map(|(_, arn)| arn)
        .expect("the guide's example ends with the execution ARN");
    let rendered = template
        .replace("<name>", name)
        .replace("<status>", status)
        .replace("<execution>", arn);
    assert_eq!(
        example, rendered,
        "{GUIDE} ## Notifications shows another line than input_template sends"
    );
}
