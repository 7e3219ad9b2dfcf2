"""A test CA, host and user certificates and RFC 3820 proxies, made with ``cryptography``."""

from __future__ import annotations

import datetime
import ipaddress
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

PROXY_CERT_INFO = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.14")
# ProxyCertInfo ::= SEQUENCE { proxyPolicy SEQUENCE { policyLanguage id-ppl-inheritAll } }
INHERIT_ALL = bytes.fromhex("300c300a06082b06010505071501")


@dataclass
class Credential:
    cert: x509.Certificate
    key: rsa.RSAPrivateKey
    chain: tuple[x509.Certificate, ...] = ()

    def write(self, path: Path) -> Path:
        """Certificate, key, then the chain up to (not including) the CA: the X509_USER_PROXY layout."""
        pem = [self.cert.public_bytes(serialization.Encoding.PEM),
               self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                      serialization.NoEncryption())]
        pem += [c.public_bytes(serialization.Encoding.PEM) for c in self.chain]
        path.write_bytes(b"".join(pem))
        path.chmod(0o600)
        return path


def _name(*parts: tuple[x509.ObjectIdentifier, str]) -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in parts])


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def issue(subject: x509.Name, issuer: Credential | None, *, ca: bool = False, days: float = 30,
          start: datetime.datetime | None = None, proxy: bool = False, san: tuple[str, ...] = ()) -> Credential:
    key = _key()
    begin = start or _now() - datetime.timedelta(minutes=5)
    builder = (x509.CertificateBuilder().subject_name(subject)
               .issuer_name(issuer.cert.subject if issuer else subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(begin)
               .not_valid_after(begin + datetime.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), True)
    else:
        builder = builder.add_extension(x509.KeyUsage(True, False, True, False, False, False, False, False, False), True)
    if proxy:
        builder = builder.add_extension(x509.UnrecognizedExtension(PROXY_CERT_INFO, INHERIT_ALL), critical=True)
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(a)) for a in san]),
                                        critical=False)
    signer = issuer.key if issuer else key
    cert = builder.sign(signer, hashes.SHA256())
    chain = ((issuer.cert, *issuer.chain) if issuer and not _is_ca(issuer) else ())
    return Credential(cert, key, chain)


def _is_ca(credential: Credential) -> bool:
    return credential.cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def make_ca(name: str) -> Credential:
    return issue(_name((NameOID.DOMAIN_COMPONENT, "test"), (NameOID.COMMON_NAME, name)), None, ca=True, days=365)


def user(ca: Credential, name: str) -> Credential:
    return issue(_name((NameOID.DOMAIN_COMPONENT, "test"), (NameOID.ORGANIZATIONAL_UNIT_NAME, "people"),
                       (NameOID.COMMON_NAME, name)), ca)


def host(ca: Credential, address: str, *aliases: str) -> Credential:
    """A host certificate for ``address``; ``aliases`` are further addresses it answers as (a load balancer's)."""
    return issue(_name((NameOID.COMMON_NAME, address)), ca, san=(address, *aliases))


def proxy(owner: Credential, *, days: float = 1, start: datetime.datetime | None = None) -> Credential:
    """An RFC 3820 proxy: the owner's DN plus CN=<number>, signed by the owner's key."""
    subject = x509.Name([*owner.cert.subject, x509.NameAttribute(NameOID.COMMON_NAME, str(x509.random_serial_number() % 10**9))])
    return issue(subject, owner, days=days, start=start, proxy=True)


def ca_dir(path: Path, *cas: Credential) -> Path:
    """A hashed CA directory like /etc/grid-security/certificates."""
    path.mkdir(parents=True, exist_ok=True)
    for index, ca in enumerate(cas):
        (path / f"ca{index}.pem").write_bytes(ca.cert.public_bytes(serialization.Encoding.PEM))
    subprocess.run(["openssl", "rehash", str(path)], check=True, capture_output=True)
    return path


def slash_dn(cert: x509.Certificate) -> str:
    return "".join(f"/{a.rfc4514_attribute_name}={a.value}" for a in cert.subject)
