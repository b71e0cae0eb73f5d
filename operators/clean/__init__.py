"""Step `clean`: data-juicer mappers (and infuse's Chinese/Markdown-safe versions) on chunk text."""
from operators.clean.cleaner import Cleaner
from operators.clean.config import AUTO_GATES, CleanConfig, Gate, OpSpec
from operators.clean.lang import detect_lang

__all__ = ["AUTO_GATES", "CleanConfig", "Cleaner", "Gate", "OpSpec", "detect_lang"]
