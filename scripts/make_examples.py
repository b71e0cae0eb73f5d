"""Write the binary and non-UTF-8 files of examples/ (the demo corpus about the fictional LotusDB).

Run: .venv/bin/python scripts/make_examples.py [--out examples]

Hand-written text files (Markdown, HTML, JSON, CSV, code, log) live in
examples/ directly; this script makes the ones that need a library or a special
encoding: the bilingual PDF (with an outline), its encrypted and truncated
copies, the DOCX, the PPTX, the GBK text file, and the reject samples (empty, binary under .txt,
unsupported .rtf). Output is
byte-for-byte deterministic: zip timestamps and PDF ids are fixed.

No CJK TrueType font is installed here, so the PDF is written by hand and uses
the standard non-embedded Adobe-GB1 font STSong-Light with the UniGB-UCS2-H
encoding for Chinese (a conforming viewer substitutes a Song face; text
extraction reads the UCS-2 codes directly) and Helvetica for Latin text.
"""
from __future__ import annotations

import argparse
import io
import re
import zipfile
from datetime import datetime
from pathlib import Path

from fpdf.fonts import CORE_FONTS_CHARWIDTHS
from pypdf import PdfReader, PdfWriter
from pypdf.generic import ArrayObject, ByteStringObject

FIXED_ID = ByteStringObject(bytes.fromhex("6c6f747573646222696e667573652121"))
FIXED_TIME = datetime(2024, 9, 12, 9, 0, 0)
HELVETICA = CORE_FONTS_CHARWIDTHS["helvetica"]

# ---------------------------------------------------------------- PDF (bilingual)
# Each page: list of (kind, text); kind is "h1", "h2" or "p".
PDF_PAGES: list[list[tuple[str, str]]] = [
    [
        ("title", "LotusDB 安装指南 Installation Guide"),
        ("p", "Version 2.3 / 版本 2.3, Lotus Data Systems Ltd. 莲花数据系统有限公司"),
        ("h1", "1 概述 Overview"),
        ("p", "LotusDB（莲花数据库）是一款嵌入式键值数据库，采用 LSM-tree 存储引擎，"
              "适合在边缘设备和资源受限的服务器上运行。它提供 C API、Python 绑定和命令行工具 lotusctl。"),
        ("p", "LotusDB is an embedded key-value database built on an LSM-tree engine. It runs inside your "
              "process, needs no separate server, and offers ACID transactions with snapshot isolation."),
        ("h1", "2 系统要求 System Requirements"),
        ("p", "- 操作系统：Linux 4.14 及以上（x86_64、aarch64），Windows 10 及以上。"),
        ("p", "- 内存：至少 256 MB；默认 memtable 大小为 64 MB。"),
        ("p", "- 磁盘：建议使用 SSD，数据目录所在分区至少保留 2 GB 空闲空间。"),
        ("p", "- Compiler for building from source: GCC 9+ or Clang 11+, CMake 3.20+."),
    ],
    [
        ("h1", "3 安装 Installation"),
        ("p", "LotusDB 提供预编译包，也可以从源码构建。安装前请确认当前用户有写入 /usr/local 的权限。"),
        ("h2", "3.1 Linux"),
        ("p", "Debian / Ubuntu: sudo apt install ./lotusdb_2.3.0_amd64.deb"),
        ("p", "RHEL / Rocky: sudo dnf install ./lotusdb-2.3.0.x86_64.rpm"),
        ("p", "安装完成后运行 lotusctl version，输出应为 lotusctl 2.3.0。默认数据目录为 /var/lib/lotusdb，"
              "配置文件位于 /etc/lotusdb/lotus.toml。"),
        ("h2", "3.2 Windows"),
        ("p", "Run LotusDB-2.3.0-x64.msi as an administrator. The installer places lotusctl.exe in "
              "C:\\Program Files\\LotusDB\\bin and adds it to PATH."),
        ("p", "Windows 下的默认数据目录是 %PROGRAMDATA%\\LotusDB\\data。若安装程序提示错误 1603，"
              "请关闭杀毒软件的实时防护后重试。"),
    ],
    [
        ("h1", "4 配置 Configuration"),
        ("p", "主要配置项写在 lotus.toml 中，修改后需要重启使用该数据库的进程才能生效："),
        ("p", "- memtable_size_mb：内存表大小，默认 64。"),
        ("p", "- wal_sync：写前日志的刷盘策略，可选 always、batch、never，默认 batch。"),
        ("p", "- compaction_threads: background compaction threads, default 2."),
        ("p", "- max_open_files: file handle cache size, default 1024."),
        ("h1", "5 故障排查 Troubleshooting"),
        ("p", "如果打开数据库时返回 LOTUS_EBUSY（-16），说明另一个进程持有数据目录锁文件 LOCK，"
              "请先停止该进程。"),
        ("p", "If writes fail with LOTUS_ENOSPC (-28), free disk space or move the data directory; "
              "LotusDB stays read-only until at least 512 MB is free."),
    ],
]
# (level, outline title, 0-based page); titles match the heading lines above.
PDF_OUTLINE = [
    (1, "1 概述 Overview", 0),
    (1, "2 系统要求 System Requirements", 0),
    (1, "3 安装 Installation", 1),
    (2, "3.1 Linux", 1),
    (2, "3.2 Windows", 1),
    (1, "4 配置 Configuration", 2),
    (1, "5 故障排查 Troubleshooting", 2),
]
SIZES = {"title": 18.0, "h1": 14.0, "h2": 12.0, "p": 10.5}


