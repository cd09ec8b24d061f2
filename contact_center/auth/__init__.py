"""Who is logged in, and how often they may try: web sessions and the login rate limit."""
