"""Charts are phone-sized PNGs whose Chinese labels render (no missing glyphs)."""

from __future__ import annotations

import io
import warnings
from decimal import Decimal

import pytest
from PIL import Image
from sqlalchemy import Engine
from sqlmodel import Session

from bot import charts
from storage.db import transaction
from storage.tallies import round_tally
from tests.factories import add_open_round, add_org, add_person, points_for_total, submit_points
from tests.factories import build_graded_township as _graded_township
from tests.factories import build_scored_township as build_township
from tests.factories import new_phone as _phone


def _image(data: bytes) -> Image.Image:
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(data))
    image.verify()
    return Image.open(io.BytesIO(data))


def test_the_bundled_font_covers_simplified_chinese() -> None:
    assert charts.cjk_font_name() == "Noto Sans SC"


@pytest.mark.parametrize("locale", ["zh_CN", "en"])
def test_participation_and_score_charts_are_1080_px_wide_pngs(engine: Engine, locale: str) -> None:
    with transaction(engine) as session:
        ids = build_township(session)
    with Session(engine) as session:
        tally = round_tally(session, round_id=ids["round"])
    with warnings.catch_warnings():
        # matplotlib warns "Glyph … missing from font(s)" when a character would be a box.
        warnings.simplefilter("error")
        pictures = [
            charts.participation_chart(tally, locale),
            charts.score_chart(tally, locale),
        ]
    for data in pictures:
        image = _image(data)
        assert image.format == "PNG"
        assert image.size[0] == 1080
        assert 720 <= image.size[1] <= 4000


def test_a_long_list_of_branches_makes_a_taller_chart(engine: Engine) -> None:
    with transaction(engine) as session:
        small_round, _ = _graded_township(session, [90, 80, 70])
    with Session(engine) as session:
        few = round_tally(session, round_id=small_round)
    many_scores = [60 + index for index in range(30)]
    with transaction(engine) as session:
        big_round, _ = _graded_township_named(session, many_scores)
    with Session(engine) as session:
        many = round_tally(session, round_id=big_round)
    short = _image(charts.score_chart(few, "zh_CN")).size[1]
    tall = _image(charts.score_chart(many, "zh_CN")).size[1]
    assert tall > short


def _graded_township_named(session: Session, scores: list[int]) -> tuple[int, list[int]]:
    """A second township in the same database (other names, other round)."""
    town = add_org(session, "北镇党委", "committee")
    organizer = add_person(session, "北镇干事", town, "organizer", phone=_phone())
    round_ = add_open_round(session, "北镇2028年度")
    ids = []
    for index, score in enumerate(scores):
        branch = add_org(session, f"北镇第{index + 1}村党支部", parent_id=town.id)
        points = points_for_total("superior_scoring", Decimal(score))
        submit_points(session, round_, branch, organizer, "superior_scoring", points, "organizers")
        ids.append(branch.id)
    return round_.id, ids  # type: ignore[return-value]
