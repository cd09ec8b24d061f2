"""ivr_flows."""
