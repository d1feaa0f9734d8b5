"""Ray, started once for cogcore's Ray Data jobs (curation, train.cpt's rows, index embedding).

    start_ray(address=None, workers=2)   # a local instance of 2 CPUs, or join `address`'s cluster

Results keep their input order (every caller commits shards in order) and Ray's own progress bars
and dashboard stay off: the stage draws its own bar.
"""

from __future__ import annotations


def start_ray(address: str | None, workers: int | None) -> None:
    """Join the cluster at `address`, or start a local instance of `workers` CPUs (None: all),
    unless Ray already runs in this process; then set Ray Data's context as cogcore needs it."""
    import ray

    if not ray.is_initialized():
        ray.init(
            address=address,
            num_cpus=None if address else (workers or None),
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = False