def _char_width(ch: str, size: float) -> float:
    return (HELVETICA.get(ch, 556) if ord(ch) < 128 else 1000) * size / 1000


def _wrap(text: str, size: float, width: float) -> list[str]:
    tokens = re.findall(r"[\x21-\x7e]+|\s|.", text)
    lines, line, used = [], "", 0.0
    for tok in tokens:
        w = sum(_char_width(c, size) for c in tok)
        if used + w > width and line.strip():
            lines.append(line.rstrip())
            line, used = ("", 0.0) if tok.isspace() else (tok, w)
            continue
        line += tok
        used += w
    if line.strip():
        lines.append(line.rstrip())
    return lines


def _runs(line: str) -> list[tuple[bool, str]]:
    """Split a line into (is_ascii, text) runs: ASCII goes to Helvetica, the rest to STSong."""
    return [(m.group(0)[0] < "\x80", m.group(0)) for m in re.finditer(r"[\x00-\x7f]+|[^\x00-\x7f]+", line)]


def _pdf_string(run: tuple[bool, str]) -> str:
    ascii_run, text = run
    if ascii_run:
        return "(" + text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ")"
    return "<" + text.encode("utf-16-be").hex().upper() + ">"


def _content(page: list[tuple[str, str]]) -> bytes:
    ops, y = [], 790.0
    for kind, text in page:
        size = SIZES[kind]
        y -= size * 0.8 if kind != "p" else 0
        for line in _wrap(text, size, 495):
            y -= size * 1.55
            ops.append(f"BT 50 {y:.1f} Td")
            for run in _runs(line):
                ops.append(f"/{'F1' if run[0] else 'F2'} {size} Tf {_pdf_string(run)} Tj")
            ops.append("ET")
    return "\n".join(ops).encode("latin-1")


def raw_pdf(pages: list[list[tuple[str, str]]]) -> bytes:
    """A minimal hand-written PDF 1.4 with one Latin and one CJK font."""
    n = len(pages)
    # object numbers: 1 catalog, 2 pages, 3 F1, 4 F2, 5 CIDFont, 6 descriptor, then page/content pairs
    objs: dict[int, bytes] = {}
    kids = " ".join(f"{7 + 2 * i} 0 R" for i in range(n))
    objs[1] = b"<< /Type /Catalog /Pages 2 0 R >>"
    objs[2] = f"<< /Type /Pages /Kids [{kids}] /Count {n} >>".encode()
    widths = " ".join(str(HELVETICA[chr(c)]) for c in range(32, 127))
    objs[3] = (f"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding "
               f"/FirstChar 32 /LastChar 126 /Widths [{widths}] >>").encode()
    objs[4] = b"<< /Type /Font /Subtype /Type0 /BaseFont /STSong-Light /Encoding /UniGB-UCS2-H /DescendantFonts [5 0 R] >>"
    objs[5] = (b"<< /Type /Font /Subtype /CIDFontType0 /BaseFont /STSong-Light "
               b"/CIDSystemInfo << /Registry (Adobe) /Ordering (GB1) /Supplement 4 >> /FontDescriptor 6 0 R /DW 1000 >>")
    objs[6] = (b"<< /Type /FontDescriptor /FontName /STSong-Light /Flags 6 /FontBBox [-25 -254 1000 880] "
               b"/ItalicAngle 0 /Ascent 880 /Descent -120 /CapHeight 880 /StemV 93 >>")
    for i, page in enumerate(pages):
        content = _content(page)
        objs[7 + 2 * i] = (f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents {8 + 2 * i} 0 R "
                           f"/Resources << /Font << /F1 3 0 R /F2 4 0 R >> >> >>").encode()
        objs[8 + 2 * i] = f"<< /Length {len(content)} >>\nstream\n".encode() + content + b"\nendstream"
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = {}
    for num in sorted(objs):
        offsets[num] = len(out)
        out += f"{num} 0 obj\n".encode() + objs[num] + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode()
    for num in sorted(objs):
        out += f"{offsets[num]:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def guide_pdf() -> bytes:
    """The bilingual install guide with its outline (bookmarks) added by pypdf."""
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(raw_pdf(PDF_PAGES))))
    parents: dict[int, object] = {}
    for level, title, page in PDF_OUTLINE:
        parents[level] = writer.add_outline_item(title=title, page_number=page, parent=parents.get(level - 1))
    writer.add_metadata({"/Title": "LotusDB 安装指南 Installation Guide", "/Author": "Lotus Data Systems",
                         "/Producer": "infuse scripts/make_examples.py"})
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def encrypted_pdf(plain: bytes, password: str) -> bytes:
    """RC4-128 with a fixed file id, so the output does not change between runs."""
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(plain)))
    writer._ID = ArrayObject([FIXED_ID, FIXED_ID])
    writer.encrypt(user_password=password, owner_password=password + "-owner", algorithm="RC4-128")
    writer._ID = ArrayObject([FIXED_ID, FIXED_ID])
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def truncated_pdf(plain: bytes) -> bytes:
    """The header and a slice of the first page object: no xref, no catalog, no trailer."""
    return plain[: plain.index(b"/Contents")] + b"\n"


