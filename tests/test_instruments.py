"""Instrument files: the bundled forms match the seeds, bad files are explained, answers checked."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from surveys.instruments import (
    BUNDLED_DIR,
    AnswerError,
    AnswerValue,
    Instrument,
    InstrumentError,
    Item,
    Problem,
    bundled_instruments,
    get_instrument,
    get_instrument_by_key,
    load_instrument_file,
    missing_required,
    parse_number,
    validate_answer,
)

DATA = Path(__file__).parent / "data" / "instruments"

# Characters of the traditional-Chinese seed 003 that must not survive the transcription.
TRADITIONAL = set("黨設組織員會記錄費臺賬選優產經營內區縣務實嚴範導範雙構繫級書規開會議簽")


# --------------------------------------------------------------------------- bundled forms


def test_every_bundled_file_loads_and_is_named_after_its_id_and_version() -> None:
    files = sorted(BUNDLED_DIR.glob("*.yaml"))
    assert [path.name for path in files] == [
        "inspection_two_new.v1.yaml",
        "inspection_village.v1.yaml",
        "satisfaction.v1.yaml",
        "self_evaluation.v1.yaml",
        "superior_scoring.v1.yaml",
    ]
    for path in files:
        instrument = load_instrument_file(path)
        assert path.name == f"{instrument.id}.v{instrument.version}.yaml"
    assert [i.key for i in bundled_instruments()] == [
        "inspection_two_new@1",
        "inspection_village@1",
        "satisfaction@1",
        "self_evaluation@1",
        "superior_scoring@1",
    ]


def test_every_text_has_chinese_and_english() -> None:
    for instrument in bundled_instruments():
        texts = [instrument.title] + [section.title for section in instrument.sections]
        for item in instrument.items:
            texts += [item.text, *(option.text for option in item.options)]
        for text in texts:
            assert text.zh.strip() and text.en.strip(), (instrument.key, text)


SEVEN_INDICATORS = [
    ("党组织带头人", 20),
    ("工作思路", 10),
    ("工作制度", 15),
    ("活动阵地", 10),
    ("保障机制", 10),
    ("工作业绩", 20),
    ("群众评价", 15),
]


@pytest.mark.parametrize("instrument_id", ["self_evaluation", "superior_scoring"])
def test_committee_forms_score_the_seven_indicators_out_of_100(instrument_id: str) -> None:
    instrument = get_instrument(instrument_id)
    points_items = [item for item in instrument.items if item.kind == "points"]
    assert [(item.text.zh, item.max_points) for item in points_items] == [
        (name, Decimal(points)) for name, points in SEVEN_INDICATORS
    ]
    assert instrument.total_points == 100
    assert all(item.step == Decimal("0.5") and item.description for item in points_items)
    assert not instrument.anonymous


def test_self_evaluation_is_filled_by_the_committee() -> None:
    instrument = get_instrument("self_evaluation")
    assert (instrument.phase, instrument.audiences) == ("self_evaluation", ["committee"])


def test_superior_scoring_is_for_organizers_with_an_optional_opinion() -> None:
    instrument = get_instrument("superior_scoring")
    assert (instrument.phase, instrument.audiences) == ("superior_scoring", ["organizers"])
    opinion = instrument.items[-1]
    assert (opinion.kind, opinion.required, opinion.text.zh.startswith("评定意见")) == (
        "text",
        False,
        True,
    )


def test_satisfaction_survey_is_anonymous_and_asks_nine_questions() -> None:
    survey = get_instrument("satisfaction")
    assert survey.anonymous
    assert survey.audiences == ["members", "masses"]
    assert survey.total_points is None
    assert "不记名" in survey.intro.zh
    assert [item.id for item in survey.items] == [f"q{n}" for n in range(1, 10)]


def test_satisfaction_five_goods_use_satisfied_basically_dissatisfied() -> None:
    survey = get_instrument("satisfaction")
    goods = ["领导班子好", "党员队伍好", "工作机制好", "工作业绩好", "群众反映好"]
    for number, good in enumerate(goods, start=1):
        item = survey.item(f"q{number}")
        assert item.description.zh == good
        assert item.rate == "satisfaction"
        assert [(o.id, o.text.zh, o.value, o.positive) for o in item.options] == [
            ("satisfied", "满意", Decimal(100), True),
            ("basically_satisfied", "基本满意", Decimal(60), True),
            ("dissatisfied", "不满意", Decimal(0), False),
        ]


def test_satisfaction_overall_awareness_participation_and_suggestions() -> None:
    survey = get_instrument("satisfaction")

    def shape(item_id: str) -> list[tuple[str, str, bool]]:
        return [(o.id, o.text.zh, o.positive) for o in survey.item(item_id).options]

    assert survey.item("q6").rate is None
    assert shape("q6") == [
        ("good", "好", False),
        ("fairly_good", "较好", False),
        ("average", "一般", False),
        ("poor", "较差", False),
    ]
    assert survey.item("q7").rate == "awareness"
    assert shape("q7") == [
        ("aware", "了解", True),
        ("partly_aware", "部分了解", True),
        ("unaware", "不了解", False),
    ]
    assert survey.item("q8").rate == "participation"
    assert shape("q8") == [
        ("often", "经常参加", True),
        ("sometimes", "偶尔参加", True),
        ("never", "未参加", False),
    ]
    q9 = survey.item("q9")
    assert (q9.kind, q9.required, q9.max_length) == ("text", False, 500)


def _sections(instrument: Instrument) -> list[tuple[str, Decimal | None, int]]:
    return [(s.title.zh, s.points, len(s.items)) for s in instrument.sections]


def test_village_inspection_sheet_has_the_five_dimensions_of_seed_003() -> None:
    sheet = get_instrument("inspection_village")
    assert (sheet.phase, sheet.audiences, sheet.total_points) == ("inspection", ["inspectors"], 100)
    assert _sections(sheet) == [
        ("党建基础", 25, 9),
        ("组织建设", 30, 9),
        ("党员管理", 20, 11),
        ("活动开展", 15, 5),
        ("工作保障", 10, 3),
    ]
    assert all(item.kind == "deduction" for item in sheet.items)


def test_village_inspection_item_points_match_the_seed() -> None:
    sheet = get_instrument("inspection_village")
    by_section = {s.id: [item.max_points for item in s.items] for s in sheet.sections}
    # The "(N分)" after each line of seed 003, 附件1.
    assert by_section == {
        "basics": [3, 3, 3, 3, 2, 4, 2, 2, 3],
        "organization": [4, 3, 3, 4, 4, 3, 3, 3, 3],
        "members": [3, 2, 2, 1, 2, 1, 3, 1, 3, 1, 1],
        "activities": [4, 4, 2, 2, 3],
        "support": [4, 3, 3],
    }
    organization_1 = sheet.sections[1].items[0]
    assert organization_1.text.zh.startswith("扎实推进不忘初心、牢记使命常态化制度化")
    members_4 = sheet.sections[2].items[3]
    assert (members_4.text.zh, members_4.max_points) == ("开展无职党员设岗定责，并及时进行公开", 1)


def test_two_new_inspection_sheet_has_the_five_dimensions_of_seed_003() -> None:
    sheet = get_instrument("inspection_two_new")
    assert (sheet.phase, sheet.total_points) == ("inspection", 100)
    assert _sections(sheet) == [
        ("党建基础", 15, 4),
        ("组织建设", 30, 5),
        ("党员管理", 25, 5),
        ("活动开展", 20, 4),
        ("工作保障", 10, 2),
    ]
    by_section = {s.id: [item.max_points for item in s.items] for s in sheet.sections}
    assert by_section == {
        "basics": [5, 2, 5, 3],
        "organization": [5, 5, 5, 10, 5],
        "members": [5, 5, 5, 5, 5],
        "activities": [5, 5, 5, 5],
        "support": [5, 5],
    }


def test_two_new_last_item_cut_off_in_the_seed_takes_the_rest_of_its_section() -> None:
    funds = get_instrument("inspection_two_new").sections[-1].items[-1]
    assert funds.text.zh.startswith("社会组织党组织工作经费纳入预算，单独列支，足额保障")
    assert funds.max_points == 10 - 5


def test_inspection_sheets_are_transcribed_into_simplified_chinese() -> None:
    for instrument_id in ("inspection_village", "inspection_two_new"):
        sheet = get_instrument(instrument_id)
        for item in sheet.items:
            leftovers = TRADITIONAL & set(item.text.zh)
            assert not leftovers, (instrument_id, item.id, leftovers)
            assert "(" not in item.text.zh, "pinyin residue like 礎(chǔ) from the seed"


# --------------------------------------------------------------------------- lookup


def test_instruments_are_parsed_once_and_shared() -> None:
    first = get_instrument("satisfaction")
    assert get_instrument("satisfaction") is first
    assert get_instrument("satisfaction", 1) is first
    assert get_instrument_by_key("satisfaction@1") is first
    assert first.items is first.items


def test_version_none_means_the_highest_version() -> None:
    assert get_instrument("inspection_village").version == 1


def test_unknown_instruments_and_keys_raise_key_error() -> None:
    with pytest.raises(KeyError):
        get_instrument("no_such_form")
    with pytest.raises(KeyError):
        get_instrument("satisfaction", 99)
    with pytest.raises(KeyError):
        get_instrument_by_key("satisfaction")
    with pytest.raises(KeyError):
        get_instrument_by_key("satisfaction@one")


def test_items_sections_and_key() -> None:
    sheet = get_instrument("inspection_village")
    assert len(sheet.items) == 9 + 9 + 11 + 5 + 3
    assert sheet.item("members_4").max_points == 1
    assert sheet.section_of("members_4").title.zh == "党员管理"
    assert sheet.key == "inspection_village@1"
    with pytest.raises(KeyError):
        sheet.item("nope")
    with pytest.raises(KeyError):
        sheet.section_of("nope")


def test_instruments_cannot_be_changed_after_loading() -> None:
    with pytest.raises(ValidationError):
        get_instrument("satisfaction").anonymous = False  # type: ignore[misc]


# --------------------------------------------------------------------------- bad files


def _problems(name: str) -> list[Problem]:
    path = DATA / name
    with pytest.raises(InstrumentError) as caught:
        load_instrument_file(path)
    problems = caught.value.problems
    assert all(problem.file == str(path) for problem in problems)
    return problems


def test_the_reference_tiny_file_is_valid() -> None:
    tiny = load_instrument_file(DATA / "tiny.v1.yaml")
    assert (tiny.key, tiny.total_points, len(tiny.items)) == ("tiny@1", 10, 2)


@pytest.mark.parametrize(
    ("name", "path", "message"),
    [
        ("bad_yaml.v1.yaml", "line 6, column 9", "YAML syntax error"),
        ("duplicate_key.v1.yaml", "line 5, column 1", "duplicate key 'phase'"),
        ("unknown_key.v1.yaml", "sections[0].items[1].colour", "Extra inputs are not permitted"),
        ("wrong_section_sum.v1.yaml", "sections[1].items", "add up to 9 points"),
        ("wrong_total.v1.yaml", "sections", "total_points is 100"),
        ("duplicate_id.v1.yaml", "sections[1].items[1].id", "duplicate item id 'a'"),
        ("duplicate_option.v1.yaml", "sections[0].items[0].options[1].id", "duplicate option"),
        ("choice_without_options.v1.yaml", "sections[0].items[1].options", "at least 2 options"),
        ("points_without_max.v1.yaml", "sections[0].items[1].max_points", "needs max_points"),
        ("bad_step.v1.yaml", "sections[0].items[1].step", "does not divide"),
        ("rate_without_positive.v1.yaml", "sections[0].items[0].rate", "positive"),
        ("empty_chinese.v1.yaml", "title.zh", "must not be empty"),
        ("misnamed.v2.yaml", "id", "misnamed.v1.yaml"),
    ],
)
def test_each_kind_of_mistake_names_the_file_and_the_path(
    name: str, path: str, message: str
) -> None:
    problems = _problems(name)
    assert [problem.path for problem in problems] == [path]
    assert message in problems[0].message
    assert str(problems[0]) == f"{DATA / name}: {path}: {problems[0].message}"


def test_all_problems_of_a_file_are_reported_one_per_line() -> None:
    problems = _problems("several_problems.v1.yaml")
    assert [problem.path for problem in problems] == [
        "version",
        "title.en",
        "phase",
        "sections[0].items[0].max_points",
    ]
    with pytest.raises(InstrumentError) as caught:
        load_instrument_file(DATA / "several_problems.v1.yaml")
    assert len(str(caught.value).splitlines()) == 4


@pytest.mark.parametrize("written", [".inf", ".nan", "1:30", "1:30.5"])
def test_yaml_floats_that_are_not_plain_numbers_are_refused(tmp_path: Path, written: str) -> None:
    text = (DATA / "tiny.v1.yaml").read_text(encoding="utf-8")
    path = tmp_path / "tiny.v1.yaml"
    path.write_text(text.replace("max_points: 4", f"max_points: {written}"), encoding="utf-8")
    with pytest.raises(InstrumentError) as caught:
        load_instrument_file(path)
    [problem] = caught.value.problems
    assert problem.path.startswith("line 13, column ")
    assert "not a plain decimal number" in problem.message


def test_decimal_points_in_files_are_exact(tmp_path: Path) -> None:
    text = (DATA / "tiny.v1.yaml").read_text(encoding="utf-8")
    text = text.replace("max_points: 4,", "max_points: 3.9, step: 0.1,")
    text = text.replace("max_points: 6, step: 1", "max_points: 6.1, step: 0.1")
    path = tmp_path / "tiny.v1.yaml"
    path.write_text(text, encoding="utf-8")
    tiny = load_instrument_file(path)  # 3.9 + 6.1 == 10 only in exact decimals
    assert [item.max_points for item in tiny.items] == [Decimal("3.9"), Decimal("6.1")]


def test_a_missing_file_is_a_problem_too() -> None:
    problems = _problems("does_not_exist.v1.yaml")
    assert "cannot read" in problems[0].message


# --------------------------------------------------------------------------- answers


def _item(**fields: object) -> Item:
    base: dict[str, object] = {"id": "x", "text": {"zh": "题", "en": "Question"}}
    return Item.model_validate(base | fields)


POINTS = _item(kind="points", max_points=20)
DEDUCTION = _item(kind="deduction", max_points=3, max_length=10)
CHOICE = _item(
    kind="choice",
    options=[
        {"id": "satisfied", "text": {"zh": "满意", "en": "Satisfied"}},
        {"id": "dissatisfied", "text": {"zh": "不满意", "en": "Dissatisfied"}},
    ],
)
TEXT = _item(kind="text", max_length=5, required=False)


def _code(item: Item, value: AnswerValue) -> str:
    with pytest.raises(AnswerError) as caught:
        validate_answer(item, value)
    return caught.value.code


@pytest.mark.parametrize(
    ("typed", "number"),
    [
        ("8", "8"),
        ("8.5", "8.5"),
        ("８．５", "8.5"),
        ("8分", "8"),
        (" 12.5 分 ", "12.5"),
        ("８分", "8"),
        ("0", "0"),
        (".5", "0.5"),
    ],
)
def test_typed_numbers_are_read_like_a_person_writes_them(typed: str, number: str) -> None:
    assert parse_number(typed) == Decimal(number)


@pytest.mark.parametrize("typed", ["", "八", "8..5", "1e3", "NaN", "Infinity", "8 5", "分"])
def test_what_is_not_a_number_is_refused(typed: str) -> None:
    with pytest.raises(AnswerError) as caught:
        parse_number(typed)
    assert caught.value.code == "not_a_number"


def test_points_within_range_on_the_half_point_step_are_accepted() -> None:
    assert validate_answer(POINTS, AnswerValue(points=Decimal("18.5"))).points == Decimal("18.5")
    assert validate_answer(POINTS, AnswerValue(points=Decimal(0))).points == 0
    assert validate_answer(POINTS, AnswerValue(points=Decimal(20))).points == 20


def test_points_out_of_range_or_off_step_are_refused_with_the_limits() -> None:
    with pytest.raises(AnswerError) as caught:
        validate_answer(POINTS, AnswerValue(points=Decimal(21)))
    assert (caught.value.code, caught.value.params) == ("out_of_range", {"min": 0, "max": 20})
    assert _code(POINTS, AnswerValue(points=Decimal(-1))) == "out_of_range"
    assert _code(POINTS, AnswerValue(points=Decimal("8.25"))) == "bad_step"
    with pytest.raises(ValidationError):  # pydantic itself keeps NaN out of answers
        AnswerValue(points=Decimal("NaN"))


def test_a_deduction_needs_a_reason_unless_it_is_zero() -> None:
    assert _code(DEDUCTION, AnswerValue(deduction=Decimal(1))) == "reason_required"
    assert _code(DEDUCTION, AnswerValue(deduction=Decimal(1), reason="   ")) == "reason_required"
    kept = validate_answer(DEDUCTION, AnswerValue(deduction=Decimal(1), reason=" 记录不全 "))
    assert (kept.deduction, kept.reason) == (1, "记录不全")
    assert validate_answer(DEDUCTION, AnswerValue(deduction=Decimal(0))).reason is None


def test_a_deduction_cannot_exceed_the_item_points_or_have_a_too_long_reason() -> None:
    assert _code(DEDUCTION, AnswerValue(deduction=Decimal(4), reason="多扣")) == "out_of_range"
    assert _code(DEDUCTION, AnswerValue(deduction=Decimal("0.3"), reason="x")) == "bad_step"
    long_reason = "原因" * 6
    assert _code(DEDUCTION, AnswerValue(deduction=Decimal(1), reason=long_reason)) == "too_long"


def test_a_choice_must_be_one_of_the_options() -> None:
    assert validate_answer(CHOICE, AnswerValue(choice="satisfied")).choice == "satisfied"
    assert _code(CHOICE, AnswerValue(choice="very_satisfied")) == "unknown_option"


def test_free_text_is_trimmed_and_limited() -> None:
    assert validate_answer(TEXT, AnswerValue(text="  多开会 ")).text == "多开会"
    assert _code(TEXT, AnswerValue(text="意见很多很多")) == "too_long"
    assert _code(TEXT, AnswerValue(text="   ")) == "empty"


def test_an_answer_of_the_wrong_kind_is_refused() -> None:
    assert _code(CHOICE, AnswerValue(points=Decimal(1))) == "wrong_kind"
    assert _code(POINTS, AnswerValue(choice="satisfied")) == "wrong_kind"
    assert _code(DEDUCTION, AnswerValue(points=Decimal(1))) == "wrong_kind"
    assert _code(TEXT, AnswerValue(choice="satisfied")) == "wrong_kind"


def test_answer_values_hold_exactly_one_answer_and_survive_json() -> None:
    with pytest.raises(ValidationError):
        AnswerValue()
    with pytest.raises(ValidationError):
        AnswerValue(choice="satisfied", points=Decimal(1))
    with pytest.raises(ValidationError):
        AnswerValue(points=Decimal(1), reason="why")
    with pytest.raises(ValidationError):
        AnswerValue.model_validate({"choice": "satisfied", "extra": 1})
    value = AnswerValue(deduction=Decimal("1.5"), reason="台账不全")
    stored = value.model_dump(mode="json", exclude_none=True)
    assert stored == {"deduction": "1.5", "reason": "台账不全"}
    assert AnswerValue.model_validate(stored) == value
    assert AnswerValue.model_validate_json(value.model_dump_json()) == value


def test_missing_required_lists_unanswered_required_items_in_order() -> None:
    survey = get_instrument("satisfaction")
    answers = {"q2": AnswerValue(choice="satisfied"), "q5": AnswerValue(choice="dissatisfied")}
    assert missing_required(survey, answers) == ["q1", "q3", "q4", "q6", "q7", "q8"]
    everything = {f"q{n}": AnswerValue(choice="x") for n in range(1, 9)}
    assert missing_required(survey, everything) == []  # q9 is optional


def test_every_bundled_form_has_a_short_title_for_buttons_and_headers() -> None:
    for instrument in bundled_instruments():
        assert instrument.short_title is not None, instrument.key
        assert len(instrument.short_title.zh) <= 8, instrument.key
    satisfaction = get_instrument("satisfaction")
    assert satisfaction.display_title("zh_CN") == "满意度测评"
    labels = [item.short_label.zh if item.short_label else None for item in satisfaction.items]
    assert labels[5:8] == ["总体评价", "知晓情况", "参与情况"]
