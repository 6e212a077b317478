"""Which tests are `slow` and which need Postgres (`db`): the tables behind the
`pytest_collection_modifyitems` hook in tests/conftest.py.

`pytest -m "not slow and not db"` is the fast subset (README, "Testing"). The slow list
was chosen from `pytest --durations=0` on the shared 2-core machine: whole directories
and files whose tests start a real `webpipe serve`, worker processes, an HTTP server or
wait on a time budget, and in otherwise fast files the test functions that took 0.1 s or
more. A test that uses Postgres is `db`, found by the session fixtures that start the
embedded server (every fixture that depends on them counts too) or listed below when it
reaches Postgres another way (a CLI run, a served app, a `.wp` suite). A new test file
that serves over HTTP or uses Postgres through its own fixture belongs in these tables.
"""

from __future__ import annotations

# node id prefixes (paths relative to the repository root)
SLOW_PATHS = (
    "tests/hostile/", "tests/jobs/", "tests/serve/", "tests/executor/", "tests/debugger/",
    "tests/tracing/", "tests/sqlcheck/test_sqlcheck.py",
    "tests/testing/test_pytest_plugin.py", "tests/testing/test_cli_test.py",
    "tests/test_check_color.py", "tests/test_import_cycles.py",
    "tests/test_cli.py", "tests/test_cli_project.py", "tests/test_redis_server.py",
    "tests/test_workers.py", "tests/test_packaging.py",
    "tests/test_migrate.py", "tests/lsp/test_protocol.py", "tests/lsp/test_command.py",
    "tests/graphql/test_remote.py", "tests/sandbox/test_pool.py", "tests/test_textmate_vscode.py",
    "tests/syntax/test_fuzz_stages.py", "tests/syntax/test_fuzz_regressions.py",
    "tests/middleware/test_pg.py", "tests/middleware/test_pg_parallel.py",
    "tests/middleware/test_auth.py",
    "tests/wp/tasks.wp::retry", "tests/wp/tasks.wp::failfast",
    "tests/middleware/test_fetch_fast_diff.py", "tests/jqfast/test_codegen_http.py",
)

# test functions (name without parameters) of otherwise fast files
SLOW_TESTS = frozenset({
    "test_what_the_encoder_cannot_write_takes_the_flat_path",
    "test_random_chunks_answer_like_lua", "test_random_numeric_chunks_answer_like_lua",
    "test_every_pair_of_operands",
    "test_inline_arithmetic_on_edge_numbers",
    "test_generated_code_renders_what_the_closures_render", "test_w8_shape",
    "test_generated_programs_agree", "test_arithmetic_on_computed_values_agrees",
    "test_arithmetic_on_edge_numbers_agrees", "test_long_c_calls_leave_the_loop",
    "test_no_handler_outlives_the_time_budget", "test_jq_in_tests_is_bounded",
    "test_a_looping_script_fails_every_run_within_the_budget",
    "test_init_makes_a_project_that_checks_and_tests_clean",
    "test_a_request_larger_than_the_inline_allowance_does_not_abort_the_process",
    "test_execute_sql_uses_the_apps_pool", "test_a_passing_test_still_passes_after_fmt",
    "test_cli_exit_status", "test_the_hook_stops_what_a_script_tries_to_outlive_it_with",
    "test_front_cache_leaves_stale_entries_to_the_pipeline", "test_per_request_timeout",
    "test_batches_are_capped", "test_budgets_give_timeout_and_limit_error_envelopes",
    "test_results_longer_than_one_crossing_come_back_whole", "test_fmt_properties",
    "test_concurrent_runs_are_independent", "test_execute_sql_failure_is_the_second_value",
    "test_the_benchmark_file_parses_the_same_with_its_comments",
    "test_the_default_cap_is_ten_mebibytes",
    "test_assistant_reference_is_generated_from_what_webpipe_runs",
    "test_example_matches_its_goldens", "test_init_writes_the_assistant_reference",
    "test_zero_timeout_and_ignored_timeouts", "test_stalled_body_is_a_read_failure",
    "test_mutated_files_parse_or_fail_the_same",
    "test_scripts_too_heavy_for_the_loop_load_in_workers",
    "test_execute_sql_params_must_be_a_table", "test_default_timeout",
    "test_execute_sql_returns_rows_and_converts_params", "test_execute_sql_needs_sql_text",
    "test_store_expiry", "test_schema_is_built_once_and_cached",
    "test_resolver_input_shape_and_raw_argument_types",
    "test_one_batch_per_level_with_keys_in_order",
    "test_connections_beyond_the_cap_are_refused_with_a_log_line",
    "test_execute_sql_through_a_computed_name_is_rerun_on_a_worker",
    "test_pcall_cannot_keep_an_over_budget_run_on_the_loop",
    "test_different_arguments_never_share_a_batch", "test_step_timeout_overrides_the_budget",
    "test_execute_sql_without_database", "test_the_cap_counts_decompressed_bytes",
    "test_chunk_over_the_budget_is_rerun_on_a_worker_and_stays_there",
    "test_no_python_object_is_reachable", "test_dsl_suite_mocks_and_call_assertions",
    "test_concurrent_fetches_are_not_serialised", "test_execute_sql_without_params",
    "test_init_defaults_to_the_current_directory",
    "test_runtime_error_is_a_js_error_envelope_with_the_wp_line",
    "test_no_return_gives_null_and_flags_carry_to_later_steps", "test_endpoint_path_rules",
    "test_tooling_runs_have_no_budget", "test_front_cache_answers_hits_like_the_pipeline",
    "test_executor_async_tasks",
    "test_nesting_is_bounded_and_everything_below_the_bound_renders",
    "test_init_refuses_to_overwrite_and_writes_nothing",
    "test_output_values_pass_through_unless_strict", "test_no_file_process_or_network_access",
    "test_parser_only_raises_its_own_errors",
    "test_save_publishes_sql_errors_and_feeds_hover_and_completion",
    "test_typing_is_answered_while_a_check_waits_for_the_database",
    "test_a_newer_save_cancels_the_check_in_flight",
})

# fixtures that start (or hand out) the session's embedded PostgreSQL
DB_FIXTURES = frozenset({"pg_url", "jobs_server_url", "db_url", "pg_host", "server_dir"})

# tests that reach Postgres without those fixtures
DB_PATHS = (
    "tests/jobs/", "tests/serve/test_test_database.py", "examples/todos/app.wp",
    "tests/sqlcheck/test_sqlcheck.py",
    "examples/jobs/app.wp",
)
DB_TESTS = frozenset({
    "test_db_init_auth_creates_tables_once", "test_the_first_embedded_postgres_start_is_announced",
    "test_only_source_edits_reload",
    "test_save_publishes_sql_errors_and_feeds_hover_and_completion",
})