# ---------------------------------------------------------------- DOCX
def normalise_zip(data: bytes) -> bytes:
    """Same entries, fixed timestamps: zip output of docx/pptx becomes reproducible."""
    src = zipfile.ZipFile(io.BytesIO(data))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = 0o644 << 16
            dst.writestr(fixed, src.read(info.filename))
    return buf.getvalue()


def _core(props, title: str) -> None:
    props.title = title
    props.author = "Lotus Data Systems"
    props.last_modified_by = "infuse"
    props.created = FIXED_TIME
    props.modified = FIXED_TIME
    props.revision = 1


def manual_docx() -> bytes:
    import docx

    d = docx.Document()
    _core(d.core_properties, "LotusDB 运维手册 Operations Manual")
    d.add_heading("LotusDB 运维手册 Operations Manual", level=0)
    d.add_paragraph("本手册面向负责部署和维护 LotusDB 2.3 的运维工程师，介绍日常巡检、备份恢复和容量规划。"
                    "This manual is for operators who run LotusDB 2.3 in production.")
    d.add_heading("日常巡检 Daily Checks", level=1)
    d.add_paragraph("每天上午检查以下指标，任何一项超过阈值都应在工单系统中登记：")
    for item in ("写入延迟 p99 不超过 5 ms；", "L0 层 SST 文件数不超过 12 个；", "数据目录所在磁盘使用率低于 80%。"):
        d.add_paragraph(item, style="List Bullet")
    d.add_heading("监控指标 Metrics", level=2)
    d.add_paragraph("lotusctl stats --json prints every metric. The most useful ones are listed below.")
    rows = [
        ("指标 Metric", "含义 Meaning", "告警阈值 Alert"),
        ("write_p99_ms", "写入延迟 p99 / write latency p99", "> 5"),
        ("l0_files", "L0 层文件数 / level-0 SST files", "> 12"),
        ("disk_used_pct", "磁盘使用率 / disk usage", "> 80"),
        ("compaction_pending_mb", "待压缩数据量 / pending compaction", "> 4096"),
    ]
    table = d.add_table(rows=len(rows), cols=3)
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    d.add_paragraph("阈值可以在 lotus.toml 的 [alerts] 段中修改。")
    d.add_heading("备份与恢复 Backup and Restore", level=1)
    d.add_heading("在线备份 Online Backup", level=2)
    d.add_paragraph("运行 lotusctl backup --dest /backup/lotus-$(date +%F) 创建一致性快照。备份期间写入不受影响，"
                    "但会短暂暂停压缩（compaction）。")
    d.add_heading("恢复 Restore", level=2)
    d.add_paragraph("Stop every process that opens the database, then run lotusctl restore --src /backup/lotus-2024-09-01 "
                    "--dest /var/lib/lotusdb. Restore refuses to overwrite a non-empty directory unless --force is given.")
    d.add_heading("容量规划 Capacity Planning", level=1)
    d.add_paragraph("经验公式：所需磁盘 = 原始数据量 × 1.3（写放大与空间放大）+ 2 GB 预留。"
                    "例如 100 GB 原始数据需要约 132 GB 磁盘。")
    buf = io.BytesIO()
    d.save(buf)
    return normalise_zip(buf.getvalue())


