"""The one-line message helpers of pwrun.errors, above all `describe_validation`."""

from __future__ import annotations

from typing import Annotated

import pytest
from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

from pwrun.errors import (
    SHOWN_CHARS,
    describe_validation,
    dotted,
    first_line,
    shorten_quote,
    shown,
    validation_message,
)


def _plain(value: str) -> str:
    if not value.isalnum():
        raise ValueError(f"{value!r} is not allowed here")
    return value


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")

    size: int
    names: list[Annotated[str, AfterValidator(_plain)]] = []


class Outer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, AfterValidator(_plain)]
    inner: Inner


def failure(data: object) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        Outer.model_validate(data)
    return caught.value


def test_every_problem_on_one_line_with_its_path() -> None:
    exc = failure({"name": "ok", "inner": {"size": "big", "names": ["a", "b c"]}})
    assert describe_validation(exc) == (
        "inner.size: Input should be a valid integer, unable to parse string as an integer; "
        "inner.names.1: 'b c' is not allowed here"
    )


def test_first_only() -> None:
    exc = failure({"name": "no way", "inner": {}})
    assert describe_validation(exc, first=True) == "name: 'no way' is not allowed here"


def test_prefix_and_part_names() -> None:
    exc = failure({"name": "ok", "inner": {"size": 1, "extra": 2}})
    described = describe_validation(exc, ("sources", 0), name=lambda part: f"<{part}>")
    assert described == "<sources>.<0>.<inner>.<extra>: Extra inputs are not permitted"


def test_where_names_the_whole_input() -> None:
    exc = failure("not a mapping")
    assert describe_validation(exc).startswith("input: Input should be")
    assert describe_validation(exc, where=lambda path: path or "the record").startswith(
        "the record: "
    )
    quoted = describe_validation(failure({"inner": {"size": 1}}), where=lambda p: f"field {p!r}")
    assert quoted == "field 'name': Field required"


def test_rename_and_explain() -> None:
    exc = failure({"name": "ok", "inner": {"size": "x"}})
    described = describe_validation(
        exc,
        rename=lambda loc: ("Legacy", *loc[1:]),
        explain=lambda error: error["type"],
    )
    assert described == "Legacy.size: int_parsing"


def test_messages_lose_pydantics_prefix_and_long_values() -> None:
    long = "x y" * 100
    error = failure({"name": long, "inner": {"size": 1}}).errors()[0]
    assert error["msg"].startswith("Value error, ")
    message = validation_message(error)
    assert message == f"{shown(long)} is not allowed here"
    assert len(shown(long)) == SHOWN_CHARS


def test_small_helpers() -> None:
    assert shown("a\nb") == "'a\\nb'"
    assert shorten_quote(f"bad: {'z' * 200!r}", "z" * 200).endswith("...'")
    assert dotted(("a", 0, "b")) == "a.0.b"
    assert first_line(RuntimeError("one\ntwo")) == "one"
    assert first_line(RuntimeError("")) == "RuntimeError"
    assert first_line(RuntimeError("y" * 400), limit=10) == "yyyyyyy..."
