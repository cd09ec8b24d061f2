"""The Asterisk adapter's settings, from the `pbx` section of config.yaml: AMI, FastAGI,
the contexts of the sample dialplan, remote answer. (`pbx.mode` and the rest of the
section are contact_center/config.py's.)"""

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


class PbxConfig(_Model):
    # What the desktop's Accept does to the ringing phone. none: nothing (the agent picks
    # up the phone); pjsip-talk: AMI PJSIPNotify to the device's PJSIP endpoint with
    # `Event: talk`, which desk phones that allow remote control (Yealink, Polycom, Snom,
    # Cisco) take as "answer".
    remote_answer: Literal["none", "pjsip-talk"] = "none"
    ami: AmiConfig = AmiConfig()
    agi: AgiConfig = AgiConfig()
    # Asterisk context where inbound calls enter (the call tracker starts calls there).
    inbound_context: str = "cc-inbound"
    # Asterisk context where waiting callers hear music on hold.
    holding_context: str = "cc-holding"
    agent_context: str = "cc-agents"
