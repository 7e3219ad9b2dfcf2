"""VOMS: the FQANs of a client, read from the attribute certificate (AC) inside its proxy and verified here.

Apache (mod_ssl) verifies the client's certificate chain against the CA directory and exports it
(``SSL_CLIENT_CERT`` plus ``SSL_CLIENT_CERT_CHAIN_n``), but knows nothing of VOMS. The AC is an RFC 5755
attribute certificate that a VOMS server signed and ``voms-proxy-init`` put into a non-critical extension of
the proxy; it names the holder (the user's end-entity certificate, by issuer and serial), a validity window and
the FQANs. Nothing in it is trusted before:

- its signature verifies with a configured VOMS server certificate: a certificate file in the vomsdir, or the
  certificate the AC carries itself when a ``.lsc`` file of its VO lists that certificate's subject and issuer
  DNs and the certificate chains to a CA of the CA directory;
- now lies in its validity window (and in the server certificate's);
- its holder is the end-entity certificate of the very chain Apache verified;
- every FQAN belongs to the AC's own VO (a VOMS server of one VO can never grant roles in another).

Anything else — no AC, garbage DER, an unknown signer, a wrong holder — gives no FQANs and one log line,
never an error: the caller is still who their certificate says, just without VO roles.

The vomsdir has the layout of ``/etc/grid-security/vomsdir``: ``<vo>/<host>.lsc`` files (first line the
server's subject DN, second its CA's DN, in slash form; more chains separated by a ``------ NEXT CHAIN ------``
line) and/or PEM certificate files, in ``<vo>/`` (trusted for that VO) or at the top (trusted for any VO).
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from asn1crypto import cms, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

log = logging.getLogger("pandasrv.web.voms")

AC_EXTENSION = x509.ObjectIdentifier("1.3.6.1.4.1.8005.100.100.5")  # in the proxy: the ACs
FQAN_ATTRIBUTE = "1.3.6.1.4.1.8005.100.100.4"  # in the AC: policy authority "vo://host:port" and the FQANs
AC_CERTS_EXTENSION = "1.3.6.1.4.1.8005.100.100.10"  # in the AC: the VOMS server's certificate (lsc mode)
# AC extensions VOMS writes that do not restrict use; any other critical one (targets, say) refuses the AC
KNOWN_AC_EXTENSIONS = {"authority_key_identifier", "no_rev_avail", "2.5.29.56", AC_CERTS_EXTENSION,
                       "1.3.6.1.4.1.8005.100.100.11"}
CLOCK_SKEW = datetime.timedelta(minutes=5)  # between the VOMS server's clock and ours
CACHE_SECONDS = 60.0  # a chain's verdict (and its log line) is reused this long
NEXT_CHAIN = "NEXT CHAIN"
SLASH_NAMES = {"2.5.4.3": "CN", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.10": "O", "2.5.4.11": "OU",
               "0.9.2342.19200300.100.1.25": "DC", "0.9.2342.19200300.100.1.1": "UID",
               "1.2.840.113549.1.9.1": "emailAddress", "2.5.4.5": "serialNumber"}


class VomsError(Exception):
    """The chain carries no usable AC; the message is the log line's reason."""


class _ACs(core.SequenceOf):
    _child_spec = cms.AttributeCertificateV2


class _ACSequence(core.SequenceOf):
    """The proxy extension: a sequence of AC lists (one per VO the proxy was made for)."""

    _child_spec = _ACs


class _Certificates(core.SequenceOf):
    _child_spec = asn1_x509.Certificate


class _ACCertificates(core.Sequence):
    _fields = [("certificates", _Certificates)]


def slash_dn(name: x509.Name) -> str:
    """A DN in the slash form of ``.lsc`` files and of mod_ssl's ``LegacyDNStringFormat``."""
    return "".join(f"/{SLASH_NAMES.get(a.oid.dotted_string, a.oid.dotted_string)}={a.value!s}" for a in name)


def _is_proxy_of(cert: x509.Certificate) -> bool:
    """A proxy's subject is its issuer's plus one CN (RFC 3820 and legacy Globus proxies alike)."""
    subject, issuer = list(cert.subject.rdns), list(cert.issuer.rdns)
    return (len(subject) == len(issuer) + 1 and subject[:-1] == issuer
            and all(a.oid == x509.NameOID.COMMON_NAME for a in subject[-1]))


