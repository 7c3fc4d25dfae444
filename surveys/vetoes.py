"""Veto conditions (高压线, seed 004): a branch under one cannot be proposed 好.

The four conditions are data, in the order the source lists them (S4, quoted in
docs/rules.md §5.6: “凡是有不合格党员、违纪违法党员、超计划生育及重大治安和刑事案件发生这四条中的
任何一条，不能申报‘五好’基层党组织”). Their number (1–4) is that order; their labels and full
texts are in the message catalog under ``veto.<code>``, ``veto.short.<code>`` and
``veto.full.<code>``.
"""

from __future__ import annotations

from collections.abc import Mapping

# Code → the names organizers type for it (simplified and traditional, long and short).
# The first name of each is the source's own word.
VETO_CONDITIONS: dict[str, tuple[str, ...]] = {
    "unqualified_member": ("不合格党员", "不合格黨員"),
    "disciplinary_violation": ("违纪违法党员", "違紀違法黨員", "违纪违法"),
    "excess_births": ("超计划生育", "超計劃生育"),
    "major_crime": ("重大治安和刑事案件", "重大治安和刑事案件发生", "重大治安", "刑事案件"),
}


def parse_veto_condition(text: str) -> str | None:
    """The veto code for a code or a Chinese name (simplified or traditional), else None."""
    wanted = (text or "").strip()
    for code, names in VETO_CONDITIONS.items():
        if wanted == code or wanted in names:
            return code
    return None


def veto_number(code: str) -> int:
    """The condition's number in the source's order (1-based); ValueError for no condition."""
    return list(VETO_CONDITIONS).index(code) + 1


def veto_by_number(number: int) -> str | None:
    """The code of the condition numbered ``number`` (1-based), else None."""
    codes = list(VETO_CONDITIONS)
    return codes[number - 1] if 1 <= number <= len(codes) else None


def match_veto_conditions(
    text: str, conditions: Mapping[str, tuple[str, ...]] = VETO_CONDITIONS
) -> list[str]:
    """Every condition the typed text may mean, in the source's order.

    Its number, its code or one of its names gives that one; otherwise each condition one of
    whose names (or code) begins with the text, so 违纪 means 违纪违法党员. More than one
    means the text is ambiguous: the caller shows the picker rather than guess.
    """
    wanted = (text or "").strip().lower()
    if not wanted:
        return []
    codes = list(conditions)
    if wanted.isdigit():
        number = int(wanted)
        return [codes[number - 1]] if 1 <= number <= len(codes) else []
    for code, names in conditions.items():
        if wanted == code or wanted in (name.lower() for name in names):
            return [code]
    return [
        code
        for code, names in conditions.items()
        if any(name.lower().startswith(wanted) for name in (code, *names))
    ]
