"""infuse operators: the work itself, as plain Python. Never import Prefect here."""
