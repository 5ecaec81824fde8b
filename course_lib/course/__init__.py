"""The course itself: verification records and the environment summary, exercises, tables, prose, plots, the
benchmark, the course runner (`make course`), the JupyterLab launcher (`make lab`) and the resume demo run in a
fresh process. Names are imported on first use."""
from .._exports import lazy_exports, table

__all__, __getattr__, __dir__ = lazy_exports(__name__, table("""
    verification: start_chapter verification_checkpoint load_records environment_summary
    exercises: solved NotSolved
    tables: Table results_table
    prose: say cite SOURCED
    plots: data_wait_bars epoch_start_bars image_grid memory_bars memory_growth_plot plot_plan plot_records
    plots: regime_bars shuffle_buffer_plot plot_shuffle_frontier throughput_bars plot_worker_scaling
    resume_run: resumable_loader resume_in_fresh_process
    regime_tables: beside_reference feed_table regime_table transfer_beside clean_feed_rows
    reference_machine: reference_figures worker_scaling H100
    scaling_tables: scaling_table timing_table
    plots_ch07: warm_cold_bars
    plots_ch02: memory_stages
    regime_report: fast_enough goal_report
    plots_ch05: records_panels frontier_panels
    data_subset: first_shards
    plots_ch06b: runs_strip
"""))
