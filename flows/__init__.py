"""infuse flows: the recipe schema, the Prefect pipeline and the CLI."""
