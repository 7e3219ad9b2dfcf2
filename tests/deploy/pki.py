"""A test CA, host and user certificates, RFC 3820 proxies and VOMS attribute certificates.

Certificates are made with ``cryptography``; ACs with ``asn1crypto`` (so that tests can build every fault), and
``voms_proxy_fake`` runs Debian's real ``voms-proxy-fake`` (voms-clients) for the proxies the real tools make.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from asn1crypto import cms, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
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
          start: datetime.datetime | None = None, proxy: bool = False, san: tuple[str, ...] = (),
          extra: tuple[x509.ExtensionType, ...] = ()) -> Credential:
    key = _key()
    begin = start or _now() - datetime.timedelta(minutes=5)
    builder = (x509.CertificateBuilder().subject_name(subject)
               .issuer_name(issuer.cert.subject if issuer else subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(begin)
               .not_valid_after(begin + datetime.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    if issuer:  # voms-proxy-fake needs its signer's key identifier for the AC's authorityKeyIdentifier
        builder = builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
                                        critical=False)
    if ca:
        builder = builder.add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), True)
    else:
        builder = builder.add_extension(x509.KeyUsage(True, False, True, False, False, False, False, False, False), True)
    if proxy:
        builder = builder.add_extension(x509.UnrecognizedExtension(PROXY_CERT_INFO, INHERIT_ALL), critical=True)
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(a)) for a in san]),
                                        critical=False)
    for extension in extra:
        builder = builder.add_extension(extension, critical=False)
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


def proxy(owner: Credential, *, days: float = 1, start: datetime.datetime | None = None,
          voms: bytes | None = None) -> Credential:
    """An RFC 3820 proxy: the owner's DN plus CN=<number>, signed by the owner's key; ``voms`` is the DER
    of its VOMS extension (see ``voms_extension``)."""
    subject = x509.Name([*owner.cert.subject, x509.NameAttribute(NameOID.COMMON_NAME, str(x509.random_serial_number() % 10**9))])
    extra = (x509.UnrecognizedExtension(VOMS_EXTENSION, voms),) if voms is not None else ()
    return issue(subject, owner, days=days, start=start, proxy=True, extra=extra)


# --- VOMS -----------------------------------------------------------------------------------------------

VOMS_EXTENSION = x509.ObjectIdentifier("1.3.6.1.4.1.8005.100.100.5")
VOMS_ATTRIBUTE = "1.3.6.1.4.1.8005.100.100.4"
VOMS_CERTS = "1.3.6.1.4.1.8005.100.100.10"


def _asn1_name(name: x509.Name) -> asn1_x509.GeneralName:
    return asn1_x509.GeneralName(name="directory_name", value=asn1_x509.Name.load(name.public_bytes()))


def voms_ac(signer: Credential, holder: Credential, vo: str, fqans: list[str], *, hours: float = 12,
            start: datetime.datetime | None = None, carry: tuple[x509.Certificate, ...] | None = None,
            holder_serial: int | None = None, holder_name: x509.Name | None = None, sign_with: rsa.RSAPrivateKey | None = None,
            critical_oid: str | None = None) -> cms.AttributeCertificateV2:
    """An AC as a VOMS server writes it: holder = the user's certificate (issuer DN and serial), issuer = the
    server's DN, the FQAN attribute with policy authority ``vo://host:port``, the server certificate carried
    in the AC (for .lsc verification). Every keyword makes one fault a test needs."""
    begin = start or _now() - datetime.timedelta(minutes=1)
    carried = (signer.cert,) if carry is None else carry
    extensions = [{"extn_id": "2.5.29.56", "critical": False, "extn_value": core.Null().dump()}]
    if carried:
        certs = core.SequenceOf([asn1_x509.Certificate.load(c.public_bytes(serialization.Encoding.DER)) for c in carried],
                                spec=asn1_x509.Certificate)
        extensions.append({"extn_id": VOMS_CERTS, "critical": False, "extn_value": _sequence(certs.dump())})
    if critical_oid:
        extensions.append({"extn_id": critical_oid, "critical": True, "extn_value": core.Null().dump()})
    values = cms.IetfAttrSyntax({"policy_authority": [asn1_x509.GeneralName(name="uniform_resource_identifier",
                                                                            value=f"{vo}://127.0.0.1:15000")],
                                 "values": [cms.IetfAttrValue(name="octets", value=f.encode()) for f in fqans]})
    info = cms.AttributeCertificateInfoV2({
        "version": "v2",
        "holder": {"base_certificate_id": {"issuer": [_asn1_name(holder_name or holder.cert.issuer)],
                                           "serial": holder.cert.serial_number if holder_serial is None else holder_serial}},
        "issuer": cms.AttCertIssuer(name="v2_form", value={"issuer_name": [_asn1_name(signer.cert.subject)]}),
        "signature": {"algorithm": "sha256_rsa"},
        "serial_number": x509.random_serial_number(),
        "att_cert_validity_period": {"not_before_time": begin, "not_after_time": begin + datetime.timedelta(hours=hours)},
        "attributes": [{"type": VOMS_ATTRIBUTE, "values": [values]}],
        "extensions": extensions,
    })
    signature = (sign_with or signer.key).sign(info.dump(), padding.PKCS1v15(), hashes.SHA256())
    return cms.AttributeCertificateV2({"ac_info": info, "signature_algorithm": {"algorithm": "sha256_rsa"},
                                       "signature": signature})


def _sequence(contents: bytes) -> bytes:
    """DER SEQUENCE around already encoded members."""
    return core.Sequence(contents=contents).dump()


def voms_extension(*acs: cms.AttributeCertificateV2) -> bytes:
    """The proxy extension's DER: a sequence of AC lists (here one list)."""
    return _sequence(_sequence(b"".join(ac.dump() for ac in acs)))


