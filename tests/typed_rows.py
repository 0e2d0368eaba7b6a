"""The typed rows the input tests send (unit and integration): one schema of five columns and
the same row as a dict, a dataclass and a pydantic model."""

import dataclasses
import datetime as dt

import pyarrow as pa
import pydantic

SCHEMA = pa.schema([("name", pa.string()), ("n", pa.int64()), ("score", pa.float64()), ("ok", pa.bool_()),
                    ("at", pa.timestamp("ms"))])
AT = dt.datetime(2024, 5, 6, 7, 8, 9)


@dataclasses.dataclass
class Row:
    name: str
    n: int
    score: float
    ok: bool
    at: dt.datetime


class Model(pydantic.BaseModel):
    name: str
    n: int
    score: float
    ok: bool
    at: dt.datetime
