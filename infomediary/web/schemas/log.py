"""Proofs of the access log as the API answers them (hashes in standard base64)."""

from __future__ import annotations

from marshmallow import Schema, fields


class InclusionProofSchema(Schema):
    index = fields.Int(required=True)
    size = fields.Int(required=True)
    proof = fields.List(
        fields.Str(),
        required=True,
        metadata={"description": "RFC 9162 inclusion path, leaf to root, base64 SHA-256"},
    )


class ConsistencyProofSchema(Schema):
    from_ = fields.Int(required=True, data_key="from")
    to = fields.Int(required=True)
    proof = fields.List(
        fields.Str(),
        required=True,
        metadata={"description": "RFC 9162 consistency proof, base64 SHA-256"},
    )