def voms_proxy_fake(user: Credential, server: Credential, base: Path, certificates: Path, vo: str, fqans: list[str],
                    *options: str) -> Path:
    """A proxy with an AC made by the real ``voms-proxy-fake`` (Debian's voms-clients), signed with ``server``;
    ``certificates`` is the CA directory it checks the user certificate against."""
    base.mkdir(parents=True, exist_ok=True)
    arguments = []
    for name, credential in (("", user), ("host", server)):
        cert, key = base / f"{name or 'user'}cert.pem", base / f"{name or 'user'}key.pem"
        cert.write_bytes(credential.cert.public_bytes(serialization.Encoding.PEM))
        key.write_bytes(credential.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                                     serialization.NoEncryption()))
        key.chmod(0o600)
        arguments += [f"-{name}cert", str(cert), f"-{name}key", str(key)]
    out = base / f"x509up_{len(list(base.glob('x509up_*')))}"
    command = [shutil.which("voms-proxy-fake") or "voms-proxy-fake", "-q", "-rfc", *arguments,
               "-certdir", str(certificates), "-voms", vo, "-uri", "127.0.0.1:15000", "-out", str(out), *options]
    for fqan in fqans:
        command += ["-fqan", fqan]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "HOME": str(base)}, timeout=60)
    if done.returncode != 0 or not out.exists():
        raise RuntimeError(f"voms-proxy-fake failed ({done.returncode}): {done.stdout}{done.stderr}")
    return out


def voms_server(ca: Credential, name: str = "voms.test") -> Credential:
    """A VOMS server's host certificate (what signs the ACs)."""
    return issue(_name((NameOID.DOMAIN_COMPONENT, "test"), (NameOID.COMMON_NAME, name)), ca)


def vomsdir(path: Path, vo: str, server: Credential) -> Path:
    """A vomsdir with one ``<vo>/<host>.lsc`` file: the server's subject DN, then its CA's DN."""
    (path / vo).mkdir(parents=True, exist_ok=True)
    (path / vo / "voms.test.lsc").write_text(f"{slash_dn(server.cert.subject)}\n{issuer_dn(server.cert)}\n")
    return path


def ca_dir(path: Path, *cas: Credential) -> Path:
    """A hashed CA directory like /etc/grid-security/certificates."""
    path.mkdir(parents=True, exist_ok=True)
    for index, ca in enumerate(cas):
        (path / f"ca{index}.pem").write_bytes(ca.cert.public_bytes(serialization.Encoding.PEM))
    subprocess.run(["openssl", "rehash", str(path)], check=True, capture_output=True)
    return path


def slash_dn(cert: x509.Certificate | x509.Name) -> str:
    name = cert.subject if isinstance(cert, x509.Certificate) else cert
    return "".join(f"/{a.rfc4514_attribute_name}={a.value}" for a in name)


def issuer_dn(cert: x509.Certificate) -> str:
    return slash_dn(cert.issuer)
