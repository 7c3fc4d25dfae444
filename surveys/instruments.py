"""Survey instruments as versioned YAML data files: schema, loading, validation of answers.

Each bundled file ``surveys/instruments/<id>.v<version>.yaml`` is one version of one
instrument (self-evaluation, satisfaction survey, inspection sheets, superior scoring).
A version never changes once used in a round: a changed form is a new file with a
higher version, so stored answers always refer to the exact form they answered.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

BUNDLED_DIR = Path(__file__).parent / "instruments"
_FILE_NAME = re.compile(r"^(?P<id>[a-z][a-z0-9_]*)\.v(?P<version>[1-9][0-9]*)\.yaml$")

# Decimal fields accept YAML/JSON numbers (int, float) and strings; everything else is strict.
Num = Annotated[Decimal, Field(strict=False)]

ItemKind = Literal["choice", "points", "deduction", "text"]
Rate = Literal["satisfaction", "awareness", "participation"]
Phase = Literal["self_evaluation", "satisfaction", "inspection", "superior_scoring"]
Audience = Literal["members", "masses", "committee", "inspectors", "organizers"]


def _problem(message: str, at: tuple[int | str, ...] = ()) -> PydanticCustomError:
    """A validation error whose message is shown as is (no "Value error," prefix).

    ``at`` narrows pydantic's location further down, e.g. to the second of two
    duplicate ids, when the check needs the whole list to find the culprit.
    """
    return PydanticCustomError("instrument", message, {"at": at} if at else None)


class _Strict(BaseModel):
    """Base for instrument models: strict types, unknown keys rejected, immutable."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class Text(_Strict):
    """A text in simplified Chinese (shown first) and English."""

    zh: str
    en: str

    @field_validator("zh")
    @classmethod
    def _zh_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise _problem("the Chinese text must not be empty")
        return value

    def get(self, locale: str) -> str:
        """The text for a locale such as ``zh_CN`` or ``en`` (Chinese unless English asked)."""
        return self.en if locale.startswith("en") and self.en else self.zh


class Option(_Strict):
    """One answer of a choice item; ``positive`` counts it towards the item's rate."""

    id: str
    text: Text
    value: Num | None = None
    positive: bool = False


class Item(_Strict):
    """One question or one scored line of a sheet."""

    id: str
    kind: ItemKind
    text: Text
    description: Text | None = None
    # A few words naming the item on the review screen and in the picker (总体评价);
    # without one the review uses the description, or the number alone.
    short_label: Text | None = None
    options: list[Option] = Field(default=[], validate_default=True)
    max_points: Num | None = Field(default=None, validate_default=True)
    step: Num = Field(default=Decimal("0.5"), validate_default=True)
    required: bool = True
    max_length: int = Field(default=500, gt=0)
    rate: Rate | None = Field(default=None, validate_default=True)
    scored: bool = True

    @field_validator("options")
    @classmethod
    def _options_fit_kind(cls, options: list[Option], info: ValidationInfo) -> list[Option]:
        kind = info.data.get("kind")
        if kind == "choice" and len(options) < 2:
            raise _problem("a choice item needs at least 2 options")
        if kind in ("points", "deduction", "text") and options:
            raise _problem(f"a {kind} item must not have options")
        seen: set[str] = set()
        for index, option in enumerate(options):
            if option.id in seen:
                raise _problem(f"duplicate option id {option.id!r}", at=(index, "id"))
            seen.add(option.id)
        return options

    @field_validator("max_points")
    @classmethod
    def _max_points_fit_kind(
        cls, max_points: Decimal | None, info: ValidationInfo
    ) -> Decimal | None:
        kind = info.data.get("kind")
        if kind in ("points", "deduction"):
            if max_points is None:
                raise _problem(f"a {kind} item needs max_points")
            if not max_points.is_finite() or max_points <= 0:
                raise _problem("max_points must be greater than 0")
        elif max_points is not None:
            raise _problem(f"a {kind} item must not have max_points")
        return max_points

    @field_validator("step")
    @classmethod
    def _step_divides_max_points(cls, step: Decimal, info: ValidationInfo) -> Decimal:
        if not step.is_finite() or step <= 0:
            raise _problem("step must be greater than 0")
        max_points = info.data.get("max_points")
        if max_points is not None and max_points % step != 0:
            raise _problem(f"step {step} does not divide max_points {max_points}")
        return step

    @field_validator("rate")
    @classmethod
    def _rate_has_positive_options(cls, rate: Rate | None, info: ValidationInfo) -> Rate | None:
        options: list[Option] = info.data.get("options", [])
        positives = [option for option in options if option.positive]
        if rate is None:
            if positives:
                raise _problem("options are marked positive but the item feeds no rate")
            return rate
        if info.data.get("kind") != "choice":
            raise _problem("only choice items can feed a rate")
        if not positives or len(positives) == len(options):
            raise _problem(f"rate {rate!r} needs both positive and non-positive options")
        return rate

    def option(self, option_id: str) -> Option:
        """The option with this id (KeyError if none)."""
        for option in self.options:
            if option.id == option_id:
                return option
        raise KeyError(f"item {self.id!r} has no option {option_id!r}")


