"""The step framework: the Step contract, its cache key, memo, shards, progress, report and the Prefect task.

tasks/ holds one file per step; everything steps share lives here."""