def chain_from_environ(environ: Mapping[str, Any]) -> list[x509.Certificate]:
    """The client's chain, leaf first, as mod_ssl exported it; empty unless mod_ssl verified it.

    Only WSGI variables are read: an HTTP header arrives as ``HTTP_…`` and can never fill these."""
    if environ.get("SSL_CLIENT_VERIFY") != "SUCCESS" or not environ.get("SSL_CLIENT_CERT"):
        return []
    texts = [environ["SSL_CLIENT_CERT"]]
    index = 0
    while environ.get(f"SSL_CLIENT_CERT_CHAIN_{index}"):
        texts.append(environ[f"SSL_CLIENT_CERT_CHAIN_{index}"])
        index += 1
    try:
        return [x509.load_pem_x509_certificate(str(text).encode()) for text in texts]
    except ValueError:
        return []


def _verify_signature(public_key: Any, signature: bytes, data: bytes, algorithm: Any) -> None:
    """Check ``signature`` over ``data`` with an RSA (PKCS#1 v1.5) or ECDSA key; raise VomsError otherwise."""
    try:
        digest = getattr(hashes, algorithm.hash_algo.upper())()
        if isinstance(public_key, rsa.RSAPublicKey) and algorithm.signature_algo == "rsassa_pkcs1v15":
            public_key.verify(signature, data, padding.PKCS1v15(), digest)
        elif isinstance(public_key, ec.EllipticCurvePublicKey) and algorithm.signature_algo == "ecdsa":
            public_key.verify(signature, data, ec.ECDSA(digest))
        else:
            raise VomsError(f"unsupported AC signature algorithm {algorithm['algorithm'].native}")
    except InvalidSignature:
        raise VomsError("the AC signature does not verify") from None
    except (AttributeError, ValueError, UnsupportedAlgorithm) as exc:
        raise VomsError(f"unsupported AC signature algorithm: {exc}") from None


def _valid_at(cert: x509.Certificate, now: datetime.datetime) -> bool:
    return cert.not_valid_before_utc <= now <= cert.not_valid_after_utc


def _read_lsc(path: Path) -> list[tuple[str, ...]]:
    """The DN chains of one ``.lsc`` file: subject, issuer, issuer's issuer, …"""
    chains: list[list[str]] = [[]]
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = line.strip()
        if NEXT_CHAIN in line:
            chains.append([])
        elif line and not line.startswith("#"):
            chains[-1].append(line)
    return [tuple(chain) for chain in chains if len(chain) >= 2]


def _read_certificates(path: Path) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(path.read_bytes())
    except (ValueError, OSError):
        return []


@dataclass
class VomsTrust:
    """What the vomsdir and the CA directory say, loaded once per process."""

    server_certs: dict[str | None, list[x509.Certificate]] = field(default_factory=dict)  # VO (None: any) -> certs
    lsc: dict[str, list[tuple[str, ...]]] = field(default_factory=dict)  # VO -> DN chains
    cas: list[x509.Certificate] = field(default_factory=list)

    @classmethod
    def load(cls, voms_dir: Path, ca_dir: Path) -> VomsTrust:
        trust = cls()
        if not voms_dir.is_dir():
            log.warning("vomsdir %s is not a directory: no VOMS attribute will verify", voms_dir)
            return trust
        for path in sorted(voms_dir.rglob("*")):
            if not path.is_file():
                continue
            vo = "/".join(path.relative_to(voms_dir).parts[:-1]) or None
            if path.suffix == ".lsc":
                if vo:
                    trust.lsc.setdefault(vo, []).extend(_read_lsc(path))
            else:
                trust.server_certs.setdefault(vo, []).extend(_read_certificates(path))
        if ca_dir.is_dir():
            for path in sorted(ca_dir.iterdir()):
                if path.is_file() and not path.name.endswith((".r0", ".crl_url", ".signing_policy", ".namespaces")):
                    trust.cas.extend(c for c in _read_certificates(path) if c not in trust.cas)
        return trust


@dataclass(frozen=True)
class Attributes:
    """One verified AC: its VO, FQANs and the end of its validity."""

    vo: str
    fqans: tuple[str, ...]
    not_after: datetime.datetime