class Section(_Strict):
    """A titled group of items; ``points`` is the sum of its items' points when given."""

    id: str
    title: Text
    points: Num | None = None
    items: list[Item]

    @field_validator("items")
    @classmethod
    def _items_add_up(cls, items: list[Item], info: ValidationInfo) -> list[Item]:
        if not items:
            raise _problem("a section needs at least one item")
        points = info.data.get("points")
        if points is not None:
            item_sum = _points_of(items)
            if item_sum != points:
                raise _problem(f"items add up to {item_sum} points but the section has {points}")
        return items

    @property
    def max_points(self) -> Decimal:
        """Points this section can earn: its declared points, else the sum of its items."""
        return self.points if self.points is not None else _points_of(self.items)


def _points_of(items: list[Item]) -> Decimal:
    """The sum of max_points of points and deduction items."""
    return sum((item.max_points or Decimal(0) for item in items), Decimal(0))


class Instrument(_Strict):
    """One version of one survey form."""

    id: str
    version: int = Field(gt=0)
    title: Text
    # The name shown on buttons and screen headers (满意度测评): the full title is the
    # paper form's and does not fit a phone's button.
    short_title: Text | None = None
    phase: Phase
    audiences: list[Audience] = Field(min_length=1)
    anonymous: bool = False
    total_points: Num | None = None
    intro: Text | None = None
    sections: list[Section] = Field(min_length=1)

    @field_validator("sections")
    @classmethod
    def _sections_are_consistent(
        cls, sections: list[Section], info: ValidationInfo
    ) -> list[Section]:
        _check_unique_item_ids(sections)
        total = info.data.get("total_points")
        if total is not None:
            section_sum = sum((section.max_points for section in sections), Decimal(0))
            if section_sum != total:
                raise _problem(
                    f"sections add up to {section_sum} points but total_points is {total}"
                )
        return sections

    @cached_property
    def items(self) -> tuple[Item, ...]:
        """Every item of every section, in order."""
        return tuple(item for section in self.sections for item in section.items)

    @cached_property
    def _item_index(self) -> dict[str, tuple[Section, Item]]:
        return {item.id: (section, item) for section in self.sections for item in section.items}

    def item(self, item_id: str) -> Item:
        """The item with this id (KeyError if none)."""
        try:
            return self._item_index[item_id][1]
        except KeyError:
            raise KeyError(f"instrument {self.key} has no item {item_id!r}") from None

    def section_of(self, item_id: str) -> Section:
        """The section that holds this item (KeyError if none)."""
        try:
            return self._item_index[item_id][0]
        except KeyError:
            raise KeyError(f"instrument {self.key} has no item {item_id!r}") from None

    @property
    def key(self) -> str:
        """The stable reference stored with answers: ``id@version``."""
        return f"{self.id}@{self.version}"

    def display_title(self, locale: str) -> str:
        """The short name for buttons and headers, or the full title when there is none."""
        return (self.short_title or self.title).get(locale)

    @property
    def is_scored(self) -> bool:
        """True when the instrument yields a points total (points or deduction items)."""
        return any(item.kind in ("points", "deduction") for item in self.items)


def _check_unique_item_ids(sections: list[Section]) -> None:
    """Raise if two items (anywhere in the instrument) or two sections share an id."""
    section_ids: set[str] = set()
    first_seen: dict[str, str] = {}
    for s_index, section in enumerate(sections):
        if section.id in section_ids:
            raise _problem(f"duplicate section id {section.id!r}", at=(s_index, "id"))
        section_ids.add(section.id)
        for i_index, item in enumerate(section.items):
            if item.id in first_seen:
                message = f"duplicate item id {item.id!r} (first used at {first_seen[item.id]})"
                raise _problem(message, at=(s_index, "items", i_index, "id"))
            first_seen[item.id] = f"sections[{s_index}].items[{i_index}]"


