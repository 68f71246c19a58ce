# price-backfill developer entry points. `make` (or `make help`) lists them.
#
# Tools: the Rust toolchain is assumed; everything else comes from scripts/ensure-tools
# (.venv/ with cargo-lambda and moto, the PostgreSQL server binaries, shellcheck, node_modules/).

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

# The project's Python tools (cargo-lambda, moto_server) come first on PATH.
export PATH := $(CURDIR)/.venv/bin:$(PATH)

# Where `make db-up` keeps its throwaway cluster's state (the env file, the cluster's location).
PG_STATE := .local/pg
# lambda-build architecture: x86_64 (default) or arm64.
ARCH ?= x86_64
# cargo lambda watch's address.
WATCH_ADDRESS ?= 127.0.0.1
WATCH_PORT ?= 9000

# The packages that are Lambda functions (lambda-build packages only these).
FUNCTIONS := select-tickers fetch-batch finalize-run

SMOKE := tests/smoke/lambda-smoke.sh
# The state machine as deployment renders it (ARN placeholders filled in): what statelint checks.
ASL_RENDERED := target/asl/backfill.asl.json
# Where `make local-up` keeps the stack's env file, pids and logs.
LOCAL_STACK := .local/stack
# Shell scripts that `make lint` runs shellcheck on (add tests/smoke/*.sh once it is clean).
SHELL_SCRIPTS := scripts/ensure-tools scripts/pg-up scripts/pg-down scripts/lib.sh .ci/run tests/smoke/lambda-smoke.sh \
	scripts/render-asl scripts/local-up scripts/local-down scripts/backfill-local scripts/demo/run \
	scripts/package scripts/checkov scripts/deploy scripts/backfill-aws scripts/logs

.PHONY: help tools lint test migrate-up watch lambda-build db-up db-down clean-local local-up local-down \
	demo test-historical-backfill test-historical-backfill-custom collect-historical-backfill-resume \
	infra-check package deploy sfn-run-historical-backfill sfn-run-historical-backfill-test \
	sfn-run-historical-backfill-resume logs-historical-backfill bench

help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*## "}; {printf "  make %-14s %s\n", $$1, $$2}'
	@echo "  (ARCH=arm64 for lambda-build; DATABASE_URL for migrate-up and watch)"

tools: ## Install what is missing: .venv (cargo-lambda, moto), PostgreSQL server, shellcheck
	scripts/ensure-tools

lint: tools ## rustfmt check, clippy with warnings denied, rustdoc of shared, shellcheck, statelint on the state machine
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	# The contracts are documented in shared's rustdoc: broken links fail here.
	RUSTDOCFLAGS="-D warnings" cargo doc -p shared --no-deps
	shellcheck -x $(SHELL_SCRIPTS)
	scripts/render-asl $(ASL_RENDERED)
	node_modules/.bin/statelint $(ASL_RENDERED)

# Tests start their own throwaway PostgreSQL (or use TEST_DATABASE_URL / DATABASE_URL).
test: tools lint infra-check ## lint, infra-check, then every unit and integration test, then the Lambda smoke test
	# infrastructure-tests already ran in infra-check: each test runs once.
	cargo test --workspace --exclude infrastructure-tests
	if [ -x $(SMOKE) ]; then $(SMOKE); else echo "skipping the smoke test: no $(SMOKE)"; fi

# Not part of `make test`; about 5 minutes after the build (at most 15). Release builds; market-sim,
# PostgreSQL, the fetch-batch binary (cold start, RSS) and `backfill plan` (the estimate) run as
# separate processes. The bench runs straight from the shell, not through `cargo run` (exec would
# carry cargo's memory into its ru_maxrss). One line per figure with its ratio and goal, also in
# target/bench/figures.txt and figures.json (memory details: memory.json). Exits 1 when a goal is missed.
bench: ## Benchmarks (release): memory, throughput at a rate limit, upsert vs COPY, cold start, $/run; target/bench/figures.txt
	scripts/ensure-tools postgres
	cargo build --release -p market-sim -p fetch-batch -p statemachine -p bench
	$${CARGO_TARGET_DIR:-target}/release/bench

migrate-up: ## Apply the migrations to DATABASE_URL (idempotent)
	@[ -n "$${DATABASE_URL:-}" ] || { echo "DATABASE_URL is not set (make db-up prints one)" >&2; exit 1; }
	cargo run -q -p statemachine --bin backfill -- migrate

watch: tools ## Serve every function with cargo lambda watch on 127.0.0.1:9000 (env passed through)
	cargo lambda watch --invoke-address $(WATCH_ADDRESS) --invoke-port $(WATCH_PORT)

# Stale bootstraps of another architecture stay in target/lambda: start clean.
lambda-build: tools ## Release build of the functions into target/lambda/<name>/bootstrap (ARCH=x86_64|arm64)
	rm -rf target/lambda
ifeq ($(ARCH),x86_64)
	cargo lambda build --release --compiler cargo $(addprefix -p ,$(FUNCTIONS))
else ifeq ($(ARCH),arm64)
	cargo lambda build --release --arm64 $(addprefix -p ,$(FUNCTIONS))
else
	$(error ARCH must be x86_64 or arm64, not $(ARCH))
endif

