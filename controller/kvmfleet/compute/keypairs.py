"""Key pairs (Nova's os-keypairs, nova/compute/api.py KeypairAPI and nova/crypto.py): kept per user, a
public key imported or a pair generated here. A generated private key is returned once to the caller and
never stored, logged or put in an error. Every function runs inside the caller's transaction.

    import_keypair(session, user_id, project_id, "k1", public_key)          -> KeyPair
    generate_keypair(session, user_id, project_id, "k2", "ssh")             -> (KeyPair, private_key)
    get_keypair(session, user_id, "k1"); list_keypairs(session, user_id, limit, marker)
    delete_keypair(session, user_id, "k1")

Types: ``ssh`` (an OpenSSH public key line; fingerprint: MD5 of the key blob, colon hex, as Nova) and
``x509`` (a PEM certificate; fingerprint: SHA-1 of the certificate, colon hex).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import re

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier
from sqlalchemy import select
from sqlalchemy.orm import Session

from kvmfleet import quota
from kvmfleet.store.errors import AlreadyExists, InvalidInput, NotFound
from kvmfleet.store.models import KeyPair

TYPES = ("ssh", "x509")
# Nova's keypair_name_special_chars (before 2.92): letters, digits, '_', '-' and spaces, not at either end.
_NAME = re.compile(r"^(?! )[_\- a-zA-Z0-9]{1,255}(?<! )$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # a key is text: no control characters but newlines
_UPN_OID = ObjectIdentifier("1.3.6.1.4.1.311.20.2.3")  # Microsoft's User Principal Name (WinRM certificates)


class InvalidKeypair(InvalidInput):
    """Keypair data is invalid (400), with Nova's message."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"Keypair data is invalid: {reason}")


def validate_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidKeypair("Keypair name contains unsafe characters")
    return name


def _colon_hex(digest: str) -> str:
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def ssh_fingerprint(public_key: str) -> str:
    """Nova's generate_fingerprint: the key must load as an OpenSSH public key; MD5 of its blob."""
    try:
        serialization.load_ssh_public_key(public_key.strip().encode("utf-8"))
        blob = base64.b64decode(public_key.split()[1], validate=True)
    except (ValueError, IndexError, TypeError, binascii.Error, UnicodeError, UnsupportedAlgorithm):
        raise InvalidKeypair("failed to generate fingerprint") from None
    return _colon_hex(hashlib.md5(blob, usedforsecurity=False).hexdigest())


def x509_fingerprint(pem: str) -> str:
    try:
        cert = x509.load_pem_x509_certificate(pem.encode("utf-8"))
    except (ValueError, TypeError, UnicodeError, UnsupportedAlgorithm):
        raise InvalidKeypair("failed to generate X509 fingerprint") from None
    return _colon_hex(binascii.hexlify(cert.fingerprint(hashes.SHA1())).decode("ascii"))  # Nova's choice


def fingerprint(public_key: str, key_type: str) -> str:
    if key_type == "x509":
        return x509_fingerprint(public_key)
    return ssh_fingerprint(public_key)


def _generate_ssh() -> tuple[str, str]:
    """An RSA 2048 pair as Nova makes one: the private key in PEM, the public key as an OpenSSH line."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption()).decode("ascii")
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode("ascii")
    return private, f"{public} Generated-by-kvmfleet"


def _generate_x509(user_id: str) -> tuple[str, str]:
    """Nova's generate_winrm_x509_cert: a self-signed client certificate for ``user_id`` (10 years); the
    private key is a password-less PKCS#12 bundle, base64."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, user_id)])
    now = dt.datetime.now(dt.UTC)
    principal = f"{user_id}@localhost".encode()
    if len(principal) > 127:
        raise InvalidKeypair("user id too long for a certificate")
    upn = b"\x0c" + bytes([len(principal)]) + principal  # DER UTF8String, short length form
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName([x509.OtherName(_UPN_OID, upn)]), critical=False)
            .sign(key, hashes.SHA256()))
    bundle = pkcs12.serialize_key_and_certificates(None, key, cert, None, serialization.NoEncryption())
    return base64.b64encode(bundle).decode("ascii"), cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _check_type(key_type: str) -> str:
    if key_type not in TYPES:
        raise InvalidKeypair(f"unknown key pair type {key_type!r} (one of: {', '.join(TYPES)})")
    return key_type


def _add(session: Session, user_id: str, project_id: str | None, name: str, key_type: str, public_key: str,
         fp: str) -> KeyPair:
    if session.scalars(select(KeyPair).where(KeyPair.user_id == user_id, KeyPair.name == name)).first():
        raise AlreadyExists(f"Key pair '{name}' already exists.", keypair=name)
    if project_id is not None:
        quota.check_key_pairs(session, project_id, user_id)
    keypair = KeyPair(name=name, user_id=user_id, project_id=project_id, type=key_type, public_key=public_key,
                      fingerprint=fp)
    session.add(keypair)
    session.flush()
    return keypair


def import_keypair(session: Session, user_id: str, project_id: str | None, name: str, public_key: str,
                   key_type: str = "ssh") -> KeyPair:
    """Import a public key (validated, fingerprinted). AlreadyExists if the user has a pair of that name;
    OverQuota past the project's key_pairs limit."""
    validate_name(name)
    _check_type(key_type)
    if not isinstance(public_key, str) or not public_key.strip() or _CONTROL.search(public_key):
        raise InvalidKeypair("failed to generate fingerprint")
    text = public_key.strip() if key_type == "ssh" else public_key
    return _add(session, user_id, project_id, name, key_type, text, fingerprint(text, key_type))


def generate_keypair(session: Session, user_id: str, project_id: str | None, name: str,
                     key_type: str = "ssh") -> tuple[KeyPair, str]:
    """Generate a pair; returns the stored public half and the private key (returned once, never kept)."""
    validate_name(name)
    _check_type(key_type)
    if session.scalars(select(KeyPair).where(KeyPair.user_id == user_id, KeyPair.name == name)).first():
        raise AlreadyExists(f"Key pair '{name}' already exists.", keypair=name)
    private, public = _generate_x509(user_id) if key_type == "x509" else _generate_ssh()
    return _add(session, user_id, project_id, name, key_type, public, fingerprint(public, key_type)), private


def get_keypair(session: Session, user_id: str, name: str) -> KeyPair:
    keypair = session.scalars(select(KeyPair).where(KeyPair.user_id == user_id, KeyPair.name == name)).first()
    if keypair is None:
        raise NotFound(f"Keypair {name} not found for user {user_id}", keypair=name)
    return keypair


def list_keypairs(session: Session, user_id: str, limit: int | None = None,
                  marker: str | None = None) -> list[KeyPair]:
    """The user's key pairs by name; ``marker`` is the name of the last one seen (unknown: InvalidInput)."""
    stmt = select(KeyPair).where(KeyPair.user_id == user_id).order_by(KeyPair.name)
    if marker is not None:
        if session.scalars(select(KeyPair).where(KeyPair.user_id == user_id, KeyPair.name == marker)).first() is None:
            raise InvalidInput(f"marker [{marker}] not found", marker=marker)
        stmt = stmt.where(KeyPair.name > marker)
    if limit is not None:
        stmt = stmt.limit(limit)
    return list(session.scalars(stmt).all())


def delete_keypair(session: Session, user_id: str, name: str) -> None:
    session.delete(get_keypair(session, user_id, name))
    session.flush()
