"""What every command line shares: the CLI convention (common.py) and SLURM array jobs (shard_jobs.py)."""
