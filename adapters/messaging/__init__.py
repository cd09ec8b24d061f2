"""Text channels (email, SMS, web chat): what they share between their adapters and the
router. `model` is the vocabulary each channel adapter speaks; `intake` turns an inbound
message into a routed contact or a message on an open one; `delivery` sends what agents
write, from the store, with retries."""
