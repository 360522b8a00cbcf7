"""Key management and field encryption: the keyring (KEKs and keyed-hash keys) and the vault."""

from infomediary.crypto.keyring import FileKeyring, KeyringError
from infomediary.crypto.vault import CustomerKey, DecryptionError, Vault

__all__ = ["CustomerKey", "DecryptionError", "FileKeyring", "KeyringError", "Vault"]