# --------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an instrument file."""

    file: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.path}: {self.message}"


class InstrumentError(Exception):
    """An instrument file cannot be used; ``problems`` says every reason found."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(problems)
        self.problems = problems

    def __str__(self) -> str:
        return "\n".join(str(problem) for problem in self.problems)


def format_loc(loc: tuple[int | str, ...]) -> str:
    """Turn a pydantic error location into ``sections[1].items[3].max_points``."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "(top level)"


class _Loader(yaml.SafeLoader):
    """Safe YAML loader: floats become exact Decimals, duplicate keys are errors."""


def _construct_decimal(loader: _Loader, node: yaml.ScalarNode) -> Decimal:
    """A YAML float as the exact Decimal written (0.1 stays 0.1); .inf, .nan, 1:30 refused."""
    written = loader.construct_scalar(node)
    try:
        number = Decimal(written.replace("_", ""))
    except InvalidOperation:
        number = None
    if number is None or not number.is_finite():
        raise yaml.constructor.ConstructorError(
            None, None, f"{written!r} is not a plain decimal number", node.start_mark
        )
    return number


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    mapping: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node)
        if key in mapping:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        mapping[key] = loader.construct_object(value_node)
    return mapping


def _construct_int(loader: _Loader, node: yaml.ScalarNode) -> int:
    """A YAML int, refusing YAML 1.1 base-60 forms where 1:30 would silently mean 90."""
    if ":" in loader.construct_scalar(node):
        raise yaml.constructor.ConstructorError(
            None, None, f"{node.value!r} is not a plain decimal number", node.start_mark
        )
    return int(loader.construct_yaml_int(node))


_Loader.add_constructor("tag:yaml.org,2002:float", _construct_decimal)
_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _read_yaml(path: Path) -> Any:
    """Parse a YAML file, turning syntax errors into an InstrumentError with the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise InstrumentError([Problem(str(path), "(file)", f"cannot read: {error}")]) from error
    try:
        return yaml.load(text, Loader=_Loader)  # _Loader derives from SafeLoader
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        reason = getattr(error, "problem", None) or str(error)
        message = f"YAML syntax error: {reason}"
        raise InstrumentError([Problem(str(path), where, message)]) from error


def _problems_from(path: Path, error: ValidationError) -> list[Problem]:
    """One Problem per pydantic error, at pydantic's own location."""
    return [
        Problem(
            str(path),
            format_loc((*detail["loc"], *detail.get("ctx", {}).get("at", ()))),
            detail["msg"].removeprefix("Value error, "),
        )
        for detail in error.errors()
    ]


def load_instrument_file(path: Path) -> Instrument:
    """Load and validate one instrument file; raise InstrumentError listing every problem."""
    path = Path(path)
    data = _read_yaml(path)
    if not isinstance(data, dict):
        raise InstrumentError([Problem(str(path), "(top level)", "expected a mapping of keys")])
    try:
        instrument = Instrument.model_validate(data)
    except ValidationError as error:
        raise InstrumentError(_problems_from(path, error)) from error
    expected = f"{instrument.id}.v{instrument.version}.yaml"
    if path.name != expected:
        message = f"file name must be {expected!r} to match id and version"
        raise InstrumentError([Problem(str(path), "id", message)])
    return instrument


@functools.cache
def _bundled_files() -> dict[str, dict[int, Path]]:
    """Bundled instrument files by id, then version."""
    found: dict[str, dict[int, Path]] = {}
    for path in sorted(BUNDLED_DIR.glob("*.yaml")):
        match = _FILE_NAME.match(path.name)
        if match:
            found.setdefault(match["id"], {})[int(match["version"])] = path
    return found


@functools.cache
def _load_bundled(instrument_id: str, version: int) -> Instrument:
    """Parse one bundled file once; a version never changes, so caching forever is safe."""
    return load_instrument_file(_bundled_files()[instrument_id][version])


def get_instrument(instrument_id: str, version: int | None = None) -> Instrument:
    """A bundled instrument; the highest version when ``version`` is None (KeyError if unknown)."""
    versions = _bundled_files().get(instrument_id)
    if not versions:
        raise KeyError(f"no bundled instrument {instrument_id!r}")
    if version is None:
        version = max(versions)
    elif version not in versions:
        raise KeyError(f"no bundled instrument {instrument_id!r} version {version}")
    return _load_bundled(instrument_id, version)


