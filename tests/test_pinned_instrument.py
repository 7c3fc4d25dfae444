"""A round keeps reporting and exporting the instrument version it pinned after a v2 ships."""

from __future__ import annotations

from pathlib import Path

from openpyxl import load_workbook
from sqlalchemy import Engine
from sqlmodel import Session

from bot.workbook import write_workbook
from storage.db import transaction
from storage.instruments import pinned_instrument
from surveys.i18n import t
from surveys.instruments import get_instrument
from tests.factories import build_scored_township as build_township
from tests.instrument_bundle import V1_TEXT, V2_TEXT, v2_shipped


def test_a_round_pinned_to_v1_reads_v1_after_v2_ships(engine: Engine, tmp_path: Path) -> None:
    with transaction(engine) as session:
        ids = build_township(session)  # pins self_evaluation v1, the only version then
    with v2_shipped(tmp_path), Session(engine) as session:
        assert get_instrument("self_evaluation").version == 2
        pinned = pinned_instrument(
            session=session, round_id=ids["round"], instrument_id="self_evaluation"
        )
        assert pinned.version == 1 and pinned.items[0].text.zh == V1_TEXT


def test_the_workbook_of_a_v1_round_shows_the_v1_form_after_v2_ships(
    engine: Engine, tmp_path: Path
) -> None:
    with transaction(engine) as session:
        ids = build_township(session)
    with v2_shipped(tmp_path), Session(engine) as session:
        path = write_workbook(session, round_id=ids["round"], path=tmp_path / "round.xlsx")
    sheet = load_workbook(path)[t("export.sheet.self_evaluation_detail", "zh_CN")]
    headers = " ".join(str(cell.value) for cell in sheet[1])
    assert V1_TEXT in headers and V2_TEXT not in headers
