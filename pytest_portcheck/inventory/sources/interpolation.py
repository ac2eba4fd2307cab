"""Compose variables: ``${VAR}``, ``${VAR:-default}`` and friends, ``$$``, and the ``.env`` file.

Follows the Compose Specification's interpolation: ``$VAR`` and ``${VAR}``; ``:-``/``-`` (default
when unset or empty / when unset), ``:?``/``?`` (error), ``:+``/``+`` (replacement when set); the
text after an operator may itself hold variables; ``$$`` is a literal ``$``. Unlike Compose, a
variable with no value and no default is an error here, not an empty string: a port that silently
became ``:80`` would declare the wrong thing. Values come only from the mapping the caller gives
(the ``.env`` file, then an explicit environment on top); never from this process's environment.
Imports only the standard library.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_NAME = re.compile(r"[_A-Za-z][_A-Za-z0-9]*")
_OPERATORS = (":-", ":?", ":+", "-", "?", "+")
_ENV_LINE = re.compile(r"(?:export\s+)?(?P<key>[_A-Za-z][_A-Za-z0-9.]*)\s*=\s*(?P<value>.*)")


class InterpolationProblem(ValueError):
    """A variable that cannot be substituted; the message names it and the fix."""


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """``text`` with every variable substituted from ``env``."""
    if "$" not in text:
        return text
    out: list[str] = []
    index = 0
    while True:
        dollar = text.find("$", index)
        if dollar < 0:
            out.append(text[index:])
            return "".join(out)
        out.append(text[index:dollar])
        following = text[dollar + 1 : dollar + 2]
        if following == "$":
            out.append("$")
            index = dollar + 2
        elif following == "{":
            close = _closing_brace(text, dollar + 2)
            out.append(_braced(text[dollar + 2 : close], env))
            index = close + 1
        else:
            name = _NAME.match(text, dollar + 1)
            if name is None:
                raise InterpolationProblem(
                    f"'$' in {text!r} starts no variable: write '$$' for a literal '$' or '${{NAME}}'"
                )
            out.append(_value(name.group(), env, text))
            index = name.end()


def _closing_brace(text: str, start: int) -> int:
    depth = 1
    index = start
    while index < len(text):
        if text.startswith("${", index):
            depth += 1
            index += 2
            continue
        if text[index] == "}":
            depth -= 1
            if depth == 0:
                return index
        index += 1
    raise InterpolationProblem(f"'${{' in {text!r} is never closed: add the '}}'")


def _braced(inner: str, env: Mapping[str, str]) -> str:
    name = _NAME.match(inner)
    if name is None:
        raise InterpolationProblem(
            f"'${{{inner}}}' names no variable: write '${{NAME}}' (letters, digits, _)"
        )
    rest = inner[name.end() :]
    variable = name.group()
    if not rest:
        return _value(variable, env, f"${{{inner}}}")
    operator = next((op for op in _OPERATORS if rest.startswith(op)), None)
    if operator is None:
        raise InterpolationProblem(
            f"'${{{inner}}}': unknown operator after {variable}: use :- - :? ? :+ or +"
        )
    word = rest[len(operator) :]
    value = env.get(variable)
    unset_or_empty = value is None or (operator.startswith(":") and value == "")
    if operator.endswith("-"):
        return interpolate(word, env) if unset_or_empty else str(value)
    if operator.endswith("+"):
        return "" if unset_or_empty else interpolate(word, env)
    if unset_or_empty:
        reason = interpolate(word, env) if word else "it is required"
        state = "is not set" if value is None else "is empty"
        raise InterpolationProblem(
            f"variable {variable} {state} ({reason}): set it in the .env file or pass it in the environment"
        )
    return str(value)


def _value(variable: str, env: Mapping[str, str], written: str) -> str:
    value = env.get(variable)
    if value is None:
        raise InterpolationProblem(
            f"variable {variable} in {written!r} has no value and no default: set it in the .env file, "
            f"pass it in the environment, or give a default: '${{{variable}:-VALUE}}'"
        )
    return value


def parse_env_file(text: str, env: Mapping[str, str]) -> tuple[dict[str, str], list[tuple[int, str]]]:
    """``KEY=VALUE`` lines (``export``, quotes, ``#`` comments); values may use earlier variables.

    Returns the variables and the problems as (1-based line, message with the fix)."""
    values: dict[str, str] = {}
    problems: list[tuple[int, str]] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if number == 1:
            line = line.lstrip("\ufeff")
        if not line or line.startswith("#"):
            continue
        match = _ENV_LINE.fullmatch(line)
        if match is None:
            problems.append((number, f"cannot read {line!r}: write KEY=VALUE"))
            continue
        try:
            values[match.group("key")] = _env_value(match.group("value"), {**values, **env})
        except InterpolationProblem as problem:
            problems.append((number, str(problem)))
    return values, problems


def _env_value(raw: str, env: Mapping[str, str]) -> str:
    if raw[:1] in ("'", '"'):
        quote = raw[0]
        end = raw.find(quote, 1)
        while quote == '"' and end > 0 and raw[end - 1] == "\\":
            end = raw.find(quote, end + 1)
        if end < 0:
            raise InterpolationProblem(f"the quote in {raw!r} is never closed: close it on the same line")
        inner = raw[1:end]
        if quote == "'":
            return inner
        inner = inner.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
        return interpolate(inner, env)
    comment = re.search(r"\s#", raw)
    if comment is not None:
        raw = raw[: comment.start()]
    return interpolate(raw.strip(), env)
