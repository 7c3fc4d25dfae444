"""Veto conditions (高压线, seed 004): a branch under one cannot be proposed 好."""

from __future__ import annotations

# Code → the names organizers type for it (simplified and traditional, long and short).
# 高压线: 不合格党员、违纪违法党员、超计划生育、重大治安和刑事案件.
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
