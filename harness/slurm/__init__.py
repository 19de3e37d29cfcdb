"""Slurm: submitting a grid as sbatch jobs, and reading the scheduler's view of them.

``directives`` turns the generic resource flags into ``#SBATCH`` lines (the one place that
knows Slurm's option names), ``scripts`` renders the job scripts from ``templates/``,
``scheduler`` is every call to a Slurm command (sbatch, squeue, sacct, scancel; squeue
throttled), ``jobs`` is the record of submitted jobs (``OutputFolder.jobs_file``),
``submit`` and ``status`` are what ``harness submit`` and ``harness status`` do.
"""
