"""Talking to Booker: the client and its resource, tokens, retries, rate limit."""
