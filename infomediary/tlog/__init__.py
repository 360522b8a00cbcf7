"""The transparency log's pure parts: the RFC 9162 Merkle tree and its proofs.

Nothing here imports Flask, SQLAlchemy or the rest of the app, so an offline verifier can
use it with the standard library alone.
"""