def _vo_and_fqans(info: cms.AttributeCertificateInfoV2) -> tuple[str, tuple[str, ...]]:
    for attribute in info["attributes"]:
        if attribute["type"].dotted != FQAN_ATTRIBUTE:
            continue
        for value in attribute["values"]:
            syntax = cms.IetfAttrSyntax.load(value.dump())
            authority = [str(name.native) for name in syntax["policy_authority"] or []]
            vo = authority[0].split("://", 1)[0] if authority and "://" in authority[0] else ""
            fqans = tuple(v.native.decode() if isinstance(v.native, bytes) else str(v.native) for v in syntax["values"])
            if not vo or not fqans:
                raise VomsError("the AC's VOMS attribute has no VO or no FQANs")
            strays = [f for f in fqans if f != f"/{vo}" and not f.startswith(f"/{vo}/")]
            if strays:
                raise VomsError(f"the AC of VO {vo} names FQANs of another VO: {strays}")
            return vo, fqans
    raise VomsError("the AC has no VOMS attribute")


def _end_entity(chain: list[x509.Certificate]) -> x509.Certificate:
    """The user's own certificate: the first one (leaf upwards) that is not a proxy of the next."""
    for cert, issuer in zip(chain, chain[1:]):
        if not (_is_proxy_of(cert) and cert.issuer == issuer.subject):
            return cert
    if chain and not _is_proxy_of(chain[-1]):
        return chain[-1]
    raise VomsError("the chain has no end-entity certificate")


def _check_holder(info: cms.AttributeCertificateInfoV2, holder: x509.Certificate) -> None:
    """The AC names the end-entity certificate by serial and DN (the issuer's, as RFC 5755 says, or the
    subject's, as VOMS's own tools write it; VOMS's verifier accepts both)."""
    base = info["holder"]["base_certificate_id"]
    if not base:
        raise VomsError("the AC holder has no base certificate id")
    names = [n.chosen for n in base["issuer"] if n.name == "directory_name"]
    own = asn1_x509.Certificate.load(holder.public_bytes(serialization.Encoding.DER))
    if base["serial"].native != holder.serial_number or not any(n in (own.issuer, own.subject) for n in names):
        raise VomsError(f"the AC holder is not the chain's certificate {slash_dn(holder.subject)}")


def _ac_certificates(info: cms.AttributeCertificateInfoV2) -> list[x509.Certificate]:
    for extension in info["extensions"] or []:
        if extension["extn_id"].dotted == AC_CERTS_EXTENSION:
            certs = _ACCertificates.load(extension["extn_value"].contents)["certificates"]
            return [x509.load_der_x509_certificate(c.dump()) for c in certs]
    return []


