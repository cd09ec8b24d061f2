"""The Asterisk adapter's settings: the `pbx` section of config.yaml (AMI, FastAGI,
the contexts of the sample dialplan, the simulated Asterisk's traffic)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

PositiveFloat = Annotated[float, Field(gt=0)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AmiConfig(_Model):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 5038
    username: str = "contact-center"
    secret: SecretStr = SecretStr("")
    ping_interval_seconds: PositiveFloat = 10.0
    action_timeout_seconds: PositiveFloat = 5.0
    reconnect_max_seconds: PositiveFloat = 30.0


class AgiConfig(_Model):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 4573
    read_timeout_seconds: PositiveFloat = 30.0


class SimulatorConfig(_Model):
    # Calls the simulated PBX places by itself (0: only those placed from the wallboard
    # or the API). Callers are the CRM's customers and unknown numbers.
    calls_per_hour: Annotated[float, Field(ge=0, le=36_000)] = 0
    unknown_share: Annotated[float, Field(ge=0, le=1)] = 0.3
    # What callers key at the IVR's menus, in order: key -> weight.
    menus: list[dict[str, PositiveFloat]] = [{"1": 0.3, "2": 0.6, "3": 0.1}]
    talk_seconds: tuple[PositiveFloat, PositiveFloat] = (30.0, 180.0)
    # Mean seconds a caller waits for an agent before hanging up (abandons).
    patience_seconds: PositiveFloat = 120.0


class PbxConfig(_Model):
    # simulated: a simulated Asterisk on loopback, driven over AMI and FastAGI like a real
    # one (the demo); asterisk: a real one; simulated-inprocess: calls that exist only in
    # the daemon (fast; for tests and benchmarks of what lies above the PBX).
    mode: Literal["simulated", "asterisk", "simulated-inprocess", "off"] = "simulated"
    ami: AmiConfig = AmiConfig()
    agi: AgiConfig = AgiConfig()
    # Asterisk context where inbound calls enter (the call tracker starts calls there).
    inbound_context: str = "cc-inbound"
    # Asterisk context where waiting callers hear music on hold.
    holding_context: str = "cc-holding"
    agent_context: str = "cc-agents"
    simulator: SimulatorConfig = SimulatorConfig()
