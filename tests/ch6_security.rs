//! Chapter 6's claims (docs/ch6-security.md#claims--tests): chapter 5's
//! lifecycle, re-proved against the ch6 binary, and what chapter 6 adds:
//! what a container's root still holds, and what it no longer may do. The
//! escapes themselves, against ch5 and ch6, are in tests/escape_lab.rs.

mod lifecycle;
mod support;

use support::Chapter;

const CH6: Chapter = Chapter {
    bin: env!("CARGO_BIN_EXE_ch6-security"),
    name: "ch6-security",
};

chapter_tests! {
    lifecycle for CH6;
    claim_end_to_end: fn run_exec_commit_stop_rm_and_run_the_new_image(),
        fn rootless_run_exec_commit_stop_rm_and_run_the_new_image();
    claim_ps_and_logs: fn ps_shows_status_and_exit_codes_and_logs_show_output(),
        fn rootless_ps_shows_status_and_exit_codes_and_logs_show_output();
    fn stop_kills_a_pid_1_that_ignores_sigterm();
    fn a_reused_pid_is_never_signalled();
    claim_bad_names: fn bad_names_are_refused_and_nothing_is_created(),
        fn rootless_bad_names_are_refused_and_nothing_is_created();
    fn twenty_parallel_runs_with_one_name_make_one_container();
    fn commit_stores_symlinks_and_never_follows_them();
    claim_exec: fn exec_errors_are_clear_and_its_exit_code_propagates(),
        fn rootless_exec_errors_are_clear_and_its_exit_code_propagates();
    fn rm_refuses_running_and_cleans_half_created();
    fn a_killed_monitor_takes_its_container_down();
    fn a_detached_container_holds_only_dev_null_and_its_log();
    fn a_container_that_cannot_start_leaves_nothing_behind();
    fn run_d_rm_removes_the_container_when_it_ends();
    fn without_a_name_run_generates_one();
    fn exec_runs_inside_the_containers_pid_namespace();
    fn without_a_terminal_dash_i_t_make_no_pty();
    fn commit_keeps_hard_links_skips_devices_and_deleted_files();
    fn rm_waits_for_the_containers_lock();
    fn a_foreground_run_keeps_its_record_until_rm();
    fn stop_ends_top_at_once_with_143();
}
