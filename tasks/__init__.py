"""Thin Prefect tasks: read input artifacts, call operators, write outputs, report stats."""
