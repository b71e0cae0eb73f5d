"""Plain text: detected encoding recorded; the first line serves as title."""
from __future__ import annotations

from pathlib import PurePosixPath

from infuse.operators.parsers.document import ParsedDoc
from infuse.operators.parsers.textdecode import decode_text


def normalise_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


class TxtParser:
    format = "txt"
    extensions = (".txt", ".text")
    multi = False

    def parse(self, data: bytes, path: str) -> ParsedDoc:
        text, encoding = decode_text(data)
        text = normalise_newlines(text)
        first = next((line.strip() for line in text.split("\n") if line.strip()), "")
        return ParsedDoc(title=first[:120] or PurePosixPath(path).stem, text=text,
                         metadata={"encoding": encoding, "lines": text.count("\n") + 1})