db-up: ## Start a throwaway PostgreSQL (state in .local/pg) and print its DATABASE_URL
	@scripts/pg-up $(PG_STATE)
	@echo "# then: source $(PG_STATE)/env" >&2

db-down: ## Stop the throwaway PostgreSQL and remove it
	scripts/pg-down $(PG_STATE)

# Knobs: LOCAL_STACK_MARKET_SIM_ARGS="--rate-limit 3 --window-seconds 5 --retry-after 2",
# LOCAL_STACK_FUNCTION_ENV="FETCH_BUDGET_SECONDS=5,…" (see scripts/local-up).
local-up: tools ## Start the local stack detached (moto, Lambda host, PostgreSQL, market-sim); env in .local/stack/env
	scripts/local-up $(LOCAL_STACK)
	@echo "# then: source $(LOCAL_STACK)/env" >&2

local-down: ## Stop the local stack and its PostgreSQL; nothing is left running
	scripts/local-down $(LOCAL_STACK)

# The main job end to end on the embedded default: no AWS account, no price API.
demo: ## Run the original's test mode on the local stack with market-sim rate limiting it, then tear down
	scripts/demo/run

# The original job's targets, against DATABASE_URL and the real provider (through the local stack).
test-historical-backfill: ## Top 5 most-mentioned tickers of the last 7 days, hourly, last 7 days (DATABASE_URL, real provider)
	scripts/backfill-local start --top-n 5 --mentions-within-days 7 --lookback-days 7 --interval 1h --wait

test-historical-backfill-custom: ## TOP_N= START= END= : top N tickers over START..END (DATABASE_URL, real provider)
	@[ -n "$(TOP_N)" ] && [ -n "$(START)" ] && [ -n "$(END)" ] || { echo "usage: make $@ TOP_N=10 START=2025-10-01 END=2025-11-30" >&2; exit 2; }
	scripts/backfill-local start --top-n $(TOP_N) --start-date $(START) --end-date $(END) --interval 1h --wait

collect-historical-backfill-resume: ## RUN_ID= : resume a run with its stored parameters (DATABASE_URL, real provider)
	@[ -n "$(RUN_ID)" ] || { echo "usage: make $@ RUN_ID=backfill-YYYYMMDD-HHMMSS-xxxxxxxx" >&2; exit 2; }
	scripts/backfill-local resume $(RUN_ID) --wait

clean-local: local-down db-down ## local-down and db-down, then remove .venv, .venv-checkov, node_modules, .local and target/lambda
	rm -rf .venv .venv-checkov node_modules .local target/lambda

# ---------------------------------------------------------------------------------------------
# AWS: infrastructure/terraform (a module, and the example root that `make deploy` applies and the
# AWS targets read their Terraform outputs from).

# Offline checks of infrastructure/ (no AWS account, no provider registry): formatting, checkov with
# zero failed checks (skips listed with reasons in infrastructure/.checkov.yaml), and the Rust tests
# in infrastructure/tests (the HCL parses; every function has its aws_lambda_function; every ASL
# placeholder is filled by templatefile; the definition Terraform renders passes statelint).
infra-check: tools ## terraform fmt, checkov (zero failures), Terraform vs workspace tests (HCL, ASL render + statelint)
	@command -v terraform >/dev/null 2>&1 || { echo "terraform is not installed: make infra-check needs it for terraform fmt" >&2; exit 1; }
	TF_CLI_CONFIG_FILE=/dev/null terraform fmt -check -recursive -diff infrastructure/terraform
	scripts/checkov
	cargo test -p infrastructure-tests

package: tools ## Release zips for Lambda: target/lambda/<fn>/bootstrap.zip, arm64 (x86_64 fallback; PACKAGE_ARCH=x86_64); DATABASE_CA_BUNDLE=<pem> adds a CA bundle
	scripts/package $(PACKAGE_ARCH)

deploy: ## terraform apply of infrastructure/terraform/example with the zips (terraform.tfvars there; ARGS=-auto-approve)
	scripts/deploy $(ARGS)

# The original's ECS targets, on AWS through the backfill CLI (STATE_MACHINE_ARN from `terraform output`).
# ARGS= adds backfill flags, e.g. ARGS="--start-date 2025-10-01 --end-date 2025-11-30 --max-concurrency 8".
sfn-run-historical-backfill: ## On AWS: the full run (>= 10 article mentions, BACKFILL_START_DATE..today, hourly), followed
	scripts/backfill-aws start --min-articles 10 --interval 1h --wait $(ARGS)

sfn-run-historical-backfill-test: ## On AWS: top 5 most-mentioned tickers of the last 7 days, hourly, last 7 days
	scripts/backfill-aws start --top-n 5 --mentions-within-days 7 --lookback-days 7 --interval 1h --wait $(ARGS)

sfn-run-historical-backfill-resume: ## On AWS: RUN_ID= : resume a run with its stored parameters, followed
	@[ -n "$(RUN_ID)" ] || { echo "usage: make $@ RUN_ID=backfill-YYYYMMDD-HHMMSS-xxxxxxxx" >&2; exit 2; }
	scripts/backfill-aws resume $(RUN_ID) --wait $(ARGS)

logs-historical-backfill: ## On AWS: follow the state machine's and functions' logs (RUN_ID= filters, SINCE=10m)
	scripts/logs $(RUN_ID)