def get_instrument_by_key(key: str) -> Instrument:
    """A bundled instrument from its ``id@version`` key (KeyError if unknown or malformed)."""
    instrument_id, sep, version = key.partition("@")
    if not sep or not version.isdigit():
        raise KeyError(f"instrument key must look like 'id@version', got {key!r}")
    return get_instrument(instrument_id, int(version))


def bundled_instruments() -> list[Instrument]:
    """Every bundled instrument, every version, sorted by id then version."""
    return [
        _load_bundled(instrument_id, version)
        for instrument_id, versions in sorted(_bundled_files().items())
        for version in sorted(versions)
    ]


# --------------------------------------------------------------------------- answers


class AnswerError(ValueError):
    """An answer does not fit its item; ``code`` picks the catalog message, ``params`` fill it."""

    def __init__(self, code: str, **params: Any) -> None:
        super().__init__(code)
        self.code = code
        self.params = params


class AnswerValue(BaseModel):
    """One answer to one item, JSON-able (``model_dump(mode="json")``) for storage."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    choice: str | None = None
    points: Decimal | None = None
    deduction: Decimal | None = None
    reason: str | None = None
    text: str | None = None

    @model_validator(mode="after")
    def _one_kind_of_answer(self) -> AnswerValue:
        given = [
            name
            for name in ("choice", "points", "deduction", "text")
            if getattr(self, name) is not None
        ]
        if len(given) != 1:
            raise ValueError("exactly one of choice, points, deduction, text must be given")
        if self.reason is not None and self.deduction is None:
            raise ValueError("reason goes only with deduction")
        return self


_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")


def parse_number(text: str) -> Decimal:
    """Read a typed number: "8", "8.5", full-width "８．５", "8分", "8。5"; else AnswerError."""
    normalized = unicodedata.normalize("NFKC", text).strip().replace("。", ".")
    normalized = normalized.removesuffix("分").strip()
    if not _NUMBER.match(normalized):
        raise AnswerError("not_a_number")
    try:
        return Decimal(normalized)
    except InvalidOperation as error:
        raise AnswerError("not_a_number") from error


def _check_amount(item: Item, amount: Decimal) -> Decimal:
    """A points or deduction amount within 0..max_points on the item's step."""
    if not amount.is_finite():
        raise AnswerError("not_a_number")
    assert item.max_points is not None  # guaranteed by Item validation for these kinds
    if amount < 0 or amount > item.max_points:
        raise AnswerError("out_of_range", min=Decimal(0), max=item.max_points)
    if amount % item.step != 0:
        raise AnswerError("bad_step", step=item.step)
    return amount


def _checked_text(item: Item, text: str | None, *, required: bool) -> str | None:
    """Stripped text within max_length; blank is ``empty`` when required, else None."""
    stripped = (text or "").strip()
    if not stripped:
        if required:
            raise AnswerError("empty")
        return None
    if len(stripped) > item.max_length:
        raise AnswerError("too_long", max_length=item.max_length)
    return stripped


def validate_answer(item: Item, value: AnswerValue) -> AnswerValue:
    """Check an answer against its item and return it normalized; AnswerError(code) if wrong.

    Codes: wrong_kind, unknown_option, not_a_number, out_of_range, bad_step,
    reason_required, too_long, empty.
    """
    if item.kind == "choice":
        if value.choice is None:
            raise AnswerError("wrong_kind")
        if all(option.id != value.choice for option in item.options):
            raise AnswerError("unknown_option")
        return value
    if item.kind == "points":
        if value.points is None:
            raise AnswerError("wrong_kind")
        return AnswerValue(points=_check_amount(item, value.points))
    if item.kind == "deduction":
        if value.deduction is None:
            raise AnswerError("wrong_kind")
        deduction = _check_amount(item, value.deduction)
        reason = _checked_text(item, value.reason, required=False)
        if deduction > 0 and reason is None:
            raise AnswerError("reason_required")
        return AnswerValue(deduction=deduction, reason=reason)
    if value.text is None:
        raise AnswerError("wrong_kind")
    return AnswerValue(text=_checked_text(item, value.text, required=True))


def missing_required(instrument: Instrument, answers: Mapping[str, AnswerValue]) -> list[str]:
    """Ids of required items not answered yet, in instrument order."""
    return [item.id for item in instrument.items if item.required and answers.get(item.id) is None]
