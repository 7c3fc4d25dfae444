"""The invitation sheet of ``ceping invite``: one row per link, with its QR code.

Rendering only (XLSX with the QR codes embedded, or CSV with a folder of PNGs); the rows
are built by ``bot.cli.invite`` from storage.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from surveys.i18n import t
from surveys.text import safe_row


@dataclass(frozen=True)
class InviteRow:
    """One line of the invitation sheet."""

    name: str
    phone: str
    org: str
    roles: str
    link: str


def qr_png(link: str) -> bytes:
    """A QR code of the link as PNG bytes."""
    import qrcode

    image = qrcode.make(link, box_size=4, border=2)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _headers(locale: str) -> list[str]:
    """The column titles of the invitation sheet."""
    return [
        t(f"cli.invite.column.{key}", locale)
        for key in ("name", "phone", "org", "roles", "link", "qr")
    ]


def write_invitations_xlsx(path: Path, rows: Sequence[InviteRow], locale: str) -> None:
    """An XLSX with one row per person and the QR code embedded beside the link."""
    from openpyxl import Workbook
    from openpyxl.drawing.image import Image

    workbook = Workbook()
    sheet = workbook.active
    sheet.title = t("cli.invite.sheet", locale)
    sheet.append(_headers(locale))
    for letter, width in zip("ABCDEF", (12, 14, 24, 20, 60, 18), strict=True):
        sheet.column_dimensions[letter].width = width
    for index, row in enumerate(rows, start=2):
        sheet.append(safe_row([row.name, row.phone, row.org, row.roles, row.link]))
        image = Image(io.BytesIO(qr_png(row.link)))
        image.width = image.height = 110
        sheet.add_image(image, f"F{index}")
        sheet.row_dimensions[index].height = 86
    workbook.save(path)


def write_invitations_csv(path: Path, rows: Sequence[InviteRow], locale: str) -> Path:
    """A CSV (UTF-8 with BOM, so Excel reads it) and a folder of QR code PNGs beside it."""
    folder = path.with_name(f"{path.stem}_qr")
    folder.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(_headers(locale))
        for index, row in enumerate(rows, start=1):
            picture = f"{index:04d}_{row.phone or 'x'}.png"
            (folder / picture).write_bytes(qr_png(row.link))
            writer.writerow(safe_row([row.name, row.phone, row.org, row.roles, row.link, picture]))
    return folder
