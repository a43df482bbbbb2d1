"""Upstreams: upstream{} blocks, their peers, balancing and keepalive pools."""