class VomsVerifier:
    """Verifies the ACs of client chains against a :class:`VomsTrust`; caches each chain's verdict."""

    def __init__(self, trust: VomsTrust) -> None:
        self.trust = trust
        self._cache: dict[bytes, tuple[float, tuple[str, ...]]] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_paths(cls, voms_dir: str, ca_dir: str) -> VomsVerifier:
        return cls(VomsTrust.load(Path(voms_dir), Path(ca_dir)))

    def fqans(self, environ: Mapping[str, Any]) -> tuple[str, ...]:
        """The verified FQANs of the request's client chain; () (and one log line) when there are none."""
        chain = chain_from_environ(environ)
        if not chain:
            return ()
        key = hashlib.sha256(b"".join(c.fingerprint(hashes.SHA256()) for c in chain)).digest()
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
            if hit and hit[0] > now:
                return hit[1]
        try:
            found = self.verify_chain(chain, datetime.datetime.now(datetime.timezone.utc))
            fqans = tuple(f for attributes in found for f in attributes.fqans)
            seconds = min([CACHE_SECONDS, *((a.not_after - datetime.datetime.now(datetime.timezone.utc))
                                             .total_seconds() for a in found)])
        except VomsError as exc:
            log.info("no VOMS attributes for %s: %s", slash_dn(chain[0].subject), exc)
            fqans, seconds = (), CACHE_SECONDS
        with self._lock:
            if len(self._cache) > 10000:
                self._cache.clear()
            self._cache[key] = (now + max(0.0, seconds), fqans)
        return fqans

    def verify_chain(self, chain: list[x509.Certificate], now: datetime.datetime) -> list[Attributes]:
        """Every verified AC of the chain (leaf first); raise VomsError when there is none."""
        holder = _end_entity(chain)
        for cert in chain:
            if cert is holder:
                break
            try:
                raw = cert.extensions.get_extension_for_oid(AC_EXTENSION).value.value  # type: ignore[attr-defined]
            except x509.ExtensionNotFound:
                continue
            try:
                acs = [ac for group in _ACSequence.load(raw) for ac in group]
                found = [self.verify_ac(ac, holder, now) for ac in acs]
            except (ValueError, TypeError, KeyError) as exc:
                raise VomsError(f"the AC does not parse: {exc}") from None
            if not found:
                raise VomsError("the VOMS extension holds no AC")
            return found
        raise VomsError("the chain carries no VOMS attribute certificate")

    def verify_ac(self, ac: cms.AttributeCertificateV2, holder: x509.Certificate,
                  now: datetime.datetime) -> Attributes:
        """One AC's checks: structure, validity window, holder, VO attribute, critical extensions, signer."""
        info = ac["ac_info"]
        if info["version"].native != "v2":
            raise VomsError("the AC is not a version 2 attribute certificate")
        period = info["att_cert_validity_period"]
        not_before, not_after = period["not_before_time"].native, period["not_after_time"].native
        if now + CLOCK_SKEW < not_before:
            raise VomsError(f"the AC is not valid before {not_before:%Y-%m-%d %H:%M:%S} UTC")
        if now - CLOCK_SKEW > not_after:
            raise VomsError(f"the AC expired at {not_after:%Y-%m-%d %H:%M:%S} UTC")
        _check_holder(info, holder)
        vo, fqans = _vo_and_fqans(info)
        for extension in info["extensions"] or []:
            if extension["critical"].native and extension["extn_id"].native not in KNOWN_AC_EXTENSIONS:
                raise VomsError(f"the AC has an unsupported critical extension {extension['extn_id'].dotted}")
        issuer = info["issuer"]
        names = issuer.chosen["issuer_name"] if issuer.name == "v2_form" else issuer.chosen
        issuer_names = [n.chosen for n in names or [] if n.name == "directory_name"]
        signer = self._signer(vo, issuer_names, _ac_certificates(info), now)
        _verify_signature(signer.public_key(), ac["signature"].native, info.dump(), ac["signature_algorithm"])
        return Attributes(vo, fqans, not_after)

    def _signer(self, vo: str, issuer_names: list[asn1_x509.Name], carried: list[x509.Certificate],
                now: datetime.datetime) -> x509.Certificate:
        """The trusted certificate whose subject is the AC's issuer: a configured file, or the carried one
        when an lsc file of the VO describes its chain and that chain ends at a trusted CA."""
        def named(cert: x509.Certificate) -> bool:
            subject = asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER)).subject
            return subject in issuer_names

        for cert in [*self.trust.server_certs.get(vo, []), *self.trust.server_certs.get(None, [])]:
            if named(cert) and _valid_at(cert, now):
                return cert
        if not carried or not named(carried[0]):
            raise VomsError(f"no configured VOMS server certificate of VO {vo} signed the AC")
        chain = [c for c in carried if c.subject != c.issuer]  # a carried self-signed CA is not trusted as such
        dns = (slash_dn(chain[0].subject), *(slash_dn(c.issuer) for c in chain))
        if dns not in self.trust.lsc.get(vo, []):
            raise VomsError(f"no lsc file of VO {vo} lists the chain {' -> '.join(dns)}")
        for cert, parent in zip(chain, chain[1:]):
            self._check_issued(cert, parent, now)
        top = chain[-1]
        for ca in self.trust.cas:
            if ca.subject == top.issuer and _valid_at(ca, now):
                try:
                    self._check_issued(top, ca, now)
                except VomsError:
                    continue
                return chain[0]
        raise VomsError(f"the VOMS server certificate {dns[0]} does not chain to a trusted CA")

    @staticmethod
    def _check_issued(cert: x509.Certificate, parent: x509.Certificate, now: datetime.datetime) -> None:
        if not _valid_at(cert, now):
            raise VomsError(f"the VOMS server chain certificate {slash_dn(cert.subject)} is outside its validity")
        try:
            cert.verify_directly_issued_by(parent)
        except (ValueError, TypeError, InvalidSignature):
            raise VomsError(f"{slash_dn(cert.subject)} is not signed by {slash_dn(parent.subject)}") from None
