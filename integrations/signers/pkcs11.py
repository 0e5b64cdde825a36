"""The PKCS#11 signer: an HSM (or SoftHSM2) signs; the private key never leaves it.

security.md #32: the key stays on the token, the PIN is a secret (never in a message,
repr or log), the public key is read once and cached. The session is opened on first
use, reused, and guarded by a lock (one PKCS#11 session runs one operation at a time).
After ``fork`` the child re-initialises the module (PKCS#11 §5.1: a child must call
C_Initialize; the parent's sessions mean nothing there) and logs in again.

A wrong PIN is tried once: the signer then keeps failing without asking the token again,
because real HSMs lock a user PIN after a few wrong attempts.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
import weakref
from types import ModuleType
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from django.views.decorators.debug import sensitive_variables

from ..exceptions import InvalidConfiguration, SignerUnreachable, SigningError
from .base import (
    EC_ALGORITHMS,
    EDDSA_ALGORITHMS,
    RSA_PKCS1_ALGORITHMS,
    RSA_PSS_ALGORITHMS,
    PublicKey,
    Signer,
    check_algorithm,
    check_raw_ecdsa,
    hash_for,
)

EXTRA = 'pip install "django-integrations[pkcs11]"'
SUPPORTED = (*RSA_PKCS1_ALGORITHMS, *RSA_PSS_ALGORITHMS, *EC_ALGORITHMS, *EDDSA_ALGORITHMS)

# DER of the EC_PARAMS a token reports -> the curve (named-curve OIDs, RFC 5480/8410).
_CURVES: dict[bytes, ec.EllipticCurve | str] = {
    bytes.fromhex("06082a8648ce3d030107"): ec.SECP256R1(),
    bytes.fromhex("06052b81040022"): ec.SECP384R1(),
    bytes.fromhex("06052b81040023"): ec.SECP521R1(),
    bytes.fromhex("06032b6570"): "ed25519",
    bytes.fromhex("06032b6571"): "ed448",
    b"\x13\x0cedwards25519": "ed25519",  # PrintableString form (PKCS#11 3.0 §2.3.5)
    b"\x13\x0aedwards448": "ed448",
}

# Process-wide: one loaded module per path and pid; which PIN logged in to which token
# (a digest, to tell a second signer with a different PIN from one with the same).
_state_lock = threading.Lock()
_modules: dict[str, tuple[int, Any]] = {}
_logins: dict[tuple[str, str], bytes] = {}
_signers: weakref.WeakSet[Pkcs11Signer] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # Locks held by another thread at fork time would never be released in the child.
    global _state_lock
    _state_lock = threading.Lock()
    _logins.clear()
    for signer in list(_signers):
        signer._forget(new_lock=True)


os.register_at_fork(after_in_child=_after_fork_in_child)


def import_pkcs11() -> ModuleType:
    """python-pkcs11, or InvalidConfiguration naming the extra to install."""
    try:
        import pkcs11
    except ImportError:
        raise InvalidConfiguration(
            f"the pkcs11 signer needs python-pkcs11: {EXTRA}", field="signer"
        ) from None
    return pkcs11


def _load_module(p11: ModuleType, path: str) -> Any:
    with _state_lock:
        entry = _modules.get(path)
        if entry is not None and entry[0] == os.getpid():
            return entry[1]
        if entry is not None:
            entry[1].reinitialize()  # forked child: C_Finalize + C_Initialize
            lib = entry[1]
        else:
            lib = p11.lib(path)
        _modules[path] = (os.getpid(), lib)
        return lib


def _pin_digest(pin: str) -> bytes:
    return hashlib.sha256(b"integrations-pkcs11-pin:" + pin.encode("utf-8")).digest()


class Pkcs11Signer(Signer):
    """Signs with the private key labelled ``key_label`` on the token ``token_label``
    of the PKCS#11 ``module`` (a shared library path), logged in with ``pin``.

    RS256/384/512 (CKM_SHAx_RSA_PKCS), PS256/384/512 (CKM_SHAx_RSA_PKCS_PSS, MGF1 with
    the same hash, salt = hash length), ES256/384/512 (the digest is computed here and
    signed with CKM_ECDSA, whose output is already JWS's raw R||S), EdDSA/Ed25519
    (CKM_EDDSA) where the token offers it. Device faults raise SigningError.
    """

    @sensitive_variables("pin")
    def __init__(
        self,
        algorithm: str,
        *,
        module: str,
        token_label: str,
        key_label: str,
        pin: str,
        kid: str = "",
    ) -> None:
        super().__init__(check_algorithm(algorithm, SUPPORTED), kid=kid)
        for field, value in (("module", module), ("token_label", token_label),
                             ("key_label", key_label), ("pin", pin)):
            if not value:
                raise InvalidConfiguration(f"the pkcs11 signer needs {field}", field=field)
        self._p11 = import_pkcs11()
        self.module = module
        self.token_label = token_label
        self.key_label = key_label
        self.__pin = pin
        self._lock = threading.Lock()
        self._session: Any = None
        self._key: Any = None
        self._pid = 0
        self._refused: SigningError | None = None
        self.sign_count = 0  # sign operations sent to the device, for benchmarks and tests
        _signers.add(self)

    def __repr__(self) -> str:
        return f"<Pkcs11Signer {self.algorithm} token={self.token_label!r} key={self.key_label!r}>"

    def _forget(self, *, new_lock: bool = False) -> None:
        # The handles are dropped, not closed: after fork they belong to the parent.
        if new_lock:
            self._lock = threading.Lock()
        self._session = None
        self._key = None

    def close(self) -> None:
        """Close the session (logging out if this signer logged in)."""
        with self._lock:
            session, self._session, self._key = self._session, None, None
            if session is not None and self._pid == os.getpid():
                try:
                    session.close()
                except self._p11.PKCS11Error:
                    pass

    # -- opening ----------------------------------------------------------------------
    def _where(self) -> str:
        return f"PKCS#11 token {self.token_label!r}"

    def _private_key(self) -> Any:
        """The private key handle, opening module, session and login on first use.
        The caller holds ``self._lock``."""
        if self._refused is not None:
            raise self._refused
        if self._pid != os.getpid():
            self._forget()
        if self._key is None:
            self._open()
        return self._key

    def _open(self) -> None:
        p11 = self._p11
        if not os.path.isfile(self.module):
            raise SigningError(f"PKCS#11 module {self.module} does not exist", field="module")
        try:
            lib = _load_module(p11, self.module)
            token = lib.get_token(token_label=self.token_label)
        except p11.NoSuchToken:
            raise SigningError(
                f"{self._where()} is not present in {self.module}", field="token_label"
            ) from None
        except p11.MultipleTokensReturned:
            raise SigningError(
                f"more than one {self._where()} in {self.module}", field="token_label"
            ) from None
        except p11.PKCS11Error as exc:
            raise SigningError(
                f"PKCS#11 module {self.module} cannot be used ({type(exc).__name__})",
                field="module",
            ) from None
        session = self._login(token)
        try:
            key = session.get_key(
                object_class=p11.ObjectClass.PRIVATE_KEY, label=self.key_label
            )
        except p11.NoSuchKey:
            raise SigningError(
                f"{self._where()} has no private key labelled {self.key_label!r}",
                field="key_label",
            ) from None
        except p11.MultipleObjectsReturned:
            raise SigningError(
                f"{self._where()} has several private keys labelled {self.key_label!r}",
                field="key_label",
            ) from None
        except p11.PKCS11Error as exc:
            raise SigningError(
                f"{self._where()}: key lookup failed ({type(exc).__name__})"
            ) from None
        self._check_key_type(key.key_type)
        self._session, self._key, self._pid = session, key, os.getpid()

    def _login(self, token: Any) -> Any:
        p11 = self._p11
        login = (self.module, self.token_label)
        digest = _pin_digest(self.__pin)
        try:
            session = token.open(user_pin=self.__pin)
        except p11.UserAlreadyLoggedIn:
            # PKCS#11 logs in per application: another signer in this process already
            # did. Only the same PIN may share that login.
            with _state_lock:
                known = _logins.get(login)
            if known is None or not hmac.compare_digest(known, digest):
                self._refused = SigningError(
                    f"{self._where()} is logged in with a different PIN; wrong PIN",
                    field="pin",
                )
                raise self._refused from None
            return token.open()
        except (p11.PinIncorrect, p11.PinInvalid, p11.PinLenRange):
            self._refused = SigningError(
                f"{self._where()} refused the PIN (wrong PIN)", field="pin"
            )
            raise self._refused from None
        except (p11.PinLocked, p11.PinExpired) as exc:
            self._refused = SigningError(
                f"{self._where()}: the PIN is {type(exc).__name__[3:]}", field="pin"
            )
            raise self._refused from None
        except p11.PKCS11Error as exc:
            raise SigningError(f"{self._where()}: login failed ({type(exc).__name__})") from None
        with _state_lock:
            _logins[login] = digest
        return session

    def _check_key_type(self, key_type: Any) -> None:
        kinds = self._p11.KeyType
        algorithm = self.algorithm
        if algorithm in RSA_PKCS1_ALGORITHMS + RSA_PSS_ALGORITHMS:
            wanted, name = kinds.RSA, "an RSA key"
        elif algorithm in EC_ALGORITHMS:
            wanted, name = kinds.EC, f"an EC key on {EC_ALGORITHMS[algorithm][0]}"
        else:
            wanted, name = kinds.EC_EDWARDS, "an Edwards-curve key"
        if key_type != wanted:
            found = getattr(key_type, "name", str(key_type))
            raise SigningError(
                f"{algorithm} needs {name}; {self.key_label!r} on {self._where()} is {found}",
                field="key_label",
            )

    # -- public key ---------------------------------------------------------------------
    def _read_public_key(self) -> PublicKey:
        p11 = self._p11
        attribute = p11.Attribute
        with self._lock:
            private = self._private_key()
            try:
                try:
                    source = self._session.get_key(
                        object_class=p11.ObjectClass.PUBLIC_KEY, label=self.key_label
                    )
                except p11.NoSuchKey:
                    source = private  # RSA private keys carry modulus and exponent too
                if source.key_type == p11.KeyType.RSA:
                    n = int.from_bytes(source[attribute.MODULUS], "big")
                    e = int.from_bytes(source[attribute.PUBLIC_EXPONENT], "big")
                    return rsa.RSAPublicNumbers(e, n).public_key()
                params = bytes(source[attribute.EC_PARAMS])
                point = bytes(source[attribute.EC_POINT])
            except p11.PKCS11Error as exc:
                raise SigningError(
                    f"{self._where()}: the public key of {self.key_label!r} cannot be read "
                    f"({type(exc).__name__})"
                ) from None
        return _ec_public_key(params, point, self._where())

    # -- signing ----------------------------------------------------------------------
    def _mechanism(self, signing_input: bytes) -> tuple[Any, Any, bytes]:
        mechanisms = self._p11.Mechanism
        algorithm = self.algorithm
        if algorithm in EDDSA_ALGORITHMS:
            return mechanisms.EDDSA, None, signing_input
        bits = algorithm[-3:]
        if algorithm in EC_ALGORITHMS:
            digest = hashes.Hash(hash_for(algorithm))
            digest.update(signing_input)
            return mechanisms.ECDSA, None, digest.finalize()
        if algorithm in RSA_PSS_ALGORITHMS:
            sha = getattr(mechanisms, f"SHA{bits}")
            mgf = getattr(self._p11.MGF, f"SHA{bits}")
            param = (sha, mgf, int(bits) // 8)
            return getattr(mechanisms, f"SHA{bits}_RSA_PKCS_PSS"), param, signing_input
        return getattr(mechanisms, f"SHA{bits}_RSA_PKCS"), None, signing_input

    def sign(self, signing_input: bytes) -> bytes:
        p11 = self._p11
        mechanism, param, data = self._mechanism(signing_input)
        # Session faults (token reinserted, module restarted) get one fresh session.
        stale = (
            p11.SessionHandleInvalid,
            p11.SessionClosed,
            p11.KeyHandleInvalid,
            p11.ObjectHandleInvalid,
            p11.UserNotLoggedIn,
            p11.DeviceRemoved,
            p11.TokenNotPresent,
        )
        for attempt in (1, 2):
            with self._lock:
                key = self._private_key()
                try:
                    signature = bytes(key.sign(data, mechanism=mechanism, mechanism_param=param))
                    self.sign_count += 1
                    break
                except stale as exc:
                    self._forget()
                    if attempt == 2:
                        raise SignerUnreachable(
                            f"{self._where()} is unavailable ({type(exc).__name__})"
                        ) from None
                except p11.MechanismInvalid:
                    raise SigningError(
                        f"{self._where()} does not support {self.algorithm} "
                        f"({getattr(mechanism, 'name', mechanism)})"
                    ) from None
                except p11.PKCS11Error as exc:
                    raise SigningError(
                        f"{self._where()} refused to sign with {self.key_label!r} "
                        f"({type(exc).__name__})"
                    ) from None
        if self.algorithm in EC_ALGORITHMS:
            return check_raw_ecdsa(signature, self.algorithm)
        return signature


def _der_octets(value: bytes) -> bytes:
    """The content of a DER OCTET STRING (tag 0x04), as CKA_EC_POINT holds it."""
    if len(value) < 2 or value[0] != 0x04:
        raise ValueError("not an OCTET STRING")
    length, offset = value[1], 2
    if length & 0x80:
        count = length & 0x7F
        length, offset = int.from_bytes(value[2 : 2 + count], "big"), 2 + count
    if offset + length != len(value):
        raise ValueError("bad OCTET STRING length")
    return value[offset:]


def _ec_public_key(params: bytes, point: bytes, where: str) -> PublicKey:
    curve = _CURVES.get(params)
    if curve is None:
        raise SigningError(f"{where}: the key is on a curve this app does not support")
    try:
        if isinstance(curve, str):
            size = 32 if curve == "ed25519" else 57
            raw = point if len(point) == size else _der_octets(point)
            if curve == "ed25519":
                return ed25519.Ed25519PublicKey.from_public_bytes(raw)
            return ed448.Ed448PublicKey.from_public_bytes(raw)
        size = 1 + 2 * ((curve.key_size + 7) // 8)
        raw = point if len(point) == size and point[0] == 0x04 else _der_octets(point)
        return ec.EllipticCurvePublicKey.from_encoded_point(curve, raw)
    except ValueError:
        raise SigningError(f"{where}: the token returned a malformed public key") from None
