"""Where a notebook departs from its paper or the paper's code, declared beside the config field that decides it.

Each paper package lists its departures as `DEVIATIONS`. A notebook's "Remaining deviations" section is rendered
from that list with the run's own values (and kept in the run record as deviations.md), and a test checks every
entry against its Config class: the default it states is the field's default and the other variant it names is
accepted. Hand-written prose drifted from the code (a notebook said flips were off while its loader flipped); a
description built from the config cannot.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from lesionkit.config import Config, ConfigError

_WHOSE = ("paper", "code", "neither", "both")
_NO_OPTION = object()


@dataclass(frozen=True)
class Deviation:
    """One departure, in one line of the notebook.

    `field` is the config field that chooses (None: fixed, nothing to choose); `default` is that field's default as
    this line states it and `follows` whose variant the default is ("paper", "code", "neither"); `option` is the
    kept other variant's value, if one is kept."""

    topic: str
    text: str
    field: str | None = None
    default: Any = None
    follows: str = "neither"
    option: Any = _NO_OPTION

    def __post_init__(self) -> None:
        if self.follows not in _WHOSE:
            raise ValueError(f"Deviation {self.topic!r}: follows must be one of {_WHOSE}, got {self.follows!r}")

    @property
    def has_option(self) -> bool:
        return self.option is not _NO_OPTION


def problems(config_cls: type[Config], items: tuple[Deviation, ...]) -> list[str]:
    """What in `items` contradicts `config_cls`: an unknown field, a default that is not the field's, an option the
    config refuses. Empty when every line is true of the code."""
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    found: list[str] = []
    for item in items:
        if item.field is None:
            continue
        if item.field not in fields:
            found.append(f"{item.topic}: {config_cls.__name__} has no field {item.field!r}")
            continue
        actual = fields[item.field].default
        if actual != item.default:
            found.append(f"{item.topic}: says {item.field}={item.default!r} by default, "
                         f"{config_cls.__name__} has {actual!r}")
        if item.has_option:
            try:
                config_cls.from_params({item.field: item.option})
            except ConfigError as err:
                found.append(f"{item.topic}: option {item.field}={item.option!r} is refused: {err}")
    return found


def _value(value: Any) -> str:
    return f"`{value}`" if not isinstance(value, str) else f'`"{value}"`'


def render(items: tuple[Deviation, ...], cfg: Config | None = None) -> str:
    """The notebook's deviation list as Markdown: each line, the field that chooses it, its default and option,
    and, given a run's config, the value that run used."""
    lines = []
    for item in items:
        line = f"- **{item.topic}.** {item.text}"
        if item.field is not None:
            whose = {"paper": "the paper's", "code": "the code's", "neither": "neither's",
                     "both": "the paper's and the code's"}[item.follows]
            line += f" Default `{item.field}={_value(item.default).strip('`')}` ({whose})"
            if item.has_option:
                line += f"; option `{item.field}={_value(item.option).strip('`')}`"
            if cfg is not None:
                line += f"; this run: `{item.field}={_value(getattr(cfg, item.field)).strip('`')}`"
            line += "."
        lines.append(line)
    return "\n".join(lines)


def show_deviations(run: Any, items: tuple[Deviation, ...]) -> Any:
    """Write the run's deviation list to deviations.md in its record and return it for the notebook to display."""
    from IPython.display import Markdown  # lazy: config cells import this module

    from lesionkit.utils.files import atomic_write

    text = render(items, run.cfg)
    atomic_write(run.dir / "deviations.md", text + "\n")
    return Markdown(text)
