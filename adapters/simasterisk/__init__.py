"""A simulated Asterisk 22: real AMI and FastAGI on loopback, running our sample dialplan."""

from adapters.simasterisk.phones import BUSY, NEVER_ANSWERS, PhonePolicy, Phones
from adapters.simasterisk.simulator import SimCall, SimulatedAsterisk

__all__ = ["BUSY", "NEVER_ANSWERS", "PhonePolicy", "Phones", "SimCall", "SimulatedAsterisk"]