# ---------------------------------------------------------------- PPTX
def training_pptx() -> bytes:
    from pptx import Presentation
    from pptx.util import Inches, Pt

    prs = Presentation()
    _core(prs.core_properties, "LotusDB 2.3 新版本培训 Release Training")
    title_slide = prs.slides.add_slide(prs.slide_layouts[0])
    title_slide.shapes.title.text = "LotusDB 2.3 新版本培训"
    title_slide.placeholders[1].text = "Release Training for Support Engineers, September 2024"
    title_slide.notes_slide.notes_text_frame.text = "开场先介绍培训目标：让一线支持工程师能回答 2.3 版本的常见问题。"

    s2 = prs.slides.add_slide(prs.slide_layouts[1])
    s2.shapes.title.text = "What's New in 2.3"
    body = s2.placeholders[1].text_frame
    body.text = "Transactions: snapshot isolation is now the default"
    for text, level in (("事务默认使用快照隔离（snapshot isolation）", 1),
                        ("Faster compaction: up to 35% less write amplification", 0),
                        ("新增 lotusctl verify 命令，用于校验 SST 文件的校验和", 0)):
        p = body.add_paragraph()
        p.text = text
        p.level = level
    s2.notes_slide.notes_text_frame.text = "Stress that snapshot isolation changes behaviour for long-running readers."

    s3 = prs.slides.add_slide(prs.slide_layouts[5])
    s3.shapes.title.text = "版本兼容性 Compatibility"
    rows = [("升级路径 Upgrade path", "是否需要迁移 Migration", "说明 Notes"),
            ("2.2 → 2.3", "否 No", "直接替换二进制文件"),
            ("2.0 → 2.3", "是 Yes", "先运行 lotusctl migrate"),
            ("1.x → 2.3", "不支持 Unsupported", "先升级到 2.0")]
    shape = s3.shapes.add_table(len(rows), 3, Inches(0.5), Inches(1.6), Inches(9), Inches(2.5))
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            cell = shape.table.cell(r, c)
            cell.text = value
            cell.text_frame.paragraphs[0].runs[0].font.size = Pt(14)
    s3.notes_slide.notes_text_frame.text = "1.x 用户必须分两步升级，这是客户最常问的问题。"

    s4 = prs.slides.add_slide(prs.slide_layouts[1])
    s4.shapes.title.text = "常见问题 FAQ"
    s4.placeholders[1].text_frame.text = "Q: 升级后启动报 LOTUS_EINVAL？\nA: 检查 lotus.toml 中是否仍有已删除的 bloom_bits 配置项。"
    buf = io.BytesIO()
    prs.save(buf)
    return normalise_zip(buf.getvalue())


# ---------------------------------------------------------------- GBK text
GBK_TEXT = """莲花数据库值班手册（GBK 编码）

一、告警处理流程
值班工程师收到告警后，应在十五分钟内确认，并在工单系统中记录处理过程。
如果告警为写入延迟升高，先执行 lotusctl stats 查看 L0 层文件数量；若超过十二个，说明压缩跟不上写入，可以临时将 compaction_threads 调大到四。

二、磁盘空间不足
当磁盘使用率超过百分之九十时，LotusDB 会拒绝写入并返回错误码 LOTUS_ENOSPC。
处理步骤：
1. 删除七天以前的备份；
2. 执行 lotusctl compact --full 回收已删除数据占用的空间；
3. 如果仍然不足，联系存储组扩容。

三、数据库无法打开
错误码 LOTUS_EBUSY 表示数据目录已被其他进程锁定。请用 lsof 查找持有 LOCK 文件的进程，确认无误后再停止它。
切勿手动删除 LOCK 文件，否则可能导致两个进程同时写入，造成数据损坏。

四、升级注意事项
从 2.2 升级到 2.3 无需迁移数据；从 2.0 升级需要先运行 lotusctl migrate。升级前务必做一次完整备份。
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "examples"))
    out = Path(parser.parse_args().out)
    (out / "rejects").mkdir(parents=True, exist_ok=True)
    guide = guide_pdf()
    files = {
        "lotusdb_install_guide.pdf": guide,
        "lotusdb_ops_manual.docx": manual_docx(),
        "lotusdb_2.3_training.pptx": training_pptx(),
        "oncall_handbook_gbk.txt": GBK_TEXT.encode("gbk"),
        "rejects/encrypted_guide.pdf": encrypted_pdf(guide, "lotus-secret"),
        "rejects/truncated_guide.pdf": truncated_pdf(guide),
        "rejects/empty_notes.txt": b"",
        "rejects/firmware_dump.txt": bytes(range(256)) * 2,
        "rejects/release_notes.rtf": b"{\\rtf1\\ansi LotusDB 2.3 release notes (RTF is not supported)}\n",
    }
    for name, data in files.items():
        (out / name).write_bytes(data)
        print(f"{out / name}: {len(data)} bytes")


if __name__ == "__main__":
    main()
