"""Step `clean`: data-juicer mappers (and infuse's Chinese/Markdown-safe versions) on chunk text."""
from infuse.operators.clean.cleaner import Cleaner
from infuse.operators.clean.config import AUTO_GATES, CleanConfig, Gate, OpSpec

__all__ = ["AUTO_GATES", "CleanConfig", "Cleaner", "Gate", "OpSpec"]
