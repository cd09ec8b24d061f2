"""A real Asterisk behind the telephony port: AMI for calls, FastAGI for the IVR."""
