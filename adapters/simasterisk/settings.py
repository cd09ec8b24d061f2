"""The simulated Asterisk's settings: `pbx.simulator` in config.yaml."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

PositiveFloat = Annotated[float, Field(gt=0)]


class SimulatorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Calls the simulated PBX places by itself (0: only those placed from the wallboard
    # or the API). Callers are the CRM's customers and unknown numbers.
    calls_per_hour: Annotated[float, Field(ge=0, le=36_000)] = 0
    unknown_share: Annotated[float, Field(ge=0, le=1)] = 0.3
    # What callers key at the IVR's menus, in order: key -> weight.
    menus: list[dict[str, PositiveFloat]] = [{"1": 0.3, "2": 0.6, "3": 0.1}]
    talk_seconds: tuple[PositiveFloat, PositiveFloat] = (30.0, 180.0)
    # Mean seconds a caller waits for an agent before hanging up (abandons).
    patience_seconds: PositiveFloat = 120.0
